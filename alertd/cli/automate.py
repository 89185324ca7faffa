"""`alertd automate check|import|scripts` (SPEC R5.1-R5.5).

`check` prints one line each for URL, TLS, credentials, ClientId and
permissions. `import clients|users|assets|all [--dry-run]` shows rich
progress bars on a terminal and plain lines otherwise, then a report per
kind: created, updated, unchanged, skipped and failed, with reasons.
`scripts [--name PATTERN]` lists candidate Ticket Finish scripts.

Exit status: 0 when everything ran, 78 for a configuration problem (a
refused kind, URL, TLS, password, MFA user, ClientId), 75 when Automate
or the database became unavailable, 1 when Automate refused a kind (for
example a permission) or a check failed for another reason.
"""

from __future__ import annotations

import sys
import time
from enum import StrEnum
from typing import Annotated, Any, cast

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.text import Text

from alertd.assets.import_rows import ImportReport
from alertd.assets.importer import Importer
from alertd.automate.check import run_checks
from alertd.automate.client import AutomateClient
from alertd.automate.fields import AutomateKind
from alertd.automate.scripts import Script
from alertd.cli.common import (
    OutputFormat,
    console,
    emit_json,
    emit_table,
    err_console,
    run,
    settings,
)
from alertd.errors import (
    EX_FAILURE,
    EX_OK,
    EX_TEMPFAIL,
    AutomateMisconfigured,
    exit_code_for,
)
from alertd.runtime import open_runtime
from alertd.settings import AutomateSettings

app = typer.Typer(help="ConnectWise Automate: check the connection, import clients, users and "
                       "assets.", no_args_is_help=True)


class WhatArg(StrEnum):
    """What `import` brings in."""

    clients = "clients"
    users = "users"
    assets = "assets"
    all = "all"


class KindArg(StrEnum):
    """An Automate asset kind."""

    servers = "servers"
    workstations = "workstations"
    routers = "routers"
    printers = "printers"
    network_devices = "network_devices"


def _automate() -> AutomateSettings:
    loaded = settings()
    if loaded.automate is None:
        raise AutomateMisconfigured(
            "automate is not configured: add an `automate:` section (url, client_id, "
            "username, password_file or password_env) to alertd.yaml", aspect="config",
        )
    return loaded.automate


@app.command("check")
def check(
    output: Annotated[OutputFormat, typer.Option("--format", help="table or json.")] = (
        OutputFormat.table
    ),
) -> None:
    """Check URL, TLS, credentials, ClientId and permissions, one line each."""
    # One retry at most: an admin waiting at the prompt wants the answer, not a back-off.
    configured = _automate()
    automate = configured.model_copy(update={"retries": min(1, configured.retries)})

    async def go() -> int:
        async with AutomateClient(automate) as client:
            lines = await run_checks(client)
        if output is OutputFormat.json:
            emit_json([line.as_dict() for line in lines])
        else:
            styles = {"ok": "green", "fail": "bold red", "skipped": "yellow"}
            for line in lines:
                text = Text(f"{line.aspect:<12} ")
                text.append(f"{line.status.upper():<8}", style=styles[line.status])
                text.append(line.message)
                console.print(text)
        for line in lines:
            if line.status == "fail":
                return exit_code_for(line.error) if line.error is not None else EX_FAILURE
        return EX_OK

    raise typer.Exit(run(go()))


class _RichProgress:
    """Progress bars on a terminal (stderr)."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[str, Any] = {}

    def begin(self, task: str, total: int | None = None) -> None:
        self._tasks[task] = self._progress.add_task(task, total=total)

    def advance(self, task: str, count: int = 1) -> None:
        if task in self._tasks:
            self._progress.advance(self._tasks[task], count)

    def end(self, task: str) -> None:
        if task in self._tasks:
            done = self._progress.tasks[self._tasks[task]].completed
            self._progress.update(self._tasks[task], total=done, completed=done)


class _LineProgress:
    """Plain progress lines (stderr), at most one per task every few seconds."""

    def __init__(self, every: float = 5.0) -> None:
        self._every = every
        self._counts: dict[str, int] = {}
        self._totals: dict[str, int | None] = {}
        self._last: dict[str, float] = {}

    def _say(self, text: str) -> None:
        err_console.print(f"automate import: {text}", markup=False, highlight=False)

    def begin(self, task: str, total: int | None = None) -> None:
        self._counts[task], self._totals[task] = 0, total
        self._last[task] = time.monotonic()
        self._say(f"{task}: started" + (f" ({total} to do)" if total is not None else ""))

    def advance(self, task: str, count: int = 1) -> None:
        self._counts[task] = self._counts.get(task, 0) + count
        now = time.monotonic()
        if now - self._last.get(task, 0.0) >= self._every:
            self._last[task] = now
            total = self._totals.get(task)
            self._say(f"{task}: {self._counts[task]}" + (f" of {total}" if total else ""))

    def end(self, task: str) -> None:
        self._say(f"{task}: {self._counts.get(task, 0)} done")


@app.command("import")
def import_(
    what: Annotated[WhatArg, typer.Argument(help="clients (with sites), users, assets or all.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would change; "
                                          "write nothing.")] = False,
    kind: Annotated[list[KindArg] | None, typer.Option(
        "--kind", help="Asset kinds to import (with `assets`); default: every mapped kind.",
    )] = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="table or json.")] = (
        OutputFormat.table
    ),
) -> None:
    """Import from Automate; a report per kind ends the run."""
    loaded = settings()
    automate = _automate()
    kinds = cast(list[AutomateKind], [k.value for k in kind or []])

    async def go() -> ImportReport:
        async with open_runtime(loaded, with_rules=False) as runtime, \
                AutomateClient(automate) as client:
            if sys.stderr.isatty() and output is OutputFormat.table:
                columns = (SpinnerColumn(), TextColumn("{task.description:<16}"), BarColumn(),
                           MofNCompleteColumn())
                with Progress(*columns, console=err_console, transient=False) as bars:
                    return await Importer(runtime, client, progress=_RichProgress(bars)).run(
                        what.value, dry_run=dry_run, kinds=kinds or None)
            return await Importer(runtime, client, progress=_LineProgress()).run(
                what.value, dry_run=dry_run, kinds=kinds or None)

    report = run(go())
    if output is OutputFormat.json:
        emit_json(report.as_dict())
    else:
        print_report(report)
    if report.unavailable:
        raise typer.Exit(EX_TEMPFAIL)
    if report.refused:
        raise typer.Exit(EX_FAILURE)
    raise typer.Exit(EX_OK)


def print_report(report: ImportReport) -> None:
    """The per-kind table, then reasons, notes and errors."""
    title = "Automate import" + (" (dry run: nothing written)" if report.dry_run else "")
    emit_table(title, ["kind", "created", "updated", "unchanged", "skipped", "failed"],
               ([k.kind, k.created, k.updated, k.unchanged, k.skipped, k.failed]
                for k in report.kinds))
    for kind_report in report.kinds:
        for (outcome, reason), count in sorted(kind_report.reasons.items()):
            examples = kind_report.examples.get((outcome, reason), [])
            shown = f" (e.g. {', '.join(examples)})" if examples else ""
            console.print(f"{kind_report.kind}: {count} {outcome}: {reason}{shown}",
                          markup=False)
        for note in kind_report.notes:
            console.print(f"{kind_report.kind}: {note}", markup=False)
        if kind_report.error:
            console.print(f"{kind_report.kind}: not finished: {kind_report.error}",
                          markup=False, style="bold red")
    if report.error:
        console.print(f"import ended early: {report.error}", markup=False, style="bold red")
    if not report.dry_run:
        console.print(f"tickets linked to their asset: {report.linked_tickets}", markup=False)
    console.print(f"{report.requests} requests to Automate in {report.seconds:.1f} s",
                  markup=False)



@app.command("scripts")
def scripts(
    name: Annotated[str | None, typer.Option(
        "--name", help="Only scripts whose name contains this (e.g. 'Ticket Finish').",
    )] = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="table or json.")] = (
        OutputFormat.table
    ),
) -> None:
    """List scripts that could finish tickets, with their ids, folders and parameters."""
    automate = _automate()

    async def go() -> list[Script]:
        async with AutomateClient(automate) as client:
            return [s for s in await client.scripts(name_like=name) if isinstance(s, Script)]

    found = run(go())
    if output is OutputFormat.json:
        emit_json([{"id": s.id, "name": s.name, "folder": s.folder,
                    "parameters": list(s.parameters), "computer_script": s.is_computer_script,
                    "maintenance_script": s.is_maintenance_script, "comments": s.comments}
                   for s in found])
        return
    emit_table(f"Automate scripts{f' named like {name!r}' if name else ''}",
               ["id", "name", "folder", "parameters", "target"],
               ([s.id, s.name, s.folder, ", ".join(s.parameters),
                 "computer" if s.is_computer_script else "ticket / other"] for s in found))
    if found:
        console.print("Use one in alertd.yaml under automate.finish.scripts, e.g. "
                      f"`- id: {found[0].id}` with its parameters as templates.", markup=False)
    else:
        console.print("no scripts found", markup=False)
