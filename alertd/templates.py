"""`{placeholder}` templates for ticket summaries and dedup keys.

Templates are parsed once, when rules load, so an unknown placeholder is a
load error with file and line, and rendering is a plain join at run time.
A placeholder whose field was not extracted renders as an empty string.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass

_FORMATTER = string.Formatter()


class TemplateSyntaxError(ValueError):
    """A template that is not plain text with `{name}` placeholders."""


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template: literal text and field names, in order."""

    source: str
    parts: tuple[tuple[str, str | None], ...]

    @classmethod
    def parse(cls, source: str) -> Template:
        """Parse ``source``; `{{` and `}}` stand for literal braces."""
        parts: list[tuple[str, str | None]] = []
        try:
            parsed = list(_FORMATTER.parse(source))
        except ValueError as error:
            raise TemplateSyntaxError(f"bad template {source!r}: {error}") from None
        for literal, field, spec, conversion in parsed:
            if field is not None:
                name = field.strip()
                if not name.isidentifier():
                    raise TemplateSyntaxError(
                        f"placeholder {{{field}}} in {source!r} is not a field name"
                    )
                if spec or conversion:
                    raise TemplateSyntaxError(
                        f"placeholder {{{field}}} in {source!r} takes no format or conversion"
                    )
                parts.append((literal, name))
            else:
                parts.append((literal, None))
        return cls(source=source, parts=tuple(parts))

    @property
    def fields(self) -> frozenset[str]:
        """The placeholder names this template uses."""
        return frozenset(name for _, name in self.parts if name is not None)

    def render(self, values: Mapping[str, str]) -> str:
        """Fill the placeholders; missing values become empty strings."""
        out: list[str] = []
        for literal, name in self.parts:
            out.append(literal)
            if name is not None:
                out.append(values.get(name, ""))
        return "".join(out)
