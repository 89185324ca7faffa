"""Test helpers that work through alertd's own services and read outcomes back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from alertd.db.tables import Message
from alertd.domain import Envelope, RawMessage
from alertd.inbox.views import list_messages, raw_message, show_message
from alertd.inbox.worker import DrainReport
from alertd.runtime import Runtime
from alertd.tickets.views import list_tickets, show_ticket


async def deliver(
    runtime: Runtime, data: bytes, *, received_at: datetime | None = None,
    source: str = "test", mail_from: str | None = None,
) -> int:
    """Accept one mail into the inbox and return its id."""
    envelope = Envelope(source=source, mail_from=mail_from)
    accepted = await runtime.store.accept(
        RawMessage(envelope, data, received_at or datetime.now(UTC))
    )
    return accepted.id


async def process(runtime: Runtime) -> DrainReport:
    """Drain the inbox once."""
    return await runtime.worker().drain()


async def deliver_and_process(runtime: Runtime, data: bytes, **kwargs: Any) -> dict[str, Any]:
    """Accept and process one mail; return its message row as `messages show` gives it."""
    message_id = await deliver(runtime, data, **kwargs)
    await process(runtime)
    return await message(runtime, message_id)


async def tickets(runtime: Runtime, status: str | None = None) -> list[dict[str, Any]]:
    """Tickets as `tickets list --format json` gives them, oldest first."""
    async with runtime.sessions() as session:
        rows = await list_tickets(session, status=status)
    return sorted(rows, key=lambda row: row["id"])


async def ticket(runtime: Runtime, ticket_id: int) -> dict[str, Any]:
    """One ticket with history, as `tickets show --format json` gives it."""
    async with runtime.sessions() as session:
        return await show_ticket(session, ticket_id)


async def messages(runtime: Runtime) -> list[dict[str, Any]]:
    """Messages, oldest first."""
    async with runtime.sessions() as session:
        rows = await list_messages(session)
    return sorted(rows, key=lambda row: row["id"])


async def message(runtime: Runtime, message_id: int) -> dict[str, Any]:
    """One message in full."""
    async with runtime.sessions() as session:
        return await show_message(session, message_id)


async def message_count(runtime: Runtime) -> int:
    """How many rows the inbox holds."""
    async with runtime.sessions() as session:
        return len((await session.execute(select(Message.id))).all())


async def raw(runtime: Runtime, message_id: int) -> bytes:
    """The stored bytes of one message."""
    async with runtime.sessions() as session:
        return await raw_message(session, message_id)
