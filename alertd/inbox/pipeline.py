"""Mail to tickets for a batch of messages, inside the caller's transaction.

parse (done before, by the worker) → noise and rules → asset → ticket.
The worker commits the result together with the messages' new states, so a
crash anywhere leaves the messages to be processed again, never half-done.
A batch is handled in a fixed number of round trips (assets, tickets,
writes), which is what makes the pipeline fast on SQLite as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from alertd.assets.resolve import AssetQuery, AssetResolver
from alertd.domain import AssetMatch, Decision, Envelope, ParsedMail, TraceStep
from alertd.inbox.store import Completion
from alertd.logs import get_logger
from alertd.rules.engine import RuleSet
from alertd.tickets.service import Applied, TicketService

log = get_logger(__name__)

_EXPLAINED_ACTIONS = {"stale_recovery", "recovery_without_ticket"}
_TICKETABLE = {"problem", "recovery"}


@dataclass(frozen=True, slots=True)
class Incoming:
    """One parsed mail to process, with what the inbox knows about it."""

    message_id: int | None
    mail: ParsedMail
    envelope: Envelope
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Processed:
    """What processing one mail decided and did."""

    message_id: int | None
    completion: Completion
    decision: Decision | None = None
    asset: AssetMatch | None = None


@dataclass(frozen=True, slots=True)
class Pipeline:
    """What processing needs besides the messages: resolver, tickets, time policy."""

    resolver: AssetResolver
    tickets: TicketService
    future_skew: timedelta

    async def process(
        self, session: AsyncSession, items: Sequence[Incoming], rules: RuleSet
    ) -> list[Processed]:
        """Decide and apply ``items`` in order; nothing is committed here."""
        decided: list[tuple[Incoming, Decision | None, str | None]] = []
        for item in items:
            try:
                decided.append((item, rules.evaluate(item.mail, item.envelope), None))
            except Exception as error:
                log.exception("message.rules_error", message_id=item.message_id)
                decided.append((item, None, f"error: {type(error).__name__}: {error}"))

        ticketable = [d for item, d, _ in decided if d is not None and d.outcome in _TICKETABLE]
        assets = await self.resolver.resolve_many(session, [
            AssetQuery(d.fields, d.default_client, d.default_site) for d in ticketable
        ])
        asset_of = {id(d): a for d, a in zip(ticketable, assets, strict=True)}
        book = self.tickets.book(session)
        await book.load(key for d, a in zip(ticketable, assets, strict=True)
                        if (key := d.dedup_key(a.ref)) is not None)

        times = [alert_time(item.mail.date, item.received_at, self.future_skew) for item in items]
        applied: list[Applied | None] = []
        for (item, decision, _), at in zip(decided, times, strict=True):
            if decision is None or decision.outcome not in _TICKETABLE:
                applied.append(None)
                continue
            applied.append(book.apply(item.message_id, decision, asset_of[id(decision)], at))
        await book.write()

        results: list[Processed] = []
        for (item, decision, failure), outcome, at in zip(decided, applied, times, strict=True):
            asset = asset_of.get(id(decision)) if decision is not None else None
            results.append(Processed(
                item.message_id, _completion(item, decision, asset, outcome, failure, at),
                decision, asset,
            ))
        return results


def _completion(
    item: Incoming,
    decision: Decision | None,
    asset: AssetMatch | None,
    outcome: Applied | None,
    failure: str | None,
    at: datetime,
) -> Completion:
    mail = item.mail
    if decision is None:
        return Completion(state="failed", action="none", reason=failure,
                          sender=mail.sender, subject=mail.subject, alert_time=at)
    trace = [step.as_dict() for step in decision.trace]
    if asset is not None:
        trace.append(TraceStep("asset", asset.matched_by, asset.matched,
                               asset.asset_name or asset.ref).as_dict())
    if outcome is not None:
        trace.append(TraceStep("ticket", outcome.action, outcome.ticket is not None,
                               outcome.detail).as_dict())
    if outcome is None:
        state, action, reason, ticket_id = "ignored", "none", decision.reason, None
    else:
        state, action, ticket_id = "done", outcome.action, outcome.ticket_id
        reason = outcome.detail if outcome.action in _EXPLAINED_ACTIONS else None
    return Completion(
        state=state,
        action=action,
        reason=reason,
        ticket_id=ticket_id,
        sender=mail.sender or item.envelope.mail_from,
        subject=mail.subject,
        alert_time=at,
        sender_rule=decision.sender_rule,
        alert_type=decision.alert_type,
        outcome=decision.outcome,
        fields=dict(decision.fields),
        trace=trace,
        ruleset_version=decision.ruleset_version,
    )


def alert_time(date: datetime | None, received_at: datetime, future_skew: timedelta) -> datetime:
    """The alert's own time (R4.3): its Date, unless missing or too far in the future."""
    if date is None or date > received_at + future_skew:
        return received_at
    return date
