"""The inbox table's operations: accept, claim, complete, fail, retry (R1.4).

`accept()` commits before it returns, so a source acknowledges only what is
durable. Duplicates are settled by unique constraints, not by looking first:
the same Message-ID with the same content, or the same mailbox UID, is
stored once however many times and through however many instances it
arrives. Workers claim rows with a lease (`FOR UPDATE SKIP LOCKED` on
PostgreSQL) and finish them only if they still hold the claim, so a row
taken back after an expired lease is never processed twice.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alertd.clock import Clock
from alertd.db.engine import storage_errors
from alertd.db.tables import Message
from alertd.domain import Accepted, Envelope, RawMessage
from alertd.errors import NotFound, PermanentError

MESSAGE_KEY_LENGTH = 255
_HEADER_END = (b"\r\n\r\n", b"\n\n")


class LeaseLost(Exception):
    """Another worker took this message back after our lease expired."""


class RetryRefused(PermanentError):
    """A message whose state does not allow a retry."""


@dataclass(frozen=True, slots=True)
class Claimed:
    """A message handed to one worker, with everything needed to process it."""

    id: int
    envelope: Envelope
    data: bytes
    received_at: datetime
    attempts: int


@dataclass(frozen=True, slots=True)
class Completion:
    """What processing a message found, written back to its row."""

    state: str
    action: str
    reason: str | None = None
    ticket_id: int | None = None
    sender: str | None = None
    subject: str | None = None
    alert_time: datetime | None = None
    sender_rule: str | None = None
    alert_type: str | None = None
    outcome: str | None = None
    fields: dict[str, str] | None = None
    trace: list[dict[str, object]] | None = None
    ruleset_version: str | None = None


def content_hash(data: bytes) -> str:
    """SHA-256 of the mail with line endings made uniform (SMTP and IMAP differ)."""
    return hashlib.sha256(data.replace(b"\r\n", b"\n")).hexdigest()


def header_message_id(data: bytes) -> str | None:
    """The Message-ID header, read from the header block only (cheap, never raises)."""
    end = min((i for sep in _HEADER_END if (i := data.find(sep)) >= 0), default=len(data))
    try:
        headers = BytesHeaderParser(policy=compat32).parsebytes(data[: end + 4])
        value = headers.get("message-id")
    except Exception:  # noqa: BLE001 - a broken header block just has no usable Message-ID
        return None
    if value is None:
        return None
    text = str(value).strip()
    return text or None


class InboxStore:
    """The inbox operations, each in its own transaction unless a session is given."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self.sessions = sessions
        self.clock = clock
        self.arrived = asyncio.Event()
        """Set on every accept, so workers in this process start at once."""

    # -- accepting ---------------------------------------------------------------

    async def accept(self, message: RawMessage) -> Accepted:
        """Store ``message`` durably (committed on return); a repeat returns the first id."""
        envelope = message.envelope
        message_id = header_message_id(message.data)
        values = {
            "source": envelope.source,
            "mail_from": envelope.mail_from,
            "rcpt_to": list(envelope.rcpt_to),
            "peer": envelope.peer,
            "mailbox": envelope.mailbox,
            "uidvalidity": envelope.uidvalidity,
            "uid": envelope.uid,
            "message_id": message_id,
            "message_key": (message_id or "")[:MESSAGE_KEY_LENGTH],
            "content_hash": content_hash(message.data),
            "size": len(message.data),
            "raw": message.data,
            "received_at": message.received_at,
            "state": "received",
            "attempts": 0,
        }
        async with storage_errors(), self.sessions.begin() as session:
            insert = _insert_ignoring_duplicates(session).values(**values)
            row = (await session.execute(insert.returning(Message.id))).first()
            if row is not None:
                accepted = Accepted(int(row[0]), duplicate=False)
            else:
                accepted = Accepted(await self._existing(session, values), duplicate=True)
        self.arrived.set()
        return accepted

    async def _existing(self, session: AsyncSession, values: dict[str, Any]) -> int:
        same_content = and_(
            Message.message_key == values["message_key"],
            Message.content_hash == values["content_hash"],
        )
        same_uid = and_(
            Message.mailbox == values["mailbox"],
            Message.uidvalidity == values["uidvalidity"],
            Message.uid == values["uid"],
        ) if values["uid"] is not None else None
        condition = same_content if same_uid is None else or_(same_content, same_uid)
        found = (await session.execute(
            select(Message.id).where(condition).order_by(Message.id).limit(1)
        )).scalar()
        assert found is not None, "insert ignored but no conflicting row found"
        return int(found)

    # -- claiming ----------------------------------------------------------------

    async def claim(
        self, worker: str, *, limit: int, lease: timedelta, max_attempts: int
    ) -> list[Claimed]:
        """Take up to ``limit`` messages that are due, oldest first, under a lease."""
        now = self.clock.now()
        async with storage_errors(), self.sessions.begin() as session:
            ids = await self._due_ids(session, limit, now)
            if not ids:
                return []
            await self._give_up_on_crashers(session, ids, max_attempts, now)
            result = await session.execute(
                update(Message)
                .where(Message.id.in_(ids))
                .where(or_(Message.state != "failed", Message.retry_at.is_not(None)))
                .values(state="processing", claimed_by=worker, lease_until=now + lease,
                        attempts=Message.attempts + 1)
                .returning(Message.id, Message.source, Message.mail_from, Message.rcpt_to,
                           Message.peer, Message.mailbox, Message.uidvalidity, Message.uid,
                           Message.raw, Message.received_at, Message.attempts)
            )
            rows = sorted(result.all(), key=lambda row: row[0])
        return [_claimed(row) for row in rows]

    async def _due_ids(self, session: AsyncSession, limit: int, now: datetime) -> list[int]:
        conditions = (
            Message.state == "received",
            and_(Message.state == "failed", Message.retry_at <= now),
            and_(Message.state == "processing", Message.lease_until < now),
        )
        ids: list[int] = []
        for condition in conditions:
            query = select(Message.id).where(condition).order_by(Message.id)
            query = query.limit(limit - len(ids))
            if dialect_name(session) == "postgresql":
                query = query.with_for_update(skip_locked=True)
            ids.extend(int(i) for i in (await session.execute(query)).scalars())
            if len(ids) >= limit:
                break
        return ids

    async def _give_up_on_crashers(
        self, session: AsyncSession, ids: Sequence[int], max_attempts: int, now: datetime
    ) -> None:
        """A message whose lease keeps expiring (it kills or hangs its worker) stops here."""
        await session.execute(
            update(Message)
            .where(Message.id.in_(ids), Message.state == "processing",
                   Message.lease_until < now, Message.attempts >= max_attempts)
            .values(state="failed", retry_at=None, claimed_by=None, lease_until=None,
                    reason=f"gave up after {max_attempts} attempts: processing never finished "
                           "(the worker crashed or hung); retry by hand")
        )

    # -- finishing ---------------------------------------------------------------

    async def complete(
        self, session: AsyncSession, message_id: int, worker: str, completion: Completion
    ) -> None:
        """Record the outcome in the caller's transaction; LeaseLost if the claim is gone."""
        result = await session.execute(
            update(Message)
            .where(Message.id == message_id, Message.claimed_by == worker,
                   Message.state == "processing")
            .values(
                state=completion.state, action=completion.action, reason=completion.reason,
                ticket_id=completion.ticket_id, sender=completion.sender,
                subject=completion.subject, alert_time=completion.alert_time,
                sender_rule=completion.sender_rule, alert_type=completion.alert_type,
                outcome=completion.outcome, fields=completion.fields, trace=completion.trace,
                ruleset_version=completion.ruleset_version, processed_at=self.clock.now(),
                claimed_by=None, lease_until=None, retry_at=None,
            )
            .returning(Message.id)
        )
        if result.first() is None:
            raise LeaseLost(message_id)

    async def fail(
        self, message_id: int, worker: str, reason: str, *, retry_at: datetime | None
    ) -> None:
        """Mark a claimed message failed, with when (if ever) to try again."""
        async with storage_errors(), self.sessions.begin() as session:
            await session.execute(
                update(Message)
                .where(Message.id == message_id, Message.claimed_by == worker,
                       Message.state == "processing")
                .values(state="failed", reason=reason, retry_at=retry_at,
                        processed_at=self.clock.now(), claimed_by=None, lease_until=None)
            )

    async def release(self, message_ids: Sequence[int], worker: str) -> None:
        """Hand claimed but unstarted messages back, so they need not wait for the lease."""
        if not message_ids:
            return
        async with storage_errors(), self.sessions.begin() as session:
            await session.execute(
                update(Message)
                .where(Message.id.in_(message_ids), Message.claimed_by == worker,
                       Message.state == "processing")
                .values(state="received", claimed_by=None, lease_until=None,
                        attempts=Message.attempts - 1)
            )

    # -- admin -------------------------------------------------------------------

    async def retry(self, message_ids: Sequence[int] | None = None) -> list[int]:
        """Put failed (or ignored) messages back to be processed; None means every failed one."""
        async with storage_errors(), self.sessions.begin() as session:
            if message_ids is None:
                query = select(Message.id).where(Message.state == "failed")
            else:
                rows = (await session.execute(
                    select(Message.id, Message.state).where(Message.id.in_(message_ids))
                )).all()
                states = {int(row[0]): row[1] for row in rows}
                for message_id in message_ids:
                    if message_id not in states:
                        raise NotFound(f"no message {message_id}")
                    if states[message_id] not in {"failed", "ignored"}:
                        raise RetryRefused(
                            f"message {message_id} is {states[message_id]}; only failed or "
                            "ignored messages can be retried"
                        )
                query = select(Message.id).where(Message.id.in_(message_ids))
            ids = [int(i) for i in (await session.execute(query)).scalars()]
            if ids:
                await session.execute(
                    update(Message).where(Message.id.in_(ids))
                    .values(state="received", retry_at=None, attempts=0, claimed_by=None,
                            lease_until=None)
                )
        if ids:
            self.arrived.set()
        return ids


def _insert_ignoring_duplicates(session: AsyncSession) -> Any:
    module = postgresql if dialect_name(session) == "postgresql" else sqlite
    return module.insert(Message).on_conflict_do_nothing()


def dialect_name(session: AsyncSession) -> str:
    """`sqlite` or `postgresql`."""
    return session.get_bind().dialect.name


def _claimed(row: Any) -> Claimed:
    (message_id, source, mail_from, rcpt_to, peer, mailbox, uidvalidity, uid,
     raw, received_at, attempts) = row
    return Claimed(
        id=int(message_id),
        envelope=Envelope(source=source, mail_from=mail_from, rcpt_to=tuple(rcpt_to or ()),
                          peer=peer, mailbox=mailbox, uidvalidity=uidvalidity, uid=uid),
        data=bytes(raw),
        received_at=received_at,
        attempts=int(attempts),
    )
