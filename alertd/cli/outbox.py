"""`alertd outbox list|retry|cancel`: the Automate actions tickets queued (SPEC R5.5).

An entry a launch may have reached Automate with, but that could not be
confirmed, waits here as `unconfirmed`: `retry` launches it again (an
admin has checked Automate), `cancel` gives up on it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from alertd.cli.common import OutputFormat, database_session, emit_json, emit_table, run
from alertd.outbox.store import STATES, list_entries

app = typer.Typer(help="Automate actions (Ticket Finish scripts) queued by tickets.",
                  no_args_is_help=True)

ACTOR = "cli"


@app.command("list")
def list_(
    state: Annotated[str | None, typer.Option(help=f"Only entries in this state: "
                                              f"{', '.join(STATES)}.")] = None,
    ticket: Annotated[int | None, typer.Option(help="Only entries of this ticket.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
    output: Annotated[OutputFormat, typer.Option("--format", help="table or json.")] = (
        OutputFormat.table
    ),
) -> None:
    """List outbox entries, newest first."""
    if state is not None and state not in STATES:
        raise typer.BadParameter(f"state must be one of {', '.join(STATES)}")

    async def go() -> None:
        async with database_session() as (_, session):
            entries = await list_entries(session, state=state, ticket_id=ticket, limit=limit)
        if output is OutputFormat.json:
            emit_json(entries)
            return
        emit_table("Outbox", ["id", "ticket", "script", "target", "state", "attempts",
                              "outcome / last error", "created"], (
            [e["id"], e["ticket_id"], e["label"], f"{e['entity_type']} {e['entity_id']}",
             e["state"], e["attempts"], e["outcome"] or e["last_error"], e["created_at"]]
            for e in entries
        ))

    run(go())


@app.command("retry")
def retry(entry_id: Annotated[int, typer.Argument(help="Outbox entry id.")]) -> None:
    """Launch a failed or unconfirmed entry again (after checking Automate)."""

    async def go() -> None:
        async with database_session() as (runtime, _):
            await runtime.outbox.retry(entry_id, actor=ACTOR)
        typer.echo(f"outbox entry {entry_id} will be launched again")

    run(go())


@app.command("cancel")
def cancel(entry_id: Annotated[int, typer.Argument(help="Outbox entry id.")]) -> None:
    """Give up on an entry that is pending, failed or unconfirmed."""

    async def go() -> None:
        async with database_session() as (runtime, _):
            await runtime.outbox.cancel(entry_id, actor=ACTOR)
        typer.echo(f"outbox entry {entry_id} cancelled")

    run(go())
