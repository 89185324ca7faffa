"""One message's way from parsed mail to ticket, inside the caller's transaction.

parse → noise and rules → asset → ticket. The worker commits the result
together with the message's new state (one message, one transaction), so a
crash anywhere leaves the message to be processed again, not half-done.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from alertd.assets.resolve import AssetResolver
from alertd.domain import AssetMatch, Decision, Envelope, ParsedMail, TicketOutcome, TraceStep
from alertd.inbox.store import Completion
from alertd.rules.engine import RuleSet
from alertd.tickets.service import TicketService

_EXPLAINED_ACTIONS = {"stale_recovery", "recovery_without_ticket"}


@dataclass(frozen=True, slots=True)
class Pipeline:
    """What processing needs besides the message: resolver, ticket service, time policy."""

    resolver: AssetResolver
    tickets: TicketService
    future_skew: timedelta

    async def process(
        self,
        session: AsyncSession,
        message_id: int | None,
        parsed: ParsedMail,
        envelope: Envelope,
        received_at: datetime,
        rules: RuleSet,
    ) -> tuple[Completion, Decision, AssetMatch | None, TicketOutcome | None]:
        """Decide and apply one mail; nothing is committed here."""
        decision = rules.evaluate(parsed, envelope)
        at = alert_time(parsed.date, received_at, self.future_skew)
        trace = [step.as_dict() for step in decision.trace]
        if decision.outcome in {"ignored", "unknown_sender"}:
            completion = _completion(parsed, envelope, decision, at, trace,
                                     state="ignored", action="none", reason=decision.reason)
            return completion, decision, None, None
        asset = await self.resolver.resolve(
            session, decision.fields,
            default_client=decision.default_client, default_site=decision.default_site,
        )
        trace.append(TraceStep("asset", asset.matched_by, asset.matched,
                               asset.asset_name or asset.ref).as_dict())
        outcome = await self.tickets.apply(session, message_id, decision, asset, at)
        trace.append(TraceStep("ticket", outcome.action, outcome.ticket_id is not None,
                               outcome.detail).as_dict())
        completion = _completion(
            parsed, envelope, decision, at, trace, state="done", action=outcome.action,
            reason=outcome.detail if outcome.action in _EXPLAINED_ACTIONS else None,
            ticket_id=outcome.ticket_id,
        )
        return completion, decision, asset, outcome


def _completion(
    parsed: ParsedMail,
    envelope: Envelope,
    decision: Decision,
    at: datetime,
    trace: list[dict[str, object]],
    *,
    state: str,
    action: str,
    reason: str | None,
    ticket_id: int | None = None,
) -> Completion:
    return Completion(
        state=state,
        action=action,
        reason=reason,
        ticket_id=ticket_id,
        sender=parsed.sender or envelope.mail_from,
        subject=parsed.subject,
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
