"""Admin-written regular expressions, compiled by RE2 so none can hang the daemon (R3.4).

RE2 runs in time linear in the input: `(a+)+$` on a megabyte returns at
once. The price is no backreferences and no lookaround, which a load-time
problem names plainly.
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

    @classmethod
    def compile(cls, source: str) -> Pattern:
        """Compile ``source``; PatternError says why RE2 refused it."""
        try:
            compiled = re2.compile(source, _OPTIONS)
        except re2.error as error:
            detail = error.args[0] if error.args else error
            if isinstance(detail, bytes):
                detail = detail.decode("utf-8", "replace")
            raise PatternError(f"bad pattern {source!r}: {detail}") from None
        return cls(source, compiled)

    @property
    def group_names(self) -> frozenset[str]:
        """Named groups, the fields this pattern can extract."""
        return frozenset(self._compiled.groupindex)

    def search(self, text: str) -> Mapping[str, str] | None:
        """The named groups of the first match (empty values dropped), or None."""
        match = self._compiled.search(text)
        if match is None:
            return None
        return {
            name: value.strip()
            for name, value in match.groupdict().items()
            if value is not None and value.strip()
        }
