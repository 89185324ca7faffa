"""What every command shares: settings from `--config`, output in table or JSON form."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Coroutine, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy.ext.asyncio import AsyncSession

from alertd import logs
from alertd.runtime import Runtime, open_runtime
from alertd.settings import Settings, load_settings

T = TypeVar("T")


class OutputFormat(StrEnum):
    """How list and show commands print."""

    table = "table"
    json = "json"


@dataclass
class CliState:
    """Options given before the command name."""

    config: Path | None = None
    log_level: str | None = None


STATE = CliState()
console = Console(highlight=False, soft_wrap=True,
                  width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def settings() -> Settings:
    """Settings from `--config`/`$ALERTD_CONFIG`, or the built-in defaults."""
    loaded = load_settings(STATE.config)
    level = STATE.log_level or "warning"
    logs.configure(level=level, fmt=loaded.logging.format, stream=sys.stderr)
    return loaded


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run one command's coroutine to completion."""
    return asyncio.run(coroutine)


def emit_json(value: Any) -> None:
    """Print ``value`` as JSON, and nothing else, to stdout."""
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


def emit_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print a table to stdout."""
    table = Table(title=title, show_lines=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    console.print(table)


def emit_fields(pairs: Iterable[tuple[str, Any]]) -> None:
    """Print `name: value` lines."""
    items = list(pairs)
    width = max((len(name) for name, _ in items), default=0)
    for name, value in items:
        line = Text(name.ljust(width), style="bold")
        line.append("  " + ("" if value is None else str(value)))
        console.print(line)


@asynccontextmanager
async def database_session(*, write: bool = False) -> AsyncIterator[tuple[Runtime, AsyncSession]]:
    """A session on the configured database; with ``write`` it commits on success."""
    async with open_runtime(settings(), with_rules=False) as runtime:
        if write:
            async with runtime.sessions.begin() as session:
                yield runtime, session
        else:
            async with runtime.readers() as session:
                yield runtime, session
