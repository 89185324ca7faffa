"""`alertd tickets list|show|resolve|close`: working tickets (R4.4)."""

from __future__ import annotations

from typing import Annotated

import typer

from alertd.cli.common import (
    OutputFormat,
    database_session,
    emit_fields,
    emit_json,
    emit_table,
    run,
)
from alertd.tickets.links import Links
from alertd.tickets.views import TICKET_STATUSES, list_tickets, show_ticket

app = typer.Typer(help="Alert tickets: list, show, resolve and close.", no_args_is_help=True)

FormatOption = Annotated[OutputFormat, typer.Option("--format", help="table or json.")]
ACTOR = "cli"


@app.command("list")
def list_(
    status: Annotated[str | None, typer.Option(help="open, resolved or closed.")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many, newest first.")] = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """List tickets, newest first (all of them unless --status is given)."""
    if status is not None and status not in TICKET_STATUSES:
        raise typer.BadParameter(f"status must be one of {', '.join(TICKET_STATUSES)}")

    async def go() -> None:
        async with database_session() as (_, session):
            rows = await list_tickets(session, status=status, limit=limit)
        if output is OutputFormat.json:
            emit_json(rows)
            return
        emit_table(
            "Tickets",
            ["id", "status", "prio", "summary", "asset", "client", "seen", "last seen"],
            ([r["id"], r["status"], r["priority"], r["summary"],
              r["asset"]["name"] if r["asset"] else f"({r['matched_by']})",
              r["client"], r["occurrences"], r["last_seen"]] for r in rows),
        )

    run(go())


@app.command("show")
def show(
    ticket_id: Annotated[int, typer.Argument(help="Ticket id.")],
    output: FormatOption = OutputFormat.table,
) -> None:
    """Show one ticket with its history, Automate actions and links."""

    async def go() -> None:
        async with database_session() as (runtime, session):
            detail = await show_ticket(session, ticket_id,
                                       links=Links.from_settings(runtime.settings))
        if output is OutputFormat.json:
            emit_json(detail)
            return
        asset = detail["asset"]
        emit_fields([
            ("id", detail["id"]), ("status", detail["status"]), ("type", detail["type"]),
            ("summary", detail["summary"]), ("priority", detail["priority"]),
            ("asset", f"{asset['name']} (Automate id {asset['automate_id']})" if asset
             else "unmatched"),
            ("matched by", detail["matched_by"]), ("client", detail["client"]),
            ("site", detail["site"]), ("alert type", detail["alert_type"]),
            ("dedup key", detail["dedup_key"]), ("occurrences", detail["occurrences"]),
            ("Automate ticket", detail["automate_ticket_id"]),
            ("first seen", detail["first_seen"]), ("last seen", detail["last_seen"]),
            ("resolved at", detail["resolved_at"]), ("resolution", detail["resolution"]),
            ("fields", detail["fields"]),
            *((f"link: {link['name']}", link["url"]) for link in detail["links"]),
        ])
        emit_table("History", ["at", "kind", "actor", "message", "detail"], (
            [h["at"], h["kind"], h["actor"], h["message_id"], h["detail"]]
            for h in detail["history"]
        ))
        if detail["outbox"]:
            emit_table("Automate actions", ["id", "action", "label", "state", "attempts",
                                            "outcome", "last error", "finished"], (
                [o["id"], o["action"], o["label"], o["state"], o["attempts"], o["outcome"],
                 o["last_error"], o["finished_at"]] for o in detail["outbox"]
            ))

    run(go())


@app.command("resolve")
def resolve(
    ticket_id: Annotated[int, typer.Argument(help="Ticket id.")],
    note: Annotated[str | None, typer.Option(help="Resolution note.")] = None,
) -> None:
    """Resolve an open ticket."""

    async def go() -> None:
        async with database_session(write=True) as (runtime, session):
            await runtime.tickets.resolve(session, ticket_id, note=note, actor=ACTOR)
        typer.echo(f"ticket {ticket_id} resolved")

    run(go())


@app.command("close")
def close(
    ticket_id: Annotated[int, typer.Argument(help="Ticket id.")],
    note: Annotated[str | None, typer.Option(help="Why it is closed.")] = None,
) -> None:
    """Close a ticket for good (a later problem opens a new ticket)."""

    async def go() -> None:
        async with database_session(write=True) as (runtime, session):
            await runtime.tickets.close(session, ticket_id, actor=ACTOR, note=note)
        typer.echo(f"ticket {ticket_id} closed")

    run(go())
