"""`alertd ingest FILE... | -`: the pipe source (R1.3), for MTA pipe transports and tests.

Each mail is accepted into the durable inbox and its id printed. The exit
status tells the MTA what to do: 0 when every mail is stored, 75
(EX_TEMPFAIL) when any could not be, so the MTA keeps it and tries again.
A configuration problem is also 75 here: deferring a mail loses nothing,
bouncing it would.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from alertd.cli.common import err_console, run, settings
from alertd.domain import Envelope, RawMessage
from alertd.errors import EX_TEMPFAIL, AlertdError
from alertd.runtime import Runtime, open_runtime
from alertd.settings import Settings


def ingest(
    files: Annotated[list[str], typer.Argument(help="Mail files, or - for standard input.")],
    process: Annotated[
        bool, typer.Option("--process", help="Also process what was stored.")
    ] = False,
    source: Annotated[str, typer.Option(help="Source name recorded with each mail.")] = "pipe",
    mail_from: Annotated[
        str | None, typer.Option("--from", help="Envelope sender (MAIL FROM).")
    ] = None,
    rcpt: Annotated[
        list[str] | None, typer.Option("--rcpt", help="Envelope recipient; repeatable.")
    ] = None,
) -> int:
    """Store each mail durably and print its inbox id."""
    try:
        loaded = settings()
    except AlertdError as error:
        err_console.print(f"alertd: cannot store mail: {error}", markup=False)
        return EX_TEMPFAIL
    return run(_ingest(files, process, source, mail_from, tuple(rcpt or ()), loaded))


async def _ingest(
    files: list[str], process: bool, source: str, mail_from: str | None,
    rcpt: tuple[str, ...], loaded: Settings,
) -> int:
    status = 0
    try:
        async with open_runtime(loaded, with_rules=False) as runtime:
            for name in files:
                try:
                    data = await asyncio.to_thread(_read, name)
                except OSError as error:
                    err_console.print(f"alertd: {name}: cannot read: {error}", markup=False)
                    status = EX_TEMPFAIL
                    continue
                envelope = Envelope(source=source, mail_from=mail_from, rcpt_to=rcpt)
                try:
                    accepted = await runtime.store.accept(
                        RawMessage(envelope, data, datetime.now(UTC))
                    )
                except Exception as error:  # noqa: BLE001 - any failure to store means "try again"
                    err_console.print(f"alertd: {name}: not stored: {error}", markup=False)
                    status = EX_TEMPFAIL
                    continue
                typer.echo(str(accepted.id))
                if accepted.duplicate:
                    err_console.print(f"{name}: already stored as message {accepted.id}",
                                      markup=False)
            if process:
                await _process(runtime)
    except Exception as error:  # noqa: BLE001 - whatever stops storing, the MTA must retry
        err_console.print(f"alertd: cannot store mail: {error}", markup=False)
        return EX_TEMPFAIL
    return status


async def _process(runtime: Runtime) -> None:
    """Process what is due; a failure here is reported but the mail is already safe."""
    try:
        runtime.load_rules()
        report = await runtime.worker().drain()
    except Exception as error:  # noqa: BLE001 - the mail is stored; say why it waits
        err_console.print(f"alertd: stored, but not processed: {error}", markup=False)
        return
    err_console.print(_report_line(report.processed, report.by_state), markup=False)


def _read(name: str) -> bytes:
    return sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()


def _report_line(processed: int, by_state: dict[str, int]) -> str:
    detail = ", ".join(f"{state} {count}" for state, count in sorted(by_state.items()))
    return f"processed {processed}" + (f": {detail}" if detail else "")
