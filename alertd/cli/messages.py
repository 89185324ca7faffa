"""`alertd messages process|list|show|retry`: working the durable inbox (R1.4)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from alertd.cli.common import (
    OutputFormat,
    database_session,
    emit_fields,
    emit_json,
    emit_table,
    run,
    settings,
)
from alertd.inbox.views import MESSAGE_STATES, list_messages, raw_message, show_message
from alertd.runtime import open_runtime

app = typer.Typer(help="The durable inbox: process, list, show and retry messages.",
                  no_args_is_help=True)

FormatOption = Annotated[OutputFormat, typer.Option("--format", help="table or json.")]


@app.command("process")
def process() -> None:
    """Process every message that is due, once, then stop."""

    async def go() -> None:
        async with open_runtime(settings()) as runtime:
            report = await runtime.worker().drain()
        detail = ", ".join(f"{state} {count}" for state, count in sorted(report.by_state.items()))
        typer.echo(f"processed {report.processed}" + (f": {detail}" if detail else ""))

    run(go())


@app.command("list")
def list_(
    state: Annotated[str | None, typer.Option(help="Only messages in this state.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
    output: FormatOption = OutputFormat.table,
) -> None:
    """List inbox messages, newest first."""
    if state is not None and state not in MESSAGE_STATES:
        raise typer.BadParameter(f"state must be one of {', '.join(MESSAGE_STATES)}")

    async def go() -> None:
        async with database_session() as (_, session):
            rows = await list_messages(session, state=state, limit=limit)
        if output is OutputFormat.json:
            emit_json(rows)
            return
        emit_table(
            "Messages",
            ["id", "state", "action", "ticket", "from", "subject", "reason"],
            ([r["id"], r["state"], r["action"], r["ticket_id"], r["sender"],
              _cut(r["subject"]), _cut(r["reason"])] for r in rows),
        )

    run(go())


@app.command("show")
def show(
    message_id: Annotated[int, typer.Argument(help="Inbox id.")],
    raw: Annotated[bool, typer.Option("--raw", help="Print the mail as received.")] = False,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Show one message: envelope, state, decision and trace."""

    async def go() -> None:
        async with database_session() as (_, session):
            if raw:
                sys.stdout.buffer.write(await raw_message(session, message_id))
                return
            detail = await show_message(session, message_id)
        if output is OutputFormat.json:
            emit_json(detail)
            return
        emit_fields([
            (name, detail[name]) for name in (
                "id", "source", "message_id", "state", "action", "reason", "ticket_id",
                "received_at", "alert_time", "processed_at", "attempts", "retry_at",
                "sender", "subject", "sender_rule", "alert_type", "outcome", "fields",
            )
        ])
        emit_table("Trace", ["stage", "name", "hit", "detail"], (
            [step["stage"], step["name"], "hit" if step["hit"] else "miss", step["detail"]]
            for step in detail["trace"] or []
        ))

    run(go())


@app.command("retry")
def retry(
    message_ids: Annotated[list[int] | None, typer.Argument(help="Inbox ids.")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Retry every failed message.")] = False,
) -> None:
    """Put failed (or ignored) messages back to be processed again."""
    if bool(message_ids) == failed:
        raise typer.BadParameter("give message ids, or --failed")

    async def go() -> None:
        async with open_runtime(settings(), with_rules=False) as runtime:
            ids = await runtime.store.retry(None if failed else message_ids)
        typer.echo(f"queued {len(ids)} message(s) for processing"
                   + (f": {', '.join(map(str, ids))}" if ids and len(ids) <= 20 else ""))

    run(go())


def _cut(text: str | None, width: int = 60) -> str | None:
    if text is None or len(text) <= width:
        return text
    return text[: width - 1] + "…"



