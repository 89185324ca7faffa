"""What the benchmark scripts share: medians, number formats and the result table."""

from __future__ import annotations

import statistics
import sys
from collections.abc import Sequence
from typing import Any


def median_of(results: Sequence[dict[str, Any]], key: str) -> float | None:
    """The median of ``key`` over the runs that have a value for it."""
    values = [r[key] for r in results if r.get(key) is not None]
    return statistics.median(values) if values else None


def fmt_rate(value: float | None) -> str:
    """A rate as whole mails/s with thousands separators."""
    return "-" if value is None else f"{value:,.0f}"


def render(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A rich table on a terminal, aligned plain text otherwise (short rows: notes)."""
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(*header)
        for column in table.columns[1:]:
            column.justify = "right"
        for row in rows:
            table.add_row(*row)
        Console().print(table)
        return
    full = [header, *(row for row in rows if len(row) == len(header))]
    widths = [max(len(cells[i]) for cells in full) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return " | ".join([first, *rest])

    print(line(header))
    print("-+-".join("-" * width for width in widths))
    for row in rows:
        print(line(row) if len(row) == len(header) else " | ".join(row))


def version_of(distribution: str) -> str:
    """The installed version of a distribution, or `?`."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "?"
