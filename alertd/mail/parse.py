"""Raw bytes to a ParsedMail, with mail-parser doing the MIME work (R2).

Whatever the wild sends (legacy charsets, broken MIME, HTML-only bodies,
huge attachments) either becomes a ParsedMail or raises ParseError with a
reason; nothing else escapes. HTML-only mail is turned into readable text
(tables keep their rows on one line) so `Key: value` rules match it too.

Parsing is most of the cost of processing an alert, so mail-parser is
spared the summaries alertd never reads, and the common plain address
headers are read without the full RFC 5322 address parser.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses
from types import MappingProxyType
from typing import Any

import mailparser
from inscriptis import get_text
from mailparser.const import ADDRESSES_HEADERS

from alertd.domain import AttachmentInfo, ParsedMail
from alertd.errors import ParseError
from alertd.safetext import storable

MAX_TEXT_CHARS = 1_000_000
"""Body text kept for rules; the raw mail stays whole in the inbox."""
MAX_HTML_CHARS = 2_000_000
MAX_SUBJECT_CHARS = 2_000

_TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)
_ADDR_SPEC = r"[A-Za-z0-9_%+\-]+(?:\.[A-Za-z0-9_%+\-]+)*@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*"
_SIMPLE_ADDRESS = re.compile(
    rf"[ \t]*(?:(?:\"[^\"\\\r\n]*\"|[A-Za-z0-9 _\-]*)[ \t]*<({_ADDR_SPEC})>|({_ADDR_SPEC}))[ \t]*"
)
"""`addr@example.net` or `Some Name <addr@example.net>`: what alert senders write, and
read alike by every address parser."""
_FOLDING = re.compile(r"\r?\n[ \t]+")

# mail-parser reports every part it does not render at WARNING; that is noise here.
logging.getLogger("mailparser").setLevel(logging.ERROR)


class _AlertParser(mailparser.MailParser):  # type: ignore[misc]  # mail-parser is untyped
    """mail-parser without the work whose results alertd never reads.

    `parse()` builds the `mail` dictionary twice (whole and partial), decoding
    every header each time: about a fifth of mail-parser's time on an alert.
    mail-parser 4.8 also runs its full address parser over every address
    header up front, for its own `from_`/`to` attributes, and parses every
    Received header into its `received` list: on relayed alert mail that is
    half of the parsing. alertd reads headers and addresses itself
    (`_headers`, `_addresses`), so mail-parser's header index is given no
    address headers and its reset does not see the Received headers (they
    stay in the message, and in `ParsedMail.headers`). Parts, attachments,
    the date and the MIME and date defects are read as before; malformed
    address and Received headers are no longer among the defects.
    """

    def _make_mail(self, complete: bool = True) -> dict[str, Any]:
        return {}

    def _reset(self) -> None:
        message: Message | None = self.message
        if message is None:
            super()._reset()
            return
        headers = message._headers  # type: ignore[attr-defined]  # email.message's own list
        message._headers = [  # type: ignore[attr-defined]
            (name, value) for name, value in headers if name.lower() != "received"]
        try:
            super()._reset()
        finally:
            message._headers = headers  # type: ignore[attr-defined]

    def _build_header_index(self) -> dict[str, list[Any]]:
        index: dict[str, list[Any]] = super()._build_header_index()
        for name in ADDRESSES_HEADERS:
            index.pop(name, None)
        return index


def parse_mail(data: bytes) -> ParsedMail:
    """Parse one raw mail; raises ParseError when it cannot be read at all."""
    if not data.strip():
        raise ParseError("empty message")
    try:
        parsed = _AlertParser.from_bytes(data)
        return _to_parsed_mail(parsed)
    except ParseError:
        raise
    except RecursionError:
        raise ParseError("MIME structure nested too deeply") from None
    except Exception as error:
        raise ParseError(f"{type(error).__name__}: {error}") from error


def html_to_text(html: str) -> str:
    """Readable text from HTML, one table row per line."""
    text: str = get_text(html[:MAX_HTML_CHARS])
    return _TRAILING_SPACE.sub("", text).strip("\n")


def _to_parsed_mail(parsed: Any) -> ParsedMail:
    message: Message = parsed.message
    headers = _headers(message)
    plain = [part for part in parsed.text_plain if part and part.strip()]
    html = [part for part in parsed.text_html if part and part.strip()]
    html_only = not plain and bool(html)
    if plain:
        text = "\n".join(plain)
    elif html:
        text = "\n".join(html_to_text(part) for part in html)
    else:
        text = ""
    text = storable(text.replace("\r\n", "\n")[:MAX_TEXT_CHARS])
    return ParsedMail(
        message_id=_message_id(message),
        sender=_first_address(headers.get("from", ())),
        to=tuple(_addresses(headers.get("to", ()) + headers.get("cc", ()))),
        subject=_FOLDING.sub(" ", _decode(message.get("subject", "") or ""))[:MAX_SUBJECT_CHARS],

        date=_date(parsed),
        headers=MappingProxyType(headers),
        text=text,
        content_type=message.get_content_type(),
        attachments=tuple(_attachment(item) for item in parsed.attachments),
        defects=tuple(sorted(parsed.defects_categories)),
        html_only=html_only,
    )


def _headers(message: Message) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for name, value in message.items():
        out.setdefault(name.lower(), []).append(_decode(value))
    return {name: tuple(values) for name, values in out.items()}


def _decode(value: Any) -> str:
    """An RFC 2047 header value as text; undecodable pieces are kept as they are."""
    raw = str(value)
    if "=?" not in raw:
        return storable(raw.strip())
    try:
        return storable(str(make_header(decode_header(raw))).strip())
    except (ValueError, LookupError, UnicodeError):
        return storable(raw.strip())



def _message_id(message: Message) -> str | None:
    value = message.get("message-id")
    if value is None:
        return None
    text = storable(str(value).strip())
    return text or None


def _addresses(values: tuple[str, ...]) -> list[str]:
    simple = _simple_addresses(values)
    if simple is not None:
        return simple
    return [addr.strip().lower() for _, addr in getaddresses(list(values)) if "@" in addr]


def _simple_addresses(values: tuple[str, ...]) -> list[str] | None:
    """The addresses when every value is a list of plain ones, else None (the full parser)."""
    out: list[str] = []
    for value in values:
        pieces = [value] if '"' in value else value.split(",")
        for piece in pieces:
            found = _SIMPLE_ADDRESS.fullmatch(piece)
            if found is None:
                return None
            out.append((found.group(1) or found.group(2)).lower())
    return out


def _first_address(values: tuple[str, ...]) -> str | None:
    found = _addresses(values)
    return found[0] if found else None


def _date(parsed: Any) -> datetime | None:
    if parsed.message.get("date") is None:
        return None
    value = parsed.date
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _attachment(item: dict[str, Any]) -> AttachmentInfo:
    payload = item.get("payload") or ""
    size = len(payload) * 3 // 4 if item.get("binary") else len(payload)
    return AttachmentInfo(
        filename=str(item.get("filename") or ""),
        content_type=str(item.get("mail_content_type") or "application/octet-stream"),
        size=size,
    )
