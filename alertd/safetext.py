"""Text every database can store: PostgreSQL refuses NUL characters and invalid UTF-8.

Mail headers and envelopes can carry both; they are cleaned before they
reach a column, so a hostile or broken mail is stored and processed instead
of failing its insert forever.
"""

from __future__ import annotations

_NUL = "\x00"


def storable(text: str) -> str:
    """``text`` without NUL characters and with lone surrogates replaced."""
    if _NUL in text:
        text = text.replace(_NUL, "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def storable_or_none(text: str | None) -> str | None:
    """`storable` for optional values."""
    return None if text is None else storable(text)
