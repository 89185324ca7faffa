"""Inbox messages as users see them: the list and show shapes of the CLI."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from alertd.db.tables import Message
from alertd.errors import NotFound

MESSAGE_STATES = ("received", "processing", "done", "ignored", "failed")

_LIST_COLUMNS = (
    Message.id, Message.source, Message.message_id, Message.state, Message.action,
    Message.reason, Message.ticket_id, Message.received_at, Message.sender, Message.subject,
    Message.attempts,
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _summary(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "source": row.source,
        "message_id": row.message_id,
        "state": row.state,
        "action": row.action,
        "reason": row.reason,
        "ticket_id": row.ticket_id,
        "received_at": _iso(row.received_at),
        "sender": row.sender,
        "subject": row.subject,
        "attempts": row.attempts,
    }


async def list_messages(
    session: AsyncSession, *, state: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """Messages, newest first, optionally in one state."""
    query = select(*_LIST_COLUMNS).order_by(Message.id.desc())
    if state is not None:
        query = query.where(Message.state == state)
    if limit is not None:
        query = query.limit(limit)
    return [_summary(row) for row in (await session.execute(query)).all()]


async def show_message(session: AsyncSession, message_id: int) -> dict[str, Any]:
    """One message with its envelope, decision and trace (the raw mail is not included)."""
    message = await session.get(Message, message_id)
    if message is None:
        raise NotFound(f"no message {message_id}")
    out = _summary(message)
    out.update({
        "envelope": {
            "mail_from": message.mail_from,
            "rcpt_to": message.rcpt_to,
            "peer": message.peer,
            "mailbox": message.mailbox,
            "uidvalidity": message.uidvalidity,
            "uid": message.uid,
        },
        "size": message.size,
        "content_hash": message.content_hash,
        "alert_time": _iso(message.alert_time),
        "processed_at": _iso(message.processed_at),
        "retry_at": _iso(message.retry_at),
        "sender_rule": message.sender_rule,
        "alert_type": message.alert_type,
        "outcome": message.outcome,
        "fields": message.fields,
        "ruleset_version": message.ruleset_version,
        "trace": message.trace,
    })
    return out


async def raw_message(session: AsyncSession, message_id: int) -> bytes:
    """The mail exactly as received."""
    raw = (await session.execute(select(Message.raw).where(Message.id == message_id))).scalar()
    if raw is None:
        raise NotFound(f"no message {message_id}")
    return bytes(raw)
