"""`/messages`: the durable inbox over HTTP: list, show and retry (R1.4, R6.7).

The raw mail never appears in JSON (it can be megabytes, and `alertd
messages show --raw` is there for it). Retry is `alertd messages retry`: a
failed or ignored message goes back to `received` and the workers take it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from alertd.db.tables import Message
from alertd.errors import NotFound
from alertd.inbox.views import show_message
from alertd.web.auth import require_token
from alertd.web.common import Api, IdPath, Limit, Model, Offset, error_responses, text_query

MessageState = Literal["received", "processing", "done", "ignored", "failed"]

_LIST_COLUMNS = (
    Message.id, Message.source, Message.message_id, Message.state, Message.action,
    Message.reason, Message.ticket_id, Message.received_at, Message.sender, Message.subject,
    Message.attempts,
)


class MessageSummary(Model):
    """An inbox message as listed."""

    id: int
    source: str = Field(description="smtp:<listener>, imap:<mailbox>, pipe, automate…")
    message_id: str | None = Field(description="The mail's Message-ID header.")
    state: MessageState
    action: str | None = Field(description="What it did to a ticket.")
    reason: str | None = Field(description="Why it failed or was ignored.")
    ticket_id: int | None
    received_at: datetime
    sender: str | None
    subject: str | None
    attempts: int


class EnvelopeOut(Model):
    """How the mail arrived."""

    mail_from: str | None
    rcpt_to: list[Any]
    peer: str | None
    mailbox: str | None
    uidvalidity: int | None
    uid: int | None


class TraceStepOut(Model):
    """One rule tried while deciding, hit or miss."""

    stage: str
    name: str
    hit: bool
    detail: str = ""


class MessageDetail(MessageSummary):
    """An inbox message in full, without the raw mail."""

    envelope: EnvelopeOut
    size: int
    content_hash: str
    alert_time: datetime | None
    processed_at: datetime | None
    retry_at: datetime | None
    sender_rule: str | None
    alert_type: str | None
    outcome: str | None
    fields: dict[str, Any] | None
    ruleset_version: str | None
    trace: list[TraceStepOut] | None


async def list_messages(
    session: AsyncSession, *, state: str | None = None, source: str | None = None,
    limit: int = 100, offset: int = 0,
) -> list[dict[str, Any]]:
    """Messages, newest first."""
    query = select(*_LIST_COLUMNS).order_by(Message.id.desc())
    if state is not None:
        query = query.where(Message.state == state)
    if source is not None:
        query = query.where(Message.source == source)
    rows = (await session.execute(query.offset(offset).limit(limit))).all()
    return [dict(row._mapping) for row in rows]


def router(api: Api) -> APIRouter:
    """The inbox routes, bound to the daemon's services."""
    routes = APIRouter(prefix="/messages", tags=["messages"],
                       dependencies=[Depends(require_token(api.token))],
                       responses=error_responses(401, 503))

    @routes.get("", response_model=list[MessageSummary])
    async def messages(
        state: Annotated[MessageState | None, Query(description="Only this state.")] = None,
        source: Annotated[str | None, text_query("Only this source (e.g. smtp:main).")] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> list[dict[str, Any]]:
        """Inbox messages, newest first."""
        async with api.reading() as session:
            return await list_messages(session, state=state, source=source, limit=limit,
                                       offset=offset)

    @routes.get("/{message_id}", response_model=MessageDetail, responses=error_responses(404))
    async def message(message_id: IdPath) -> dict[str, Any]:
        """One message: envelope, state, decision and trace (never the raw mail)."""
        async with api.reading() as session:
            return await show_message(session, message_id)

    @routes.post("/{message_id}/retry", response_model=MessageSummary,
                 responses=error_responses(404, 409))
    async def retry(message_id: IdPath) -> dict[str, Any]:
        """Put a failed or ignored message back to be processed again."""
        await api.runtime.store.retry([message_id])
        async with api.reading() as session:
            rows = (await session.execute(
                select(*_LIST_COLUMNS).where(Message.id == message_id))).all()
        if not rows:
            raise NotFound(f"no message {message_id}")
        return dict(rows[0]._mapping)

    return routes
