"""Automate's `condition` query language, as the local server understands it.

The grammar follows `automate-api.md` §2.3: comparisons `=` (or `eq`),
`!=`, `>`, `>=`, `<`, `<=`, `like` (SQL `%`/`_` wildcards), `contains` and
`in (...)`, with `not` only before `in`, `like` and `contains`; `and`, `or`
and parentheses; strings in single or double quotes, numbers, `true` and
`false`, and unquoted ISO timestamps; dotted paths into nested objects
(`Client.Id = 27`). A field the resource does not have is refused, as the
real server answers "Invalid field".

Time stamps compare by time, not by their text: an unquoted stamp
(`UpdateDate > 2025-06-02T10:15:31`, as automate-api.md §5 pitfall 10
advises), a quoted one (`'2025-06-02T10:15:31'`) and a record's stamp are
all read as moments, with or without fractional seconds, so
`…:31` equals `…:31.000` and precedes `…:31.5`. Naive stamps are server
time (UTC here); a stamp with a zone is converted to it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Predicate = Callable[[Mapping[str, Any]], bool]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
      | (?P<stamp>\d{4}-\d{2}-\d{2}T[\d:.]+(?:Z|[+-]\d{2}:\d{2})?)
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<op>!=|>=|<=|=|>|<|\(|\)|,)
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "like", "contains", "in", "eq", "true", "false", "null"}
_STAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?")


def parse_stamp(text: str) -> datetime | None:
    """The naive server-time moment ``text`` names, or None when it is not a stamp."""
    if _STAMP.fullmatch(text.strip()) is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


class ConditionError(ValueError):
    """A condition the server refuses (the real one answers 400)."""


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    value: Any


def _tokens(source: str) -> list[_Token]:
    out: list[_Token] = []
    position = 0
    while position < len(source):
        if not source[position:].strip():
            break
        match = _TOKEN.match(source, position)
        if match is None:
            raise ConditionError(f"cannot read the condition at {source[position:]!r}")
        position = match.end()
        kind = match.lastgroup or ""
        text = match.group(kind)
        value: Any = text
        if kind == "string":
            quote = text[0]
            value = text[1:-1].replace(quote * 2, quote)
        elif kind == "number":
            value = float(text) if "." in text else int(text)
        elif kind == "stamp":
            value = parse_stamp(text)
            if value is None:
                raise ConditionError(f"not a valid date and time: {text!r}")
        elif kind == "word" and text.lower() in _KEYWORDS:
            kind, value = "keyword", text.lower()
            if value in {"true", "false"}:
                kind, value = "literal", value == "true"
            elif value == "null":
                kind, value = "literal", None
        out.append(_Token(kind, text, value))
    return out


def compile_condition(source: str, fields: Collection[str]) -> Predicate:
    """A predicate over records; ``fields`` are the resource's top-level field names."""
    parser = _Parser(_tokens(source), {name.lower() for name in fields})
    predicate = parser.expression()
    if parser.position != len(parser.tokens):
        raise ConditionError(f"unexpected {parser.tokens[parser.position].text!r}")
    return predicate


class _Parser:
    def __init__(self, tokens: list[_Token], fields: set[str]) -> None:
        self.tokens = tokens
        self.position = 0
        self.fields = fields

    def _peek(self) -> _Token | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _take(self) -> _Token:
        token = self._peek()
        if token is None:
            raise ConditionError("the condition ends too early")
        self.position += 1
        return token

    def _is(self, kind: str, value: Any) -> bool:
        token = self._peek()
        return token is not None and token.kind == kind and token.value == value

    def expression(self) -> Predicate:
        left = self.term()
        while self._is("keyword", "or"):
            self._take()
            right = self.term()
            left = _either(left, right)
        return left

    def term(self) -> Predicate:
        left = self.factor()
        while self._is("keyword", "and"):
            self._take()
            right = self.factor()
            left = _both(left, right)
        return left

    def factor(self) -> Predicate:
        if self._is("op", "("):
            self._take()
            inner = self.expression()
            if not self._is("op", ")"):
                raise ConditionError("missing ')'")
            self._take()
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        token = self._take()
        if token.kind != "word":
            raise ConditionError(f"expected a field name, got {token.text!r}")
        path = token.text.split(".")
        if path[0].lower() not in self.fields:
            raise ConditionError(f"Invalid field: {token.text}")
        negate = False
        if self._is("keyword", "not"):
            self._take()
            negate = True
        operator = self._take()
        name = operator.value if operator.kind in {"op", "keyword"} else None
        if name == "in":
            values = self._list()
            test = _membership(path, values)
        elif name in {"like", "contains"}:
            value = self._value()
            test = _like(path, str(value)) if name == "like" else _contains(path, value)
        elif name in {"=", "eq", "!=", ">", ">=", "<", "<="} and not negate:
            test = _compare(path, "=" if name == "eq" else str(name), self._value())
        else:
            raise ConditionError(f"unknown operator {operator.text!r}")
        return (lambda record: not test(record)) if negate else test

    def _value(self) -> Any:
        token = self._take()
        if token.kind in {"string", "number", "literal", "stamp"}:
            return token.value
        raise ConditionError(f"expected a value, got {token.text!r}")

    def _list(self) -> list[Any]:
        if not self._is("op", "("):
            raise ConditionError("'in' needs a list in parentheses")
        self._take()
        values = [self._value()]
        while self._is("op", ","):
            self._take()
            values.append(self._value())
        if not self._is("op", ")"):
            raise ConditionError("missing ')' after the list")
        self._take()
        return values


def lookup(record: Mapping[str, Any], path: list[str]) -> Any:
    """The value at ``path``, with keys matched without case."""
    value: Any = record
    for part in path:
        if not isinstance(value, Mapping):
            return None
        if part in value:
            value = value[part]
            continue
        lowered = part.lower()
        value = next((v for k, v in value.items() if str(k).lower() == lowered), None)
    return value


def _either(left: Predicate, right: Predicate) -> Predicate:
    return lambda record: left(record) or right(record)


def _both(left: Predicate, right: Predicate) -> Predicate:
    return lambda record: left(record) and right(record)


def _normal(value: Any) -> Any:
    """A comparable form: numbers as floats, stamps as moments, other text lower-cased."""
    if isinstance(value, bool) or value is None or isinstance(value, datetime):
        return value
    if isinstance(value, int | float):
        return float(value)
    text = str(value)
    try:
        return float(text)
    except ValueError:
        pass
    moment = parse_stamp(text) if text[:1].isdigit() else None
    return moment if moment is not None else text.lower()


def _compare(path: list[str], operator: str, expected: Any) -> Predicate:
    want = _normal(expected)

    def test(record: Mapping[str, Any]) -> bool:
        have = _normal(lookup(record, path))
        if operator == "=":
            return bool(have == want)
        if operator == "!=":
            return bool(have != want)
        if have is None or type(have) is not type(want):
            return False
        if operator == ">":
            return bool(have > want)
        if operator == ">=":
            return bool(have >= want)
        if operator == "<":
            return bool(have < want)
        return bool(have <= want)

    return test


def _membership(path: list[str], values: list[Any]) -> Predicate:
    wanted = {_normal(value) for value in values}
    return lambda record: _normal(lookup(record, path)) in wanted


def _like(path: list[str], pattern: str) -> Predicate:
    regex = re.compile(
        "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern),
        re.IGNORECASE | re.DOTALL,
    )
    return lambda record: regex.fullmatch(str(lookup(record, path) or "")) is not None


def _contains(path: list[str], value: Any) -> Predicate:
    want = _normal(value)

    def test(record: Mapping[str, Any]) -> bool:
        have = lookup(record, path)
        if isinstance(have, list):
            return want in {_normal(item) for item in have}
        return str(value).lower() in str(have or "").lower()

    return test
