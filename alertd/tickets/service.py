"""Applying a decision to the tickets: the dedup state machine of SPEC R4.3.

For a problem: an open ticket with the same key gets an occurrence; a
ticket resolved within the reopen window before the alert is reopened
(flapping); otherwise a new ticket opens. For a recovery: the open ticket
is resolved, unless the recovery is older than the ticket's latest problem
(it sat in a queue); with nothing open it is only recorded. Closed tickets
are final.

Every time is the alert's own time, so replaying saved mail gives the same
tickets as live arrival. Races between workers and instances are settled by
the database: a partial unique index allows one open ticket per key, status
changes are conditional updates, and a lost race is retried from the top.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from alertd.clock import Clock
from alertd.db.tables import Ticket, TicketEvent, UtcDateTime
from alertd.domain import AssetMatch, Decision, TicketOutcome
from alertd.errors import AlertdError, NotFound

MAX_RACE_RETRIES = 8


class TicketStateError(AlertdError):
    """A status change that the ticket's current status does not allow."""


class TicketService:
    """Opens, updates, resolves and closes tickets inside the caller's transaction."""

    def __init__(self, *, reopen_window: timedelta, clock: Clock) -> None:
        self.reopen_window = reopen_window
        self.clock = clock

    async def apply(
        self,
        session: AsyncSession,
        message_id: int | None,
        decision: Decision,
        asset: AssetMatch,
        at: datetime,
    ) -> TicketOutcome:
        """Apply one alert, happening at ``at``, to the tickets of its key."""
        key = decision.dedup_key(asset.ref)
        if key is None or decision.outcome not in {"problem", "recovery"}:
            return TicketOutcome("none")
        for _ in range(MAX_RACE_RETRIES):
            if decision.outcome == "problem":
                outcome = await self._problem(session, message_id, decision, asset, key, at)
            else:
                outcome = await self._recovery(session, message_id, key, at)
            if outcome is not None:
                return outcome
        raise RuntimeError(f"ticket for key {key!r} kept changing under us")

    # -- problems ----------------------------------------------------------------

    async def _problem(
        self, session: AsyncSession, message_id: int | None, decision: Decision,
        asset: AssetMatch, key: str, at: datetime,
    ) -> TicketOutcome | None:
        ticket = await self._latest(session, key, "open")
        if ticket is not None:
            count = await self._occurrence(session, ticket, at, "open")
            if count is None:
                return None
            await self._event(session, ticket.id, "occurrence", at, message_id,
                              f"occurrence {count}")
            return TicketOutcome("occurrence", ticket.id, f"occurrence {count}")
        resolved = await self._latest(session, key, "resolved")
        if resolved is not None and resolved.resolved_at is not None:
            if at <= resolved.resolved_at:
                count = await self._occurrence(session, resolved, at, "resolved")
                if count is None:
                    return None
                detail = f"occurrence {count}, older than the resolution: stays resolved"
                await self._event(session, resolved.id, "late_occurrence", at, message_id, detail)
                return TicketOutcome("occurrence", resolved.id, detail)
            if at - resolved.resolved_at <= self.reopen_window:
                return await self._reopen(session, message_id, resolved, at)
        return await self._open(session, message_id, decision, asset, key, at)

    async def _occurrence(
        self, session: AsyncSession, ticket: Ticket, at: datetime, status: str
    ) -> int | None:
        """Count one more occurrence, if the ticket still has ``status``."""
        result = await session.execute(
            update(Ticket)
            .where(Ticket.id == ticket.id, Ticket.status == status)
            .values(
                occurrences=Ticket.occurrences + 1,
                first_seen=_earlier_of(Ticket.first_seen, at),
                last_seen=_later_of(Ticket.last_seen, at),
                last_problem_at=_later_of(Ticket.last_problem_at, at),
                updated_at=self.clock.now(),
            )
            .returning(Ticket.occurrences)
        )
        row = result.first()
        return None if row is None else int(row[0])

    async def _reopen(
        self, session: AsyncSession, message_id: int | None, ticket: Ticket, at: datetime
    ) -> TicketOutcome | None:
        resolved_at = _resolved_at(ticket)
        try:
            async with session.begin_nested():
                result = await session.execute(
                    update(Ticket)
                    .where(Ticket.id == ticket.id, Ticket.status == "resolved")
                    .values(
                        status="open",
                        resolved_at=None,
                        resolution=None,
                        occurrences=Ticket.occurrences + 1,
                        last_seen=_later_of(Ticket.last_seen, at),
                        last_problem_at=_later_of(Ticket.last_problem_at, at),
                        updated_at=self.clock.now(),
                    )
                    .returning(Ticket.id)
                )
                if result.first() is None:
                    return None
        except IntegrityError:
            return None  # another worker opened a ticket for this key meanwhile
        detail = f"reopened: problem again {_ago(at - resolved_at)} after resolution"
        await self._event(session, ticket.id, "reopened", at, message_id, detail)
        return TicketOutcome("reopened", ticket.id, detail)

    async def _open(
        self, session: AsyncSession, message_id: int | None, decision: Decision,
        asset: AssetMatch, key: str, at: datetime,
    ) -> TicketOutcome | None:
        spec = decision.ticket
        assert spec is not None
        now = self.clock.now()
        ticket = Ticket(
            type=spec.type, status="open", summary=spec.summary, details=spec.details,
            priority=spec.priority, team=spec.team, category=spec.category,
            client_id=asset.client_id, client_name=asset.client_name,
            site_id=asset.site_id, site_name=asset.site_name,
            asset_id=asset.asset_id, matched_by=asset.matched_by, asset_ref=asset.ref,
            sender_rule=decision.sender_rule, alert_type=decision.alert_type,
            dedup_key=key, fields=dict(decision.fields), occurrences=1,
            first_seen=at, last_seen=at, last_problem_at=at,
            finish_scripts=spec.finish_scripts, created_at=now, updated_at=now,
        )
        try:
            async with session.begin_nested():
                session.add(ticket)
                await session.flush()
        except IntegrityError:
            return None  # another worker opened it first: count an occurrence instead
        matched = "unmatched asset" if not asset.matched else f"asset {asset.asset_name}"
        await self._event(session, ticket.id, "opened", at, message_id,
                          f"opened: {spec.summary} ({matched}, by {asset.matched_by})")
        return TicketOutcome("new_ticket", ticket.id, spec.summary)

    # -- recoveries --------------------------------------------------------------

    async def _recovery(
        self, session: AsyncSession, message_id: int | None, key: str, at: datetime
    ) -> TicketOutcome | None:
        ticket = await self._latest(session, key, "open")
        if ticket is None:
            return TicketOutcome("recovery_without_ticket", None, "nothing open for this alert")
        if at < ticket.last_problem_at:
            detail = (
                f"stale recovery ignored: sent {_ago(ticket.last_problem_at - at)} before "
                "the latest problem"
            )
            await self._event(session, ticket.id, "stale_recovery", at, message_id, detail)
            return TicketOutcome("stale_recovery", ticket.id, detail)
        result = await session.execute(
            update(Ticket)
            .where(Ticket.id == ticket.id, Ticket.status == "open")
            .values(
                status="resolved", resolved_at=at, resolution="recovered",
                last_seen=_later_of(Ticket.last_seen, at),
                updated_at=self.clock.now(),
            )
            .returning(Ticket.id)
        )
        if result.first() is None:
            return None
        await self._event(session, ticket.id, "resolved", at, message_id, "resolved by recovery")
        return TicketOutcome("resolved", ticket.id, "resolved by recovery")

    # -- people ------------------------------------------------------------------

    async def resolve(
        self, session: AsyncSession, ticket_id: int, *, note: str | None, actor: str
    ) -> None:
        """Resolve an open ticket by hand."""
        now = self.clock.now()
        await self._change_status(
            session, ticket_id, allowed=("open",), actor=actor,
            values={"status": "resolved", "resolved_at": now, "resolution": note or "resolved"},
            kind="resolved", detail=f"resolved by {actor}" + (f": {note}" if note else ""),
        )

    async def close(self, session: AsyncSession, ticket_id: int, *, actor: str,
                    note: str | None = None) -> None:
        """Close a ticket for good: a later problem opens a new one."""
        now = self.clock.now()
        await self._change_status(
            session, ticket_id, allowed=("open", "resolved"), actor=actor,
            values={"status": "closed", "closed_at": now},
            kind="closed", detail=f"closed by {actor}" + (f": {note}" if note else ""),
        )

    async def _change_status(
        self, session: AsyncSession, ticket_id: int, *, allowed: tuple[str, ...],
        actor: str, values: dict[str, Any], kind: str, detail: str,
    ) -> None:
        ticket = await session.get(Ticket, ticket_id)
        if ticket is None:
            raise NotFound(f"no ticket {ticket_id}")
        now = self.clock.now()
        result = await session.execute(
            update(Ticket)
            .where(Ticket.id == ticket_id, Ticket.status.in_(allowed))
            .values(**values, updated_at=now)
            .returning(Ticket.id)
            .execution_options(synchronize_session=False)
        )
        if result.first() is None:
            await session.refresh(ticket)
            raise TicketStateError(
                f"ticket {ticket_id} is {ticket.status}; only {' or '.join(allowed)} "
                f"tickets can be {kind}"
            )
        await self._event(session, ticket_id, kind, now, None, detail, actor=actor)

    # -- helpers -----------------------------------------------------------------

    async def _latest(self, session: AsyncSession, key: str, status: str) -> Ticket | None:
        order = Ticket.resolved_at.desc() if status == "resolved" else Ticket.id.desc()
        result = await session.execute(
            select(Ticket)
            .where(Ticket.dedup_key == key, Ticket.status == status)
            .order_by(order, Ticket.id.desc())
            .limit(1)
            .execution_options(populate_existing=True)
        )
        return result.scalars().first()

    async def _event(
        self, session: AsyncSession, ticket_id: int, kind: str, at: datetime,
        message_id: int | None, detail: str, *, actor: str = "alert",
    ) -> None:
        session.add(TicketEvent(
            ticket_id=ticket_id, at=at, recorded_at=self.clock.now(), kind=kind,
            actor=actor, message_id=message_id, detail=detail,
        ))
        await session.flush()


def _later_of(column: Any, at: datetime) -> ColumnElement[datetime]:
    """The later of a column and ``at``, in SQL every backend understands."""
    value = literal(at, UtcDateTime())
    return case((column < value, value), else_=column)


def _earlier_of(column: Any, at: datetime) -> ColumnElement[datetime]:
    """The earlier of a column and ``at``."""
    value = literal(at, UtcDateTime())
    return case((column > value, value), else_=column)


def _resolved_at(ticket: Ticket) -> datetime:
    assert ticket.resolved_at is not None
    return ticket.resolved_at


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"

