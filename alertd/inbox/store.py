"""The inbox table's operations: accept, claim, renew, complete, fail, retry (R1.4).

`accept()` commits before it returns, so a source acknowledges only what is
durable; `accept_many()` stores a batch (an IMAP fetch, a burst of SMTP
sessions) in one transaction. Duplicates are settled by unique constraints,
not by looking first: the same Message-ID with the same content, or the
same mailbox UID, is stored once however many times and through however
many instances it arrives. Workers claim rows under a lease
(`FOR UPDATE SKIP LOCKED` on PostgreSQL) and complete them only in a
transaction that has re-confirmed the claim, so a row taken back after an
expired lease is never processed twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any

from sqlalchemy import and_, bindparam, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alertd.clock import Clock
from alertd.db.engine import storage_errors
from alertd.db.sqlite_writer import SqliteInboxWriter
from alertd.db.tables import MESSAGES, Message
from alertd.domain import Accepted, Envelope, RawMessage
from alertd.errors import NotFound, PermanentError, StorageUnavailable
from alertd.inbox.gate import WriteGate
from alertd.safetext import storable, storable_or_none

MESSAGE_KEY_LENGTH = 255
GROUP_COMMIT_MAX = 200
"""Most mails one group commit stores."""
GATHER_TURNS = 12
"""Turns of the event loop a group commit waits, at most, for mail already on its way."""
GATHER_MAX_S = 0.001
"""The longest a group commit waits for more mail to join it."""
IDLE_TURN_S = 30e-6
"""A loop turn this short had nothing else to run: no more mail is on its way just now."""
OFF_LOOP_BYTES = 1_000_000
"""A batch bigger than this is hashed and scanned in a thread, not on the event loop."""
HEADER_SCAN_BYTES = 65_536
"""How far into a mail its Message-ID is looked for."""
_HEADER_END = (b"\r\n\r\n", b"\n\n")
_MESSAGE_ID = re.compile(rb"(?im)^message-id:[ \t]*([^\r\n]*)\r?\n([ \t])?")


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
    data = data[:HEADER_SCAN_BYTES]
    end = min((i for sep in _HEADER_END if (i := data.find(sep)) >= 0), default=len(data))
    found = _MESSAGE_ID.search(data, 0, end + 1)
    if found is not None and not found.group(2):
        # The usual one-line header: no need for the full header parser.
        text = storable(found.group(1).decode("utf-8", "replace").strip())
        return text or None
    if found is None and b"message-id" not in data[:end].lower():
        return None
    try:
        headers = BytesHeaderParser(policy=compat32).parsebytes(data[: end + 4])
        value = headers.get("message-id")
    except Exception:  # noqa: BLE001 - a broken header block just has no usable Message-ID
        return None
    if value is None:
        return None
    text = storable(str(value).strip())
    return text or None


def dialect_name(session: AsyncSession) -> str:
    """`sqlite` or `postgresql`."""
    return session.get_bind().dialect.name


class InboxStore:
    """The inbox operations, each in its own transaction unless a session is given."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        exclusive_writes: bool = False,
        sqlite_writer: SqliteInboxWriter | None = None,
    ) -> None:
        self.sessions = sessions
        self.sqlite_writer = sqlite_writer
        """SQLite: stores mail in one thread hop (the durable accept's fast path)."""
        self.clock = clock
        self.arrived = asyncio.Event()
        """Set on every accept, so workers in this process start at once."""
        self.gate = WriteGate(exclusive=exclusive_writes)
        """Turns at the database: storing before processing (SQLite)."""
        self._pending: list[tuple[RawMessage, asyncio.Future[Accepted]]] = []
        self._committer: asyncio.Task[None] | None = None
        """Runs group commits while mail is pending; owned here, whoever waits for it."""

    # -- accepting ---------------------------------------------------------------

    async def accept(self, message: RawMessage) -> Accepted:
        """Store ``message`` durably (committed on return); a repeat returns the first id.

        Concurrent calls share one transaction (group commit): one task
        commits for everybody, and while a commit runs the next mails queue
        and the next commit takes them all. Per mail that is one future, not
        a lock, a task and a wake-up each. A caller cancelled while waiting
        (a dropped SMTP session) cancels only its own future, never the
        commit others are waiting for.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Accepted] = loop.create_future()
        self._pending.append((message, future))
        if self._committer is None:
            # It starts on the next turn of the loop, so sessions whose DATA is already
            # in hand join the first commit too.
            self._committer = loop.create_task(self._commit_pending())
        return await future

    async def _commit_pending(self) -> None:
        """Commit the pending mail in groups until none is left; answer each waiter."""
        batch: list[tuple[RawMessage, asyncio.Future[Accepted]]] = []
        try:
            while self._pending:
                await _gather_group()
                batch = self._pending[:GROUP_COMMIT_MAX]
                del self._pending[:GROUP_COMMIT_MAX]
                try:
                    answers = await self.accept_many([message for message, _ in batch])
                except Exception as error:  # noqa: BLE001 - each waiter gets the failure
                    _settle(batch, error, [])
                else:
                    _settle(batch, None, answers)
                batch = []
        finally:
            self._committer = None
            # Cancelled (at the shutdown deadline): nobody is left waiting unanswered.
            interrupted = StorageUnavailable("storing was interrupted")
            _settle(batch + self._pending, interrupted, [])
            del self._pending[:]

    async def close(self) -> None:
        """Wait for a group commit still running (its callers may be gone)."""
        if self._committer is not None:
            await asyncio.wait([self._committer])
        if self.sqlite_writer is not None:
            await self.sqlite_writer.close()

    async def accept_many(self, messages: Sequence[RawMessage]) -> list[Accepted]:
        """Store several mails in one transaction; the answers follow their order."""
        if not messages:
            return []
        if sum(len(m.data) for m in messages) > OFF_LOOP_BYTES:
            rows = await asyncio.to_thread(lambda: [_row(message) for message in messages])
        else:
            rows = [_row(message) for message in messages]
        if self.sqlite_writer is not None:
            async with self.gate.storing(len(rows)):
                inserted = await self.sqlite_writer.insert(rows)
            answers = _new_ids(rows, inserted)
            missing = [row for row, answer in zip(rows, answers, strict=True) if answer is None]
            if missing:
                answers = _with_duplicates(rows, answers,
                                           await self.sqlite_writer.existing(missing))
        else:
            answers = await self._insert_with_sqlalchemy(rows)
        self.arrived.set()
        return [answer for answer in answers if answer is not None]

    async def _insert_with_sqlalchemy(self, rows: list[dict[str, Any]]) -> list[Accepted | None]:
        table = MESSAGES
        async with (
            self.gate.storing(len(rows)), storage_errors(), self.sessions.begin() as session
        ):
            module = postgresql if dialect_name(session) == "postgresql" else sqlite
            connection = await session.connection()
            inserted = await connection.execute(
                module.insert(table).on_conflict_do_nothing().returning(
                    table.c.id, table.c.message_key, table.c.content_hash, table.c.mailbox,
                    table.c.uidvalidity, table.c.uid),
                rows,
            )
            answers = _new_ids(rows, [tuple(row) for row in inserted.all()])
            missing = [row for row, answer in zip(rows, answers, strict=True) if answer is None]
            if missing:
                answers = _with_duplicates(rows, answers, await self._existing(session, missing))
        return answers

    async def _existing(
        self, session: AsyncSession, rows: Sequence[dict[str, Any]]
    ) -> list[tuple[Any, ...]]:
        """Stored rows that these rows duplicate, by content or by mailbox UID."""
        columns = (Message.id, Message.message_key, Message.content_hash, Message.mailbox,
                   Message.uidvalidity, Message.uid)
        found: list[tuple[Any, ...]] = []
        pairs = {(row["message_key"], row["content_hash"]) for row in rows
                 if row["message_key"] is not None}
        if pairs:
            found += [tuple(r) for r in (await session.execute(
                select(*columns)
                .where(tuple_(Message.message_key, Message.content_hash).in_(pairs))
            )).all()]
        uids = {(row["mailbox"], row["uidvalidity"], row["uid"]) for row in rows
                if row["uid"] is not None}
        if uids:
            found += [tuple(r) for r in (await session.execute(
                select(*columns)
                .where(tuple_(Message.mailbox, Message.uidvalidity, Message.uid).in_(uids))
            )).all()]
        return found

    # -- claiming ----------------------------------------------------------------

    async def claim(
        self, worker: str, *, limit: int, lease: timedelta, max_attempts: int
    ) -> list[Claimed]:
        """Take up to ``limit`` messages that are due, oldest first, under a lease."""
        now = self.clock.now()
        table = MESSAGES
        async with self.gate.processing(), storage_errors(), self.sessions.begin() as session:
            ids, expired = await self._due_ids(session, limit, now)
            if not ids:
                return []
            if expired:
                await self._give_up_on_crashers(session, expired, max_attempts, now)
            connection = await session.connection()
            result = await connection.execute(
                update(table)
                .where(table.c.id.in_(ids))
                .where(or_(table.c.state != "failed", table.c.retry_at.is_not(None)))
                .values(state="processing", claimed_by=worker, lease_until=now + lease,
                        attempts=table.c.attempts + 1)
                .returning(table.c.id, table.c.source, table.c.mail_from, table.c.rcpt_to,
                           table.c.peer, table.c.mailbox, table.c.uidvalidity, table.c.uid,
                           table.c.raw, table.c.received_at, table.c.attempts)
            )
            rows = sorted(result.all(), key=lambda row: row[0])
        return [_claimed(row) for row in rows]

    async def _due_ids(
        self, session: AsyncSession, limit: int, now: datetime
    ) -> tuple[list[int], list[int]]:
        """Due ids, oldest first: new, then failed and due, then abandoned (lease expired)."""
        conditions = (
            Message.state == "received",
            and_(Message.state == "failed", Message.retry_at <= now),
            and_(Message.state == "processing", Message.lease_until < now),
        )
        ids: list[int] = []
        expired: list[int] = []
        for index, condition in enumerate(conditions):
            query = select(Message.id).where(condition).order_by(Message.id)
            query = query.limit(limit - len(ids))
            if dialect_name(session) == "postgresql":
                query = query.with_for_update(skip_locked=True)
            found = [int(i) for i in (await session.execute(query)).scalars()]
            ids.extend(found)
            if index == len(conditions) - 1:
                expired = found
            if len(ids) >= limit:
                break
        return ids, expired

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

    async def renew(
        self, session: AsyncSession, message_ids: Sequence[int], worker: str, lease: timedelta
    ) -> set[int]:
        """Re-confirm our claim in the caller's transaction; returns the ids still ours."""
        if not message_ids:
            return set()
        result = await session.execute(
            update(Message)
            .where(Message.id.in_(message_ids), Message.claimed_by == worker,
                   Message.state == "processing")
            .values(lease_until=self.clock.now() + lease)
            .returning(Message.id)
        )
        return {int(row[0]) for row in result.all()}

    async def recover_abandoned(self, host: str, *, max_attempts: int) -> int:
        """At start-up, take back messages a dead process on this host left in processing.

        Mailman's recovery on start: without it they would wait for their
        lease to run out. A message that has already used up its attempts
        (it keeps killing the daemon) is failed for an admin instead.
        """
        async with self.gate.processing(), storage_errors(), self.sessions.begin() as session:
            owners = (await session.execute(
                select(Message.claimed_by).where(Message.state == "processing",
                                                 Message.claimed_by.like(f"{host}:%"))
                .distinct()
            )).scalars().all()
            dead = [owner for owner in owners if owner and not _alive(owner)]
            if not dead:
                return 0
            await session.execute(
                update(Message)
                .where(Message.state == "processing", Message.claimed_by.in_(dead),
                       Message.attempts >= max_attempts)
                .values(state="failed", retry_at=None, claimed_by=None, lease_until=None,
                        reason=f"gave up after {max_attempts} attempts: the daemon died while "
                               "processing it each time; retry by hand")
            )
            result = await session.execute(
                update(Message)
                .where(Message.state == "processing", Message.claimed_by.in_(dead))
                .values(state="received", claimed_by=None, lease_until=None)
                .returning(Message.id)
            )
            return len(result.all())

    async def release(self, message_ids: Sequence[int], worker: str) -> None:
        """Hand back claimed messages not started (on shutdown), without waiting for the lease."""
        if not message_ids:
            return
        async with self.gate.processing(), storage_errors(), self.sessions.begin() as session:
            await session.execute(
                update(Message)
                .where(Message.id.in_(message_ids), Message.claimed_by == worker,
                       Message.state == "processing")
                .values(state="received", claimed_by=None, lease_until=None,
                        attempts=Message.attempts - 1)
            )

    # -- finishing ---------------------------------------------------------------

    async def complete_many(
        self, session: AsyncSession, completions: Sequence[tuple[int, Completion]]
    ) -> None:
        """Record outcomes in the caller's transaction (claims confirmed by `renew`)."""
        if not completions:
            return
        now = self.clock.now()
        statement = (
            update(Message)
            .where(Message.id == bindparam("m_id"))
            .values(
                state=bindparam("m_state"), action=bindparam("m_action"),
                reason=bindparam("m_reason"), ticket_id=bindparam("m_ticket_id"),
                sender=bindparam("m_sender"), subject=bindparam("m_subject"),
                alert_time=bindparam("m_alert_time"), sender_rule=bindparam("m_sender_rule"),
                alert_type=bindparam("m_alert_type"), outcome=bindparam("m_outcome"),
                fields=bindparam("m_fields"), trace=bindparam("m_trace"),
                ruleset_version=bindparam("m_ruleset_version"),
                processed_at=now, claimed_by=None, lease_until=None, retry_at=None,
            )
        )
        params = [
            {
                "m_id": message_id, "m_state": c.state, "m_action": c.action,
                "m_reason": storable_or_none(c.reason), "m_ticket_id": c.ticket_id,
                "m_sender": c.sender,
                "m_subject": c.subject, "m_alert_time": c.alert_time,
                "m_sender_rule": c.sender_rule, "m_alert_type": c.alert_type,
                "m_outcome": c.outcome, "m_fields": c.fields, "m_trace": c.trace,
                "m_ruleset_version": c.ruleset_version,
            }
            for message_id, c in completions
        ]
        connection = await session.connection()
        await connection.execute(statement, params)

    async def fail_many(
        self, failures: Sequence[tuple[int, str, datetime | None]], worker: str
    ) -> None:
        """Mark claimed messages failed: (id, reason, when to retry or None)."""
        if not failures:
            return
        now = self.clock.now()
        statement = (
            update(Message)
            .where(Message.id == bindparam("m_id"), Message.claimed_by == worker,
                   Message.state == "processing")
            .values(state="failed", reason=bindparam("m_reason"),
                    retry_at=bindparam("m_retry_at"), processed_at=now, claimed_by=None,
                    lease_until=None)
        )
        params = [{"m_id": mid, "m_reason": storable(reason), "m_retry_at": retry_at}
                  for mid, reason, retry_at in failures]
        async with self.gate.processing(), storage_errors(), self.sessions.begin() as session:
            connection = await session.connection()
            await connection.execute(statement, params)

    # -- admin -------------------------------------------------------------------

    async def retry(self, message_ids: Sequence[int] | None = None) -> list[int]:
        """Put failed (or ignored) messages back to be processed; None means every failed one."""
        async with self.gate.processing(), storage_errors(), self.sessions.begin() as session:
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


def _alive(worker: str) -> bool:
    """Whether the process named in a worker id (`host:pid:index`) still runs here."""
    try:
        pid = int(worker.split(":")[1])
    except (IndexError, ValueError):
        return True
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _new_ids(
    rows: Sequence[dict[str, Any]], inserted: Sequence[tuple[Any, ...]]
) -> list[Accepted | None]:
    """Match inserted rows (id first, then the identity columns) back to the input order."""
    new_ids: dict[tuple[Any, ...], list[int]] = {}
    for mid, *identity in sorted(inserted, key=lambda r: int(r[0])):
        new_ids.setdefault(tuple(identity), []).append(int(mid))
    answers: list[Accepted | None] = []
    for row in rows:
        fresh = new_ids.get(_identity(row))
        answers.append(Accepted(fresh.pop(0), duplicate=False) if fresh else None)
    return answers


def _with_duplicates(
    rows: Sequence[dict[str, Any]],
    answers: Sequence[Accepted | None],
    found: Sequence[tuple[Any, ...]],
) -> list[Accepted | None]:
    """Answer the rows that were not inserted with the id of the row they duplicate."""
    by: dict[tuple[Any, ...], int] = {}
    for mid, key, digest, mailbox, validity, uid in sorted(found, key=lambda r: int(r[0])):
        by.setdefault(("content", key, digest), int(mid))
        by.setdefault(("uid", mailbox, validity, uid), int(mid))
    out: list[Accepted | None] = []
    for row, answer in zip(rows, answers, strict=True):
        if answer is not None:
            out.append(answer)
            continue
        existing = by.get(("content", row["message_key"], row["content_hash"])) if (
            row["message_key"] is not None) else None
        if existing is None:
            existing = by[("uid", row["mailbox"], row["uidvalidity"], row["uid"])]
        out.append(Accepted(existing, duplicate=True))
    return out


async def _gather_group() -> None:
    """Let sessions whose mail is already arriving join the next group commit.

    A commit ends with an fsync that costs as much for one mail as for ten,
    and every session in the group waits for it; a group taken the moment
    the first mail is pending commits mostly alone while the others' DATA
    is still being read (PostgreSQL's `commit_delay` answers the same
    problem). So the committer gives the loop a few turns first, and stops
    at once when a turn finds nothing else to run or the wait gets long:
    a lone mail waits microseconds, a busy listener fills its groups.
    (`bench/smtp.py`: the accept rate went from 0.81x of the sink to 0.92x,
    p99 latency at 500 mails/s unchanged at under 4 ms.)
    """
    started = time.perf_counter()
    for _ in range(GATHER_TURNS):
        turn = time.perf_counter()
        await asyncio.sleep(0)
        now = time.perf_counter()
        if now - turn < IDLE_TURN_S or now - started > GATHER_MAX_S:
            return


def _settle(
    batch: Sequence[tuple[RawMessage, asyncio.Future[Accepted]]],
    failure: BaseException | None,
    answers: Sequence[Accepted],
) -> None:
    """Hand each waiter still there its answer (or the failure) from a group commit."""
    for index, (_, future) in enumerate(batch):
        if future.done():
            continue  # its caller is gone
        if failure is not None:
            future.set_exception(failure)
        else:
            future.set_result(answers[index])


def _row(message: RawMessage) -> dict[str, Any]:
    envelope = message.envelope
    message_id = header_message_id(message.data)
    return {
        "source": storable(envelope.source),
        "mail_from": storable_or_none(envelope.mail_from),
        "rcpt_to": [storable(rcpt) for rcpt in envelope.rcpt_to],
        "peer": storable_or_none(envelope.peer),
        "mailbox": storable_or_none(envelope.mailbox),
        "uidvalidity": envelope.uidvalidity,
        "uid": envelope.uid,
        "message_id": message_id,
        "message_key": message_id[:MESSAGE_KEY_LENGTH] if message_id else None,
        "content_hash": content_hash(message.data),
        "size": len(message.data),
        "raw": message.data,
        "received_at": message.received_at,
        "state": "received",
        "attempts": 0,
    }


def _identity(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["message_key"], row["content_hash"], row["mailbox"], row["uidvalidity"],
            row["uid"])


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
