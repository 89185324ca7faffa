"""Evaluating a rule set against one mail: pure and synchronous (R3.1, R3.2).

The first sender rule whose addresses match names the alert types to try,
in order; the first alert type that matches decides (a `continue` type only
adds fields). A mail from a known sender that matches no alert type still
becomes a ticket of the sender's type: nothing is silently dropped. Every
rule tried is recorded, hit or miss, in the decision's trace.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from alertd.domain import Decision, Envelope, Outcome, ParsedMail, TicketSpec, TraceStep
from alertd.mail.noise import noise_reason
from alertd.rules.patterns import Pattern, encode
from alertd.templates import Template

MAX_DETAILS_CHARS = 65_536
BUILTIN_FIELDS = frozenset(
    {"subject", "sender", "sender_rule", "alert_type", "message_id", "date", "body"}
)
"""Fields every template may use, besides the named groups of its alert type."""
KEY_ONLY_FIELDS = frozenset({"asset"})
"""Fields only a dedup key may use: `{asset}` is known after asset resolution."""
DEFAULT_TYPE_KEY = Template.parse("{sender_rule}|{asset}|{subject}")


class MailView:
    """The texts conditions test, computed once per mail."""

    def __init__(self, mail: ParsedMail, envelope: Envelope | None) -> None:
        self.mail = mail
        sender = mail.sender or (envelope.mail_from if envelope else None) or ""
        self.sender = sender.strip().lower()
        recipients = list(mail.to) + list(envelope.rcpt_to if envelope else ())
        subject = encode(mail.subject)
        body = encode(mail.text)
        self._texts = {
            "subject": subject,
            "body": body,
            "text": subject + b"\n" + body,
            "from": encode(self.sender),
            "to": encode("\n".join(recipients)),
        }

    def text(self, source: str) -> bytes:
        """The encoded text a condition on ``source`` is tested against."""
        return self._texts[source]

    def builtins(self) -> dict[str, str]:
        """Values of the built-in template fields."""
        date = self.mail.date.isoformat() if self.mail.date else ""
        return {
            "subject": self.mail.subject,
            "sender": self.sender,
            "message_id": self.mail.message_id or "",
            "date": date,
            "body": self.mail.text[:MAX_DETAILS_CHARS],
        }


@dataclass(frozen=True, slots=True)
class Condition:
    """One compiled pattern and what it looks at."""

    source: str
    key: str | None
    pattern: Pattern

    def test(self, view: MailView, fields: Mapping[str, str]) -> Mapping[str, str] | None:
        """The named groups captured when this condition holds, else None."""
        if self.source == "header":
            assert self.key is not None
            for value in view.mail.header(self.key):
                found = self.pattern.search(value)
                if found is not None:
                    return found
            return None
        if self.source == "field":
            assert self.key is not None
            return self.pattern.search(fields.get(self.key, ""))
        return self.pattern.search_bytes(view.text(self.source))

    def describe(self) -> str:
        """`body ~ /pattern/`, for traces."""
        where = f"{self.source}[{self.key}]" if self.key else self.source
        return f"{where} ~ /{self.pattern.source}/"


@dataclass(frozen=True, slots=True)
class Conditions:
    """`all`, `any` and `none` lists of conditions."""

    all: tuple[Condition, ...] = ()
    any: tuple[Condition, ...] = ()
    none: tuple[Condition, ...] = ()
    _description: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Every evaluation traces the block: render its summary once, at load.
        object.__setattr__(self, "_description", self._describe())

    def test(self, view: MailView, fields: Mapping[str, str]) -> dict[str, str] | None:
        """Captured groups when the block holds (all, one of any, none of none), else None."""
        captured: dict[str, str] = {}
        for condition in self.all:
            found = condition.test(view, fields)
            if found is None:
                return None
            _fill(captured, found)
        if self.any:
            for condition in self.any:
                found = condition.test(view, fields)
                if found is not None:
                    _fill(captured, found)
                    break
            else:
                return None
        for condition in self.none:
            if condition.test(view, fields) is not None:
                return None
        return captured

    def describe(self) -> str:
        """A one-line summary for traces."""
        return self._description

    def _describe(self) -> str:
        parts = []
        for label, conditions in (("all", self.all), ("any", self.any), ("none", self.none)):
            if conditions:
                parts.append(f"{label}: " + "; ".join(c.describe() for c in conditions))
        return " | ".join(parts) or "always"


@dataclass(frozen=True, slots=True)
class TicketType:
    """A declared ticket type (R3.3)."""

    name: str
    priority: int
    team: str | None
    category: str | None


@dataclass(frozen=True, slots=True)
class AlertType:
    """A compiled alert type (R3.2)."""

    name: str
    file: Path
    match: Conditions
    extract: tuple[Condition, ...]
    problem: Conditions | None
    recovery: Conditions | None
    ignore: Conditions | None
    ticket_type: str | None
    summary: Template
    details: Template | None
    priority: int | None
    team: str | None
    category: str | None
    dedup_key: Template
    finish_scripts: bool
    continue_: bool

    def fields(self, view: MailView, matched: Mapping[str, str]) -> dict[str, str]:
        """Extracted fields: `extract` entries in order, then groups captured by `match`.

        An entry whose fields are all known already is not searched: the first
        value found wins, so its result could change nothing.
        """
        out: dict[str, str] = {}
        for condition in self.extract:
            if condition.pattern.group_names <= out.keys():
                continue
            found = condition.test(view, out)
            if found is not None:
                _fill(out, found)
        _fill(out, matched)
        return out


@dataclass(frozen=True, slots=True)
class Sender:
    """A compiled sender rule (R3.1)."""

    name: str
    file: Path
    addresses: frozenset[str]
    domains: frozenset[str]
    pattern: Pattern | None
    ticket_type: str
    alert_types: tuple[AlertType, ...]
    default_client: str | None
    default_site: str | None
    noise_detection: bool

    def matches(self, address: str) -> bool:
        """Whether mail from ``address`` comes from this sender."""
        if not address:
            return False
        if address in self.addresses:
            return True
        domain = address.rpartition("@")[2]
        if domain and domain in self.domains:
            return True
        return self.pattern is not None and self.pattern.search(address) is not None


@dataclass(frozen=True, slots=True)
class RuleSet:
    """A loaded, validated rules directory; immutable, so a reload swaps it whole."""

    version: str
    directory: Path
    files: tuple[Path, ...]
    ticket_types: Mapping[str, TicketType]
    senders: tuple[Sender, ...]
    alert_types: Mapping[str, AlertType]

    def sender_for(self, view: MailView) -> tuple[Sender | None, list[TraceStep]]:
        """The first sender rule matching the mail's sender, with the trace of tries."""
        trace: list[TraceStep] = []
        for sender in self.senders:
            hit = sender.matches(view.sender)
            trace.append(TraceStep("sender", sender.name, hit, view.sender or "(no sender)"))
            if hit:
                return sender, trace
        return None, trace

    def evaluate(self, mail: ParsedMail, envelope: Envelope | None = None) -> Decision:
        """Decide what ``mail`` is: a problem, a recovery, noise, or from an unknown sender."""
        view = MailView(mail, envelope)
        sender, trace = self.sender_for(view)
        if sender is None or sender.noise_detection:
            noise = noise_reason(mail, envelope)
            if noise is not None:
                trace.append(TraceStep("noise", "noise", True, noise))
                return self._decision("ignored", sender, None, {}, None, trace, reason=noise)
        if sender is None:
            reason = f"unknown sender {view.sender or '(none)'}"
            return self._decision("unknown_sender", None, None, {}, None, trace, reason=reason)

        added: dict[str, str] = {}
        for alert_type in sender.alert_types:
            matched = alert_type.match.test(view, {})
            trace.append(
                TraceStep("alert_type", alert_type.name, matched is not None,
                          alert_type.match.describe())
            )
            if matched is None:
                continue
            fields = alert_type.fields(view, matched)
            if alert_type.continue_:
                _fill(added, fields)
                continue
            _fill(fields, added)
            trace.append(TraceStep("extract", alert_type.name, True, _render_fields(fields)))
            return self._decide(view, sender, alert_type, fields, trace)

        trace.append(TraceStep("default", sender.name, True, "no alert type matched"))
        return self._default_decision(view, sender, added, trace)

    def _decide(
        self,
        view: MailView,
        sender: Sender,
        alert_type: AlertType,
        fields: dict[str, str],
        trace: list[TraceStep],
    ) -> Decision:
        ignored = alert_type.ignore.test(view, fields) if alert_type.ignore else None
        if alert_type.ignore is not None and ignored is not None:
            _fill(fields, ignored)
            trace.append(TraceStep("ignore", alert_type.name, True, alert_type.ignore.describe()))
            return self._decision(
                "ignored", sender, alert_type, fields, None, trace,
                reason=f"ignored by alert type {alert_type.name}",
            )
        outcome: Outcome = "problem"
        recovered = alert_type.recovery.test(view, fields) if alert_type.recovery else None
        # A recovery decides alone: the problem test matters only without one.
        problem = (alert_type.problem.test(view, fields)
                   if alert_type.problem and recovered is None else None)
        if alert_type.recovery is not None and recovered is not None:
            outcome = "recovery"
            _fill(fields, recovered)
            trace.append(TraceStep("outcome", "recovery", True, alert_type.recovery.describe()))
        elif alert_type.problem is None:
            trace.append(TraceStep("outcome", "problem", True, "no problem condition: a problem"))
        elif problem is not None:
            _fill(fields, problem)
            trace.append(TraceStep("outcome", "problem", True, alert_type.problem.describe()))
        else:
            trace.append(
                TraceStep("outcome", "problem", False,
                          "neither problem nor recovery matched: kept as a problem")
            )
        ticket_type = self.ticket_types[alert_type.ticket_type or sender.ticket_type]
        builtins = view.builtins()
        values = {**builtins, **fields, "sender_rule": sender.name,
                  "alert_type": alert_type.name}
        details = (
            alert_type.details.render(values) if alert_type.details is not None
            else view.mail.text[:MAX_DETAILS_CHARS]
        )
        ticket = TicketSpec(
            type=ticket_type.name,
            summary=" ".join(alert_type.summary.render(values).split()) or view.mail.subject,
            details=details,
            priority=alert_type.priority or ticket_type.priority,
            team=alert_type.team or ticket_type.team,
            category=alert_type.category or ticket_type.category,
            finish_scripts=alert_type.finish_scripts,
        )
        return self._decision(
            outcome, sender, alert_type, fields, ticket, trace,
            dedup_template=alert_type.dedup_key,
            key_values={**builtins, "sender_rule": sender.name,
                        "alert_type": alert_type.name},
        )

    def _default_decision(
        self, view: MailView, sender: Sender, fields: dict[str, str], trace: list[TraceStep]
    ) -> Decision:
        ticket_type = self.ticket_types[sender.ticket_type]
        ticket = TicketSpec(
            type=ticket_type.name,
            summary=view.mail.subject or f"Alert from {view.sender}",
            details=view.mail.text[:MAX_DETAILS_CHARS],
            priority=ticket_type.priority,
            team=ticket_type.team,
            category=ticket_type.category,
            finish_scripts=False,
        )
        return self._decision(
            "problem", sender, None, fields, ticket, trace,
            dedup_template=DEFAULT_TYPE_KEY,
            key_values={**view.builtins(), "sender_rule": sender.name},
        )

    def _decision(
        self,
        outcome: Outcome,
        sender: Sender | None,
        alert_type: AlertType | None,
        fields: Mapping[str, str],
        ticket: TicketSpec | None,
        trace: list[TraceStep],
        *,
        reason: str | None = None,
        dedup_template: Template | None = None,
        key_values: Mapping[str, str] | None = None,
    ) -> Decision:
        return Decision(
            outcome=outcome,
            sender_rule=sender.name if sender else None,
            alert_type=alert_type.name if alert_type else None,
            fields=dict(fields),
            ticket=ticket,
            trace=tuple(trace),
            ruleset_version=self.version,
            reason=reason,
            dedup_template=dedup_template,
            key_values=dict(key_values or {}),
            default_client=sender.default_client if sender else None,
            default_site=sender.default_site if sender else None,
        )


def _fill(target: dict[str, str], values: Mapping[str, str]) -> None:
    """Add values for fields not yet known; the first value found wins."""
    for name, value in values.items():
        if value and name not in target:
            target[name] = value


def _render_fields(fields: Mapping[str, str]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in sorted(fields.items())) or "(none)"
