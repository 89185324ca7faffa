"""Admin-edited YAML, read with line numbers so every problem names its line.

ruamel.yaml is used (not PyYAML) because it rejects duplicate keys and keeps
the position of every key and item. Validation errors from pydantic are
mapped back to those positions here, so settings and rules report problems
the same way: `file:line: where: message`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from alertd.domain import Problem

Loc = Sequence[str | int]


class YamlDocument:
    """A parsed YAML file: its plain data and where each node was written."""

    def __init__(self, path: Path, root: Any, text: str = "") -> None:
        self.path = path
        self.text = text
        """The source text that was parsed."""
        self._root = root
        self.data: Any = _plain(root)

    def line_of(self, loc: Loc) -> int | None:
        """The 1-based line of the deepest node along ``loc`` that exists."""
        node: Any = self._root
        line: int | None = _node_line(node)
        for step in loc:
            if isinstance(node, CommentedMap) and isinstance(step, str) and step in node:
                line = node.lc.key(step)[0] + 1
                node = node[step]
            elif isinstance(node, CommentedSeq) and isinstance(step, int) and 0 <= step < len(node):
                line = node.lc.item(step)[0] + 1
                node = node[step]
            else:
                break
        return line

    def problem(self, loc: Loc, message: str) -> Problem:
        """A problem at ``loc`` in this file."""
        return Problem(self.path, self.line_of(loc), render_loc(loc), message)

    def problems_from(self, error: ValidationError, prefix: Loc = ()) -> list[Problem]:
        """Every pydantic error, as a problem at its line."""
        return [self._problem_for(detail, prefix) for detail in error.errors()]

    def _problem_for(self, detail: ErrorDetails, prefix: Loc) -> Problem:
        loc = [*prefix, *(step for step in detail["loc"] if not _is_union_tag(step))]
        kind = detail["type"]
        if kind == "extra_forbidden":
            return self.problem(loc, f"unknown key {loc[-1]!r}")
        if kind == "missing":
            return self.problem(loc[:-1], f"missing required key {loc[-1]!r}")
        message = detail["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        return self.problem(loc, message)


def load_yaml(path: Path, text: str | None = None) -> YamlDocument | Problem:
    """Read ``path`` (or ``text`` standing for it); a syntax error comes back as a Problem."""
    try:
        source = path.read_text(encoding="utf-8") if text is None else text
    except (OSError, UnicodeDecodeError) as error:
        return Problem(path, None, "", f"cannot read file: {error}")
    yaml = YAML(typ="rt")
    try:
        root = yaml.load(source)
    except DuplicateKeyError as error:
        return _duplicate_key_problem(path, error)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        what = error.problem or error.context or "invalid YAML"
        if error.context and error.context_mark is not None and error.problem:
            what = f"{what} ({error.context} started at line {error.context_mark.line + 1})"
        return Problem(path, line, "", f"invalid YAML: {what}")
    except YAMLError as error:
        return Problem(path, None, "", f"invalid YAML: {error}")
    return YamlDocument(path, root, source)


def render_loc(loc: Iterable[str | int]) -> str:
    """`alert_types[2].match` from ``("alert_types", 2, "match")``."""
    out = ""
    for step in loc:
        if isinstance(step, int):
            out += f"[{step}]"
        else:
            out += f".{step}" if out else step
    return out


def _duplicate_key_problem(path: Path, error: DuplicateKeyError) -> Problem:
    mark = error.problem_mark
    problem = str(error.problem or "")
    key = problem.split('"')[1] if problem.count('"') >= 2 else "?"
    line = mark.line + 1 if mark is not None else None
    return Problem(path, line, "", f"duplicate key {key!r}")


def _node_line(node: Any) -> int | None:
    if isinstance(node, CommentedMap | CommentedSeq):
        return int(node.lc.line) + 1
    return None


def _is_union_tag(step: str | int) -> bool:
    # pydantic inserts the chosen union member's name into error locations.
    return isinstance(step, str) and (step.startswith("function-") or "[" in step)


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(key): _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(item) for item in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node
