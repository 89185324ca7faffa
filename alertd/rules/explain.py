"""Rendering a decision for people: what `alertd rules test` prints (R3.5)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from alertd.domain import Decision, ParsedMail


def mail_summary(mail: ParsedMail) -> list[tuple[str, Any]]:
    """The parsed fields rules look at."""
    return [
        ("from", mail.sender),
        ("to", ", ".join(mail.to)),
        ("subject", mail.subject),
        ("date", mail.date.isoformat() if mail.date else None),
        ("message-id", mail.message_id),
        ("content type", mail.content_type + (" (HTML converted to text)" if mail.html_only
                                              else "")),
        ("attachments", ", ".join(a.filename for a in mail.attachments) or None),
        ("defects", ", ".join(mail.defects) or None),
    ]


def trace_rows(decision: Decision) -> Iterable[tuple[str, str, str, str]]:
    """One row per rule tried: stage, name, hit or miss, detail."""
    for step in decision.trace:
        yield step.stage, step.name, "hit" if step.hit else "miss", step.detail


def decision_summary(decision: Decision) -> list[tuple[str, Any]]:
    """What the rules decided."""
    ticket = decision.ticket
    return [
        ("outcome", decision.outcome),
        ("reason", decision.reason),
        ("sender rule", decision.sender_rule),
        ("alert type", decision.alert_type or ("(sender default)" if ticket else None)),
        ("fields", ", ".join(f"{k}={v!r}" for k, v in sorted(decision.fields.items())) or None),
        ("ticket type", ticket.type if ticket else None),
        ("summary", ticket.summary if ticket else None),
        ("priority", ticket.priority if ticket else None),
        ("rules version", decision.ruleset_version),
    ]
