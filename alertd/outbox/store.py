"""The outbox: Automate actions queued with the ticket change that caused them (R5.5).

`enqueue` runs inside the caller's transaction, so a resolution and its
Ticket Finish launches commit together or not at all (house rule 3). The
worker's side claims due entries in id order, never one whose ticket has
an older entry still unsettled (each ticket's launches run in order),
with `FOR UPDATE SKIP LOCKED` on PostgreSQL so several instances share
the work. Every transition is its own short transaction guarded by the
claim, and every ending lands on the ticket's history.

The promise that a launch is never sent twice rests on one rule: an entry
is marked `sending` (committed) before its request leaves, and an entry
found `sending` later (its instance died) is treated as possibly launched
and verified through ScriptHistory, never launched again on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, event, exists, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, aliased

from alertd.clock import Clock
from alertd.db.engine import storage_errors
from alertd.db.tables import OUTBOX, TICKET_EVENTS, Asset, OutboxEntry, Ticket
from alertd.errors import AlertdError, NotFound
from alertd.logs import get_logger
from alertd.metrics import OUTBOX_FAILURES
from alertd.outbox.plan import FinishPlan, PlannedLaunch, Skipped, TicketFacts

log = get_logger(__name__)

UNSETTLED = ("pending", "sending", "verifying", "unconfirmed")
"""States that hold back a ticket's later entries (its launches run in order)."""
STATES = ("pending", "sending", "verifying", "unconfirmed", "following", "done", "failed",
          "cancelled")
ACTOR = "outbox"


class OutboxStateError(AlertdError):
    """An admin action the entry's state does not allow."""


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A claimed entry, as the worker needs it."""

    id: int
    ticket_id: int
    label: str
    state: str
    script_id: int | None
    script_name: str | None
    entity_type: str
    entity_id: int
    computer_id: int | None
    parameters: tuple[tuple[str, str], ...]
    follow_up: bool
    attempts: int
    checks: int
    sent_at: datetime | None
    history_after: int | None
    """The computer's newest ScriptHistory id just before the launch was sent."""

    @property
    def reference(self) -> str:
        """The launch's idempotency reference, sent with it and logged."""
        return f"alertd-outbox-{self.id}"


class OutboxStore:
    """Queues finish launches in the caller's transaction; claims and settles them."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], clock: Clock, plan: FinishPlan,
        *, exclusive_writes: bool = False,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.plan = plan
        self.exclusive_writes = exclusive_writes
        self.arrived = asyncio.Event()
        """Set after a transaction that queued entries commits (wakes the worker)."""

    # -- queueing (inside the ticket change's transaction) ----------------------------

    async def enqueue(self, session: AsyncSession, tickets: Sequence[tuple[int, str]]) -> int:
        """Queue the finish launches of resolved ``(ticket id, technician)`` pairs.

        Tickets whose alert type turned finish scripts off get nothing; a
        script the ticket lacks an id for is recorded as skipped. Returns how
        many launches were queued.
        """
        if not self.plan.enabled or not tickets:
            return 0
        technician = dict(tickets)
        rows = (await session.execute(
            select(Ticket.id, Ticket.automate_ticket_id, Ticket.fields, Ticket.resolution,
                   Ticket.resolved_at, Ticket.updated_at, Ticket.summary, Ticket.client_name,
                   Ticket.site_name, Ticket.alert_type, Asset.name, Asset.automate_kind,
                   Asset.automate_id)
            .outerjoin(Asset, Asset.id == Ticket.asset_id)
            .where(Ticket.id.in_(list(technician)), Ticket.finish_scripts.is_(True))
            .order_by(Ticket.id)
        )).all()
        now = self.clock.now()
        entries: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        for row in rows:
            facts = TicketFacts(
                ticket_id=row.id, automate_ticket_id=row.automate_ticket_id,
                computer_id=_computer_id(row.automate_kind, row.automate_id, row.fields),
                resolution=row.resolution or "resolved", technician=technician[row.id],
                resolved_at=row.resolved_at or row.updated_at, summary=row.summary,
                client=row.client_name, site=row.site_name, asset=row.name,
                alert_type=row.alert_type,
            )
            for planned in self.plan.plan(facts):
                if isinstance(planned, Skipped):
                    events.append(_event(row.id, now, "finish_skipped", planned.reason))
                    continue
                entries.append(_entry(row.id, planned, now))
                events.append(_event(row.id, now, "finish_queued",
                                     f"{planned.label} queued for {planned.entity_type} "
                                     f"{planned.entity_id}"))
        if entries:
            await session.execute(insert(OUTBOX), entries)
            event.listen(session.sync_session, "after_commit", self._wake, once=True)
        if events:
            await session.execute(insert(TICKET_EVENTS), events)
        return len(entries)

    def _wake(self, _session: Session) -> None:
        self.arrived.set()

    # -- the worker's side -----------------------------------------------------------

    async def claim(self, worker: str, *, limit: int, lease: timedelta) -> list[OutboxItem]:
        """Claim due entries; an entry left `sending` by a vanished instance becomes
        `verifying` (its launch may have gone out)."""
        now = self.clock.now()
        async with storage_errors(), self.sessions.begin() as session:
            older = aliased(OutboxEntry)
            blocked = exists().where(
                older.ticket_id == OutboxEntry.ticket_id, older.id < OutboxEntry.id,
                older.state.in_(UNSETTLED),
            )
            free = or_(OutboxEntry.lease_until.is_(None), OutboxEntry.lease_until < now)
            query = (
                select(OutboxEntry)
                .where(or_(
                    and_(OutboxEntry.state == "pending", OutboxEntry.due_at <= now, free,
                         ~blocked),
                    and_(OutboxEntry.state.in_(("verifying", "following")),
                         OutboxEntry.due_at <= now, free),
                    and_(OutboxEntry.state == "sending", OutboxEntry.lease_until < now),
                ))
                .order_by(OutboxEntry.id)
                .limit(limit)
            )
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True, of=OutboxEntry)
            entries = list((await session.execute(query)).scalars())
            for entry in entries:
                if entry.state == "sending":
                    entry.state = "verifying"
                    entry.last_error = ("the instance launching it stopped before recording "
                                        "Automate's answer")
                    log.warning("outbox.launch_interrupted", outbox_id=entry.id,
                                ticket_id=entry.ticket_id)
                entry.claimed_by = worker
                entry.lease_until = now + lease
                entry.updated_at = now
            return [_item(entry) for entry in entries]

    async def mark_sending(self, item: OutboxItem, worker: str, *, script_id: int,
                           history_after: int | None) -> OutboxItem:
        """Record, before the request leaves, that this launch is about to be sent."""
        now = self.clock.now()
        await self._update(item, worker, state="sending", script_id=script_id, sent_at=now,
                           result={"history_after": history_after})
        return OutboxItem(**{**_fields(item), "state": "sending", "script_id": script_id,
                             "sent_at": now, "history_after": history_after})

    async def launched(self, item: OutboxItem, worker: str, *, detail: str,
                       result: dict[str, Any] | None, follow: bool, follow_every: timedelta,
                       kind: str = "finish_launched") -> None:
        """The launch reached Automate: done, or following its outcome."""
        now = self.clock.now()
        values: dict[str, Any] = {"last_error": None}
        if result is not None:
            values["result"] = {**result, "history_after": item.history_after}
        if follow:
            values.update(state="following", due_at=now + follow_every, checks=0,
                          lease_until=None)
        else:
            values.update(state="done", finished_at=now, lease_until=None)
        await self._update(item, worker, event=(kind, detail), **values)

    async def retry_later(self, item: OutboxItem, worker: str, *, error: str, delay: timedelta,
                          counted: bool = True) -> None:
        """Nothing was launched: try again after ``delay``."""
        now = self.clock.now()
        await self._update(item, worker, state="pending", due_at=now + delay, last_error=error,
                           attempts=item.attempts + (1 if counted else 0), lease_until=None)

    async def failed(self, item: OutboxItem, worker: str, *, reason: str,
                     result: dict[str, Any] | None = None) -> None:
        """Automate refused the launch for good: the ticket shows why."""
        now = self.clock.now()
        await self._update(item, worker, state="failed", finished_at=now, last_error=reason,
                           result=result, lease_until=None,
                           event=("finish_failed", f"{item.label}: {reason}"))
        OUTBOX_FAILURES.labels("finish_script", "failed").inc()

    async def answer_lost(self, item: OutboxItem, worker: str, *, error: str,
                          verify_every: timedelta) -> None:
        """The launch went out but its answer did not come back: verify before anything else."""
        now = self.clock.now()
        await self._update(item, worker, state="verifying", due_at=now + verify_every,
                           last_error=error, checks=0, lease_until=None)

    async def check_again(self, item: OutboxItem, worker: str, *, delay: timedelta,
                          note: str | None = None) -> None:
        """Look at ScriptHistory again later (verifying or following)."""
        now = self.clock.now()
        values: dict[str, Any] = {"due_at": now + delay, "checks": item.checks + 1,
                                  "lease_until": None}
        if note is not None:
            values["last_error"] = note
        await self._update(item, worker, **values)

    async def unconfirmed(self, item: OutboxItem, worker: str, *, reason: str) -> None:
        """A lost launch could not be verified: an admin decides (retry or cancel)."""
        await self._update(item, worker, state="unconfirmed", last_error=reason,
                           lease_until=None, event=("finish_unconfirmed", f"{item.label}: "
                                                    f"{reason}"))
        OUTBOX_FAILURES.labels("finish_script", "unconfirmed").inc()

    async def finished(self, item: OutboxItem, worker: str, *, outcome: str) -> None:
        """A followed run's outcome (or the end of waiting for it) lands on the ticket."""
        now = self.clock.now()
        await self._update(item, worker, state="done", outcome=outcome, finished_at=now,
                           lease_until=None,
                           event=("finish_outcome", f"{item.label}: {outcome}"))

    async def release(self, items: Sequence[OutboxItem], worker: str) -> None:
        """Hand back claimed entries not worked on (shutting down)."""
        if not items:
            return
        async with storage_errors(), self.sessions.begin() as session:
            await session.execute(
                update(OutboxEntry)
                .where(OutboxEntry.id.in_([i.id for i in items]),
                       OutboxEntry.claimed_by == worker,
                       OutboxEntry.state != "sending")
                .values(lease_until=None)
            )

    async def _update(self, item: OutboxItem, worker: str, *,
                      event: tuple[str, str] | None = None, **values: Any) -> None:
        now = self.clock.now()
        async with storage_errors(), self.sessions.begin() as session:
            result = await session.execute(
                update(OutboxEntry)
                .where(OutboxEntry.id == item.id, OutboxEntry.claimed_by == worker)
                .values(**values, updated_at=now)
                .returning(OutboxEntry.id)
            )
            if result.first() is None:
                log.warning("outbox.claim_lost", outbox_id=item.id, ticket_id=item.ticket_id)
                return
            if event is not None:
                await session.execute(insert(TICKET_EVENTS).values(
                    _event(item.ticket_id, now, event[0], event[1])))

    # -- admin -----------------------------------------------------------------------

    async def retry(self, entry_id: int, *, actor: str) -> None:
        """Send a failed or unconfirmed entry again, now: an admin's decision."""
        await self._admin(entry_id, actor=actor, allowed=("failed", "unconfirmed"),
                          values={"state": "pending", "attempts": 0, "checks": 0,
                                  "due_at": self.clock.now(), "finished_at": None,
                                  "lease_until": None, "claimed_by": None},
                          kind="finish_retry", verb="sent again")
        self.arrived.set()

    async def cancel(self, entry_id: int, *, actor: str) -> None:
        """Give up on an entry that has not been launched for sure (or is unconfirmed)."""
        await self._admin(entry_id, actor=actor, allowed=("pending", "failed", "unconfirmed",
                                                          "verifying"),
                          values={"state": "cancelled", "finished_at": self.clock.now(),
                                  "lease_until": None},
                          kind="finish_cancelled", verb="cancelled")

    async def _admin(self, entry_id: int, *, actor: str, allowed: tuple[str, ...],
                     values: dict[str, Any], kind: str, verb: str) -> None:
        now = self.clock.now()
        async with storage_errors(), self.sessions.begin() as session:
            row = (await session.execute(
                select(OutboxEntry.state, OutboxEntry.ticket_id, OutboxEntry.label)
                .where(OutboxEntry.id == entry_id)
            )).first()
            if row is None:
                raise NotFound(f"no outbox entry {entry_id}")
            if row.state not in allowed:
                raise OutboxStateError(
                    f"outbox entry {entry_id} is {row.state}; only {', '.join(allowed)} "
                    f"entries can be {verb}")
            await session.execute(update(OutboxEntry).where(OutboxEntry.id == entry_id)
                                  .values(**values, updated_at=now))
            await session.execute(insert(TICKET_EVENTS).values(
                _event(row.ticket_id, now, kind, f"{row.label} {verb} by {actor}",
                       actor=actor)))


async def list_entries(session: AsyncSession, *, state: str | None = None,
                       ticket_id: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Outbox entries, newest first, as plain dicts for the CLI and the API."""
    query = select(OutboxEntry).order_by(OutboxEntry.id.desc()).limit(limit)
    if state is not None:
        query = query.where(OutboxEntry.state == state)
    if ticket_id is not None:
        query = query.where(OutboxEntry.ticket_id == ticket_id)
    return [entry_dict(e) for e in (await session.execute(query)).scalars()]


def entry_dict(entry: OutboxEntry) -> dict[str, Any]:
    """One entry as people read it."""
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None
    return {
        "id": entry.id, "ticket_id": entry.ticket_id, "action": entry.action,
        "label": entry.label, "script_id": entry.script_id, "entity_type": entry.entity_type,
        "entity_id": entry.entity_id, "state": entry.state, "attempts": entry.attempts,
        "last_error": entry.last_error, "outcome": entry.outcome,
        "created_at": iso(entry.created_at), "due_at": iso(entry.due_at),
        "sent_at": iso(entry.sent_at), "finished_at": iso(entry.finished_at),
    }


def _computer_id(kind: str | None, automate_id: str | None, fields: Any) -> int | None:
    """The Automate computer behind a ticket: its asset's, else the alert's computer_id."""
    if kind == "computer" and automate_id and automate_id.isdigit():
        return int(automate_id)
    value = (fields or {}).get("computer_id") if isinstance(fields, dict) else None
    if isinstance(value, str) and value.strip().isdigit() and int(value) > 0:
        return int(value)
    return None


def _entry(ticket_id: int, planned: PlannedLaunch, now: datetime) -> dict[str, Any]:
    return {
        "ticket_id": ticket_id, "action": "finish_script", "label": planned.label,
        "script_id": planned.script_id, "script_name": planned.script_name,
        "entity_type": planned.entity_type, "entity_id": planned.entity_id,
        "computer_id": planned.computer_id,
        "parameters": [{"Key": k, "Value": v} for k, v in planned.parameters],
        "follow_up": planned.follow_up, "state": "pending", "attempts": 0, "checks": 0,
        "due_at": now, "sent_at": None, "claimed_by": None, "lease_until": None,
        "last_error": None, "result": None, "outcome": None, "created_at": now,
        "updated_at": now, "finished_at": None,
    }


def _event(ticket_id: int, now: datetime, kind: str, detail: str,
           actor: str = ACTOR) -> dict[str, Any]:
    return {"ticket_id": ticket_id, "at": now, "recorded_at": now, "kind": kind,
            "actor": actor, "message_id": None, "detail": detail}


def _item(entry: OutboxEntry) -> OutboxItem:
    result = entry.result if isinstance(entry.result, dict) else {}
    after = result.get("history_after")
    return OutboxItem(
        id=entry.id, ticket_id=entry.ticket_id, label=entry.label, state=entry.state,
        script_id=entry.script_id, script_name=entry.script_name,
        entity_type=entry.entity_type, entity_id=entry.entity_id,
        computer_id=entry.computer_id,
        parameters=tuple((str(p.get("Key", "")), str(p.get("Value", "")))
                         for p in entry.parameters or [] if isinstance(p, dict)),
        follow_up=entry.follow_up, attempts=entry.attempts, checks=entry.checks,
        sent_at=entry.sent_at, history_after=after if isinstance(after, int) else None,
    )


def _fields(item: OutboxItem) -> dict[str, Any]:
    return {name: getattr(item, name) for name in OutboxItem.__slots__}
