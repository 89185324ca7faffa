"""Admin-written regular expressions, compiled by RE2 so none can hang the daemon (R3.4).

RE2 runs in time linear in the input: `(a+)+$` on a megabyte returns at
once. The price is no backreferences and no lookaround, which a load-time
problem names plainly. Patterns run over UTF-8 bytes: a mail's texts are
encoded once and searched by every pattern, instead of once per search.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False
_OPTIONS.max_mem = 8 << 20


class PatternError(ValueError):
    """A pattern RE2 cannot compile."""


@dataclass(frozen=True, slots=True, eq=False)
class Pattern:
    """A compiled RE2 pattern and the names of its groups."""

    source: str
    _compiled: Any
    group_names: frozenset[str] = frozenset()
    """Named groups, the fields this pattern can extract (known at compile time, so
    the engine can skip a search whose fields are all found already)."""

    @classmethod
    def compile(cls, source: str) -> Pattern:
        """Compile ``source``; PatternError says why RE2 refused it."""
        try:
            compiled = re2.compile(source.encode("utf-8", "surrogateescape"), _OPTIONS)
        except re2.error as error:
            detail = error.args[0] if error.args else error
            if isinstance(detail, bytes):
                detail = detail.decode("utf-8", "replace")
            raise PatternError(f"bad pattern '{source}': {detail}") from None
        return cls(source, compiled, frozenset(_text(name) for name in compiled.groupindex))

    def search(self, text: str) -> Mapping[str, str] | None:
        """The named groups of the first match (empty values dropped), or None."""
        return self.search_bytes(encode(text))

    def search_bytes(self, data: bytes) -> Mapping[str, str] | None:
        """`search` over text already encoded with `encode`."""
        match = self._compiled.search(data)
        if match is None:
            return None
        out: dict[str, str] = {}
        for name, value in match.groupdict().items():
            if value:
                stripped = _text(value).strip()
                if stripped:
                    out[_text(name)] = stripped
        return out


def encode(text: str) -> bytes:
    """Text as patterns search it."""
    return text.encode("utf-8", "surrogateescape")


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
