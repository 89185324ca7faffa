"""Applying alerts to tickets: the dedup state machine of SPEC R4.3.

For a problem: an open ticket with the same key gets an occurrence; a
ticket resolved within the reopen window before the alert is reopened
(flapping); otherwise a new ticket opens. For a recovery: the open ticket
is resolved, unless the recovery is older than the ticket's latest problem
(it sat in a queue); with nothing open it is only recorded. Closed tickets
are final: a later problem opens a new ticket.

Every time is the alert's own time, so replaying saved mail gives the same
tickets as live arrival.

A `TicketBook` works on a batch of alerts: it locks their keys, loads the
tickets they can touch in one query, applies the alerts in order in
memory, and writes everything back in a few statements. Writers of the same
key take turns on a database lock (advisory on PostgreSQL, the single
writer on SQLite), and a partial unique index allows one open ticket per
key whatever happens, so dedup holds across workers and instances.

A resolution (by a recovery, a person or the API) also queues the
configured Ticket Finish launches through a `FinishQueue`, in the same
transaction, so the two commit together (R5.5).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from alertd.assets.resolve import AssetQuery, AssetResolver
from alertd.clock import Clock
from alertd.db.locks import lock_names
from alertd.db.tables import ALERT_KEYS, TICKETS, Ticket, TicketEvent
from alertd.db.tables import TICKET_EVENTS as EVENTS
from alertd.domain import Action, AssetMatch, Decision, bounded_key
from alertd.errors import AlertdError, NotFound

KEY_CHUNK = 500
"""Keys per IN list when loading tickets."""



class TicketStateError(AlertdError):
    """A status change that the ticket's current status does not allow."""


class FinishQueue(Protocol):
    """Where resolved tickets' Ticket Finish launches are queued (the outbox)."""

    async def enqueue(self, session: AsyncSession, tickets: Sequence[tuple[int, str]]) -> int:
        """Queue launches for ``(ticket id, technician)`` pairs in ``session``'s transaction."""
        ...


@dataclass(slots=True)
class TicketState:
    """The columns of a ticket that alerts change, held in memory for one batch."""

    id: int | None
    dedup_key: str
    status: str
    occurrences: int
    first_seen: datetime
    last_seen: datetime
    last_problem_at: datetime
    resolved_at: datetime | None
    resolution: str | None
    updated_at: datetime
    new_row: dict[str, Any] | None = None
    """All columns of a ticket this batch opens (None for a loaded one)."""
    dirty: bool = False


_STATE_COLUMNS = ("id", "dedup_key", "status", "occurrences", "first_seen", "last_seen",
                  "last_problem_at", "resolved_at", "resolution", "updated_at")
_CHANGED_COLUMNS = ("status", "occurrences", "first_seen", "last_seen", "last_problem_at",
                    "resolved_at", "resolution", "updated_at")


@dataclass(frozen=True, slots=True)
class Applied:
    """What one alert did: the action, the ticket it touched (if any), and a note."""

    action: Action
    ticket: TicketState | None
    detail: str = ""

    @property
    def ticket_id(self) -> int | None:
        """The ticket's id (known once the book has been written)."""
        return self.ticket.id if self.ticket is not None else None


@dataclass(frozen=True, slots=True)
class _Event:
    ticket: TicketState
    kind: str
    at: datetime
    message_id: int | None
    detail: str


class TicketBook:
    """The tickets one batch of alerts can touch, changed in memory and written once."""

    def __init__(self, session: AsyncSession, *, reopen_window: timedelta, clock: Clock,
                 finisher: FinishQueue | None = None) -> None:
        self.session = session
        self.reopen_window = reopen_window
        self.clock = clock
        self.finisher = finisher
        self._finishing: list[TicketState] = []
        """Tickets this batch resolved: their finish launches are queued on write."""
        self._open: dict[str, TicketState] = {}
        self._resolved: dict[str, TicketState] = {}
        self._touched: list[TicketState] = []
        self._events: list[_Event] = []
        self._known_recoveries: dict[str, datetime] = {}
        """Latest recovery per key that found nothing open (stored in alert_keys)."""
        self._new_recoveries: set[str] = set()

    async def load(self, keys: Iterable[str]) -> None:
        """Lock ``keys``; load their open and latest resolved tickets and latest orphan recovery."""
        wanted = sorted(set(keys))
        await lock_names(self.session, (f"ticket-key:{key}" for key in wanted))
        columns = [getattr(TICKETS.c, name) for name in _STATE_COLUMNS]
        older = TICKETS.alias("older")
        latest_resolution = (
            select(func.max(older.c.resolved_at))
            .where(older.c.dedup_key == TICKETS.c.dedup_key, older.c.status == "resolved")
            .scalar_subquery()
        )
        for start in range(0, len(wanted), KEY_CHUNK):
            chunk = wanted[start : start + KEY_CHUNK]
            rows = await self.session.execute(
                select(*columns).where(
                    TICKETS.c.dedup_key.in_(chunk),
                    or_(TICKETS.c.status == "open",
                        and_(TICKETS.c.status == "resolved",
                             TICKETS.c.resolved_at == latest_resolution)),
                ).order_by(TICKETS.c.id)
            )
            for row in rows.all():
                ticket = TicketState(*row)
                target = self._open if ticket.status == "open" else self._resolved
                target[ticket.dedup_key] = ticket
            recoveries = await self.session.execute(
                select(ALERT_KEYS.c.dedup_key, ALERT_KEYS.c.last_recovery_at)
                .where(ALERT_KEYS.c.dedup_key.in_(chunk))
            )
            self._known_recoveries.update(dict(recoveries.all()))

    def apply(
        self, message_id: int | None, decision: Decision, asset: AssetMatch, at: datetime
    ) -> Applied:
        """Apply one alert, happening at ``at``; alerts must come in arrival order."""
        key = decision.dedup_key(asset.ref)
        if key is None:
            return Applied("none", None)
        if decision.outcome == "problem":
            return self._problem(message_id, decision, asset, key, at)
        if decision.outcome == "recovery":
            return self._recovery(message_id, key, at)
        return Applied("none", None)

    async def write(self) -> None:
        """Insert opened tickets, update changed ones, then add their history."""
        connection = await self.session.connection()
        opened = [t for t in self._touched if t.new_row is not None]
        if opened:
            rows = [{**t.new_row, **_changed(t)} for t in opened if t.new_row is not None]
            keys = [t.dedup_key for t in opened]
            if len(set(keys)) == len(keys):
                # One multi-row INSERT: SQLite can keep the rows' order only by inserting
                # them one statement at a time, so the ids are matched by key instead.
                result = await connection.execute(
                    insert(TICKETS).returning(TICKETS.c.id, TICKETS.c.dedup_key), rows
                )
                ids = {key: ticket_id for ticket_id, key in result.all()}
                new_ids = [ids[key] for key in keys]
            else:
                result = await connection.execute(
                    insert(TICKETS).returning(TICKETS.c.id, sort_by_parameter_order=True), rows
                )
                new_ids = [ticket_id for (ticket_id,) in result.all()]
            for ticket, ticket_id in zip(opened, new_ids, strict=True):
                ticket.id = int(ticket_id)
                ticket.new_row = None
                ticket.dirty = False
        changed = [t for t in self._touched if t.dirty]
        if changed:
            await connection.execute(
                update(TICKETS).where(TICKETS.c.id == bindparam("t_id"))
                .values({name: bindparam(f"t_{name}") for name in _CHANGED_COLUMNS}),
                [{"t_id": t.id, **{f"t_{k}": v for k, v in _changed(t).items()}}
                 for t in changed],
            )
            for ticket in changed:
                ticket.dirty = False
        self._touched.clear()
        if self._new_recoveries:
            module = postgresql if connection.dialect.name == "postgresql" else sqlite
            now = self.clock.now()
            statement = module.insert(ALERT_KEYS)
            await connection.execute(
                statement.on_conflict_do_update(
                    index_elements=[ALERT_KEYS.c.dedup_key],
                    set_={"last_recovery_at": statement.excluded.last_recovery_at,
                          "updated_at": statement.excluded.updated_at},
                ),
                [{"dedup_key": key, "last_recovery_at": self._known_recoveries[key],
                  "updated_at": now} for key in sorted(self._new_recoveries)],
            )
            self._new_recoveries.clear()
        if self._events:
            recorded = self.clock.now()
            await connection.execute(insert(EVENTS), [
                {"ticket_id": e.ticket.id, "at": e.at, "recorded_at": recorded,
                 "kind": e.kind, "actor": "alert", "message_id": e.message_id,
                 "detail": e.detail}
                for e in self._events
            ])
            self._events.clear()
        if self._finishing:
            finishing = [(t.id, "alert") for t in self._finishing
                         if t.id is not None and t.status == "resolved"]
            self._finishing.clear()
            if self.finisher is not None and finishing:
                await self.finisher.enqueue(self.session, finishing)

    # -- problems ----------------------------------------------------------------

    def _problem(
        self, message_id: int | None, decision: Decision, asset: AssetMatch, key: str,
        at: datetime,
    ) -> Applied:
        ticket = self._open.get(key)
        if ticket is not None:
            count = self._count_occurrence(ticket, at)
            detail = f"occurrence {count}"
            self._event(ticket, "occurrence", at, message_id, detail)
            return Applied("occurrence", ticket, detail)
        resolved = self._resolved.get(key)
        if resolved is not None and resolved.resolved_at is not None:
            if at <= resolved.resolved_at:
                count = self._count_occurrence(resolved, at)
                detail = f"occurrence {count}, older than the resolution: stays resolved"
                self._event(resolved, "late_occurrence", at, message_id, detail)
                return Applied("occurrence", resolved, detail)
            if at - resolved.resolved_at <= self.reopen_window:
                return self._reopen(message_id, key, resolved, at)
        return self._open_new(message_id, decision, asset, key, at)

    def _count_occurrence(self, ticket: TicketState, at: datetime) -> int:
        ticket.occurrences += 1
        ticket.first_seen = min(ticket.first_seen, at)
        ticket.last_seen = max(ticket.last_seen, at)
        ticket.last_problem_at = max(ticket.last_problem_at, at)
        self._touch(ticket)
        return ticket.occurrences

    def _reopen(
        self, message_id: int | None, key: str, ticket: TicketState, at: datetime
    ) -> Applied:
        assert ticket.resolved_at is not None
        gap = at - ticket.resolved_at
        ticket.status = "open"
        ticket.resolved_at = None
        ticket.resolution = None
        self._count_occurrence(ticket, at)
        del self._resolved[key]
        self._open[key] = ticket
        detail = f"reopened: problem again {_ago(gap)} after resolution"
        self._event(ticket, "reopened", at, message_id, detail)
        return Applied("reopened", ticket, detail)

    def _open_new(
        self, message_id: int | None, decision: Decision, asset: AssetMatch, key: str,
        at: datetime,
    ) -> Applied:
        spec = decision.ticket
        assert spec is not None
        now = self.clock.now()
        ticket = TicketState(
            id=None, dedup_key=key, status="open", occurrences=1, first_seen=at, last_seen=at,
            last_problem_at=at, resolved_at=None, resolution=None, updated_at=now,
            new_row={
                "type": spec.type, "summary": spec.summary, "details": spec.details,
                "priority": spec.priority, "team": spec.team, "category": spec.category,
                "client_id": asset.client_id, "client_name": asset.client_name,
                "site_id": asset.site_id, "site_name": asset.site_name,
                "asset_id": asset.asset_id, "matched_by": asset.matched_by,
                "asset_ref": asset.ref, "sender_rule": decision.sender_rule,
                "alert_type": decision.alert_type, "dedup_key": key,
                "fields": dict(decision.fields), "closed_at": None,
                "finish_scripts": spec.finish_scripts, "created_at": now,
                "automate_ticket_id": _automate_ticket_id(decision.fields),
            },
        )
        self._touched.append(ticket)
        found = f"asset {asset.asset_name}" if asset.matched else "no known asset"
        self._event(ticket, "opened", at, message_id,
                    f"opened: {spec.summary} ({found}, matched by {asset.matched_by})")
        recovered = self._known_recoveries.get(key)
        if recovered is not None and at <= recovered:
            # Its recovery was processed first (another worker, a retry, a slow queue):
            # the ticket is born resolved, as in-order arrival would have left it.
            ticket.status = "resolved"
            ticket.resolved_at = recovered
            ticket.resolution = "recovered"
            ticket.last_seen = max(at, recovered)
            self._resolved[key] = ticket
            self._finishing.append(ticket)
            self._event(ticket, "resolved", recovered, None,
                        "resolved by a recovery that was processed before this problem")
            return Applied("new_ticket", ticket, f"{spec.summary} (already recovered)")
        self._open[key] = ticket
        return Applied("new_ticket", ticket, spec.summary)

    # -- recoveries --------------------------------------------------------------

    def _recovery(self, message_id: int | None, key: str, at: datetime) -> Applied:
        ticket = self._open.get(key)
        if ticket is None:
            known = self._known_recoveries.get(key)
            if known is None or at > known:
                self._known_recoveries[key] = at
                self._new_recoveries.add(key)
            return Applied("recovery_without_ticket", None, "nothing open for this alert")
        if at < ticket.last_problem_at:
            detail = (f"stale recovery ignored: sent {_ago(ticket.last_problem_at - at)} "
                      "before the latest problem")
            self._event(ticket, "stale_recovery", at, message_id, detail)
            return Applied("stale_recovery", ticket, detail)
        ticket.status = "resolved"
        ticket.resolved_at = at
        ticket.resolution = "recovered"
        ticket.last_seen = max(ticket.last_seen, at)
        self._touch(ticket)
        del self._open[key]
        self._resolved[key] = ticket
        self._finishing.append(ticket)
        self._event(ticket, "resolved", at, message_id, "resolved by recovery")
        return Applied("resolved", ticket, "resolved by recovery")

    def _touch(self, ticket: TicketState) -> None:
        ticket.updated_at = self.clock.now()
        if ticket.new_row is None and not ticket.dirty:
            ticket.dirty = True
            self._touched.append(ticket)

    def _event(self, ticket: TicketState, kind: str, at: datetime, message_id: int | None,
               detail: str) -> None:
        self._events.append(_Event(ticket, kind, at, message_id, detail))


def _changed(ticket: TicketState) -> dict[str, Any]:
    return {name: getattr(ticket, name) for name in _CHANGED_COLUMNS}


class TicketService:
    """Changes people make to tickets, each inside the caller's transaction."""

    def __init__(self, *, reopen_window: timedelta, clock: Clock,
                 finisher: FinishQueue | None = None) -> None:
        self.reopen_window = reopen_window
        self.clock = clock
        self.finisher = finisher

    def book(self, session: AsyncSession) -> TicketBook:
        """A ticket book for applying a batch of alerts in ``session``."""
        return TicketBook(session, reopen_window=self.reopen_window, clock=self.clock,
                          finisher=self.finisher)

    async def link_unmatched(self, session: AsyncSession, resolver: AssetResolver) -> int:
        """Link tickets opened for unknown assets to assets that have arrived since (R4.1).

        Open tickets, and resolved ones that may still reopen. The asset part
        of the ticket's dedup key is swapped too, so the next alert for that
        asset lands on this ticket. Returns how many were linked.
        """
        now = self.clock.now()
        rows = (await session.execute(
            select(TICKETS.c.id, TICKETS.c.fields, TICKETS.c.client_name, TICKETS.c.site_name,
                   TICKETS.c.asset_ref, TICKETS.c.dedup_key, TICKETS.c.status)
            .where(TICKETS.c.asset_id.is_(None),
                   or_(TICKETS.c.status == "open",
                       and_(TICKETS.c.status == "resolved",
                            TICKETS.c.resolved_at >= now - self.reopen_window)))
            .order_by(TICKETS.c.id)
        )).all()
        if not rows:
            return 0
        found = await resolver.resolve_many(session, [
            AssetQuery(row.fields or {}, row.client_name, row.site_name) for row in rows
        ])
        linking = [
            (row, asset, bounded_key(row.dedup_key.replace(row.asset_ref, asset.ref, 1)))
            for row, asset in zip(rows, found, strict=True) if asset.matched
        ]
        # One call, so the keys are locked in one fixed order (no deadlock with workers).
        await lock_names(session, [f"ticket-key:{key}" for row, _, new_key in linking
                                   for key in (row.dedup_key, new_key)])
        linked = 0
        for row, asset, new_key in linking:
            values: dict[str, Any] = {
                "asset_id": asset.asset_id, "matched_by": asset.matched_by,
                "asset_ref": asset.ref, "client_id": asset.client_id,
                "client_name": asset.client_name, "site_id": asset.site_id,
                "site_name": asset.site_name, "updated_at": now,
            }
            detail = f"linked to asset {asset.asset_name} (matched by {asset.matched_by})"
            try:
                async with session.begin_nested():
                    await session.execute(update(TICKETS).where(TICKETS.c.id == row.id)
                                          .values(**values, dedup_key=new_key))
            except IntegrityError:
                # Another open ticket already has the asset's key; link, keep this key.
                await session.execute(update(TICKETS).where(TICKETS.c.id == row.id)
                                      .values(**values))
                detail += "; an open ticket for this asset exists, so alerts keep going there"
            await session.execute(insert(EVENTS).values(
                ticket_id=row.id, at=now, recorded_at=now, kind="linked", actor="import",
                message_id=None, detail=detail))
            linked += 1
        return linked

    async def resolve(
        self, session: AsyncSession, ticket_id: int, *, note: str | None, actor: str
    ) -> None:
        """Resolve an open ticket by hand; its Ticket Finish launches are queued with it."""
        now = self.clock.now()
        await self._change_status(
            session, ticket_id, allowed=("open",), actor=actor,
            values={"status": "resolved", "resolved_at": now, "resolution": note or "resolved"},
            kind="resolved", detail=f"resolved by {actor}" + (f": {note}" if note else ""),
        )
        if self.finisher is not None:
            await self.finisher.enqueue(session, [(ticket_id, actor)])

    async def close(self, session: AsyncSession, ticket_id: int, *, actor: str,
                    note: str | None = None) -> None:
        """Close a ticket for good: a later problem opens a new one.

        Closing an open ticket ends it as resolving would, so its Ticket Finish
        launches are queued too (a resolved ticket already had them).
        """
        now = self.clock.now()
        previous = await self._change_status(
            session, ticket_id, allowed=("open", "resolved"), actor=actor,
            values={"status": "closed", "closed_at": now},
            kind="closed", detail=f"closed by {actor}" + (f": {note}" if note else ""),
        )
        if previous == "open" and self.finisher is not None:
            await session.execute(update(Ticket).where(Ticket.id == ticket_id).values(
                resolved_at=now, resolution=note or "closed"))
            await self.finisher.enqueue(session, [(ticket_id, actor)])

    async def _change_status(
        self, session: AsyncSession, ticket_id: int, *, allowed: tuple[str, ...],
        actor: str, values: dict[str, Any], kind: str, detail: str,
    ) -> str:
        """Change the status; returns the status it had."""
        key = (await session.execute(
            select(Ticket.dedup_key).where(Ticket.id == ticket_id)
        )).scalar()
        if key is None:
            raise NotFound(f"no ticket {ticket_id}")
        await lock_names(session, [f"ticket-key:{key}"])
        previous = (await session.execute(
            select(Ticket.status).where(Ticket.id == ticket_id)
        )).scalar_one()
        now = self.clock.now()
        result = await session.execute(
            update(Ticket)
            .where(Ticket.id == ticket_id, Ticket.status.in_(allowed))
            .values(**values, updated_at=now)
            .returning(Ticket.id)
            .execution_options(synchronize_session=False)
        )
        if result.first() is None:
            status = (await session.execute(
                select(Ticket.status).where(Ticket.id == ticket_id)
            )).scalar()
            raise TicketStateError(
                f"ticket {ticket_id} is {status}; only {' or '.join(allowed)} tickets can be "
                f"{kind}"
            )
        session.add(TicketEvent(ticket_id=ticket_id, at=now, recorded_at=now, kind=kind,
                                actor=actor, message_id=None, detail=detail))
        await session.flush()
        return str(previous)


def _automate_ticket_id(fields: Any) -> int | None:
    """An Automate ticket id the alert named (API alerting, or a mail that carries it)."""
    value = fields.get("automate_ticket_id") if hasattr(fields, "get") else None
    if isinstance(value, str) and value.strip().isdigit() and 0 < int(value) < 2**63:
        return int(value)
    return None


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"
