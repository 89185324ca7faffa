"""Frozen values shared by every layer: what a mail is, what the rules decided,
which asset it names and what it did to a ticket.

Nothing here does I/O; everything is immutable so a decision can be logged,
stored and compared without copying.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from alertd.templates import Template

Outcome = Literal["problem", "recovery", "ignored", "unknown_sender"]
"""What the rules made of a mail."""

Action = Literal[
    "new_ticket",
    "occurrence",
    "reopened",
    "resolved",
    "recovery_without_ticket",
    "stale_recovery",
    "none",
]
"""What a processed mail did to the tickets."""

MessageState = Literal["received", "processing", "done", "ignored", "failed"]
TicketStatus = Literal["open", "resolved", "closed"]
MatchedBy = Literal["computer_id", "hostname_in_client", "hostname", "serial", "unmatched"]

MAX_KEY_CHARS = 500


def bounded_key(key: str) -> str:
    """A dedup key short enough to index: long keys keep their start and a hash of the whole."""
    if len(key) <= MAX_KEY_CHARS:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:24]
    return f"{key[: MAX_KEY_CHARS - 26]}#{digest}"


@dataclass(frozen=True, slots=True)
class Problem:
    """One validation finding in a settings or rules file."""

    file: Path
    line: int | None
    where: str
    message: str

    def render(self) -> str:
        """`file:line: where: message`, the form every checker prints."""
        location = f"{self.file}:{self.line}" if self.line is not None else f"{self.file}"
        return f"{location}: {self.where}: {self.message}" if self.where else (
            f"{location}: {self.message}"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """How a mail reached alertd, as the transport saw it."""

    source: str
    mail_from: str | None = None
    rcpt_to: tuple[str, ...] = ()
    peer: str | None = None
    mailbox: str | None = None
    uidvalidity: int | None = None
    uid: int | None = None


@dataclass(frozen=True, slots=True)
class RawMessage:
    """A mail exactly as received, before anything interprets it."""

    envelope: Envelope
    data: bytes
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Accepted:
    """The answer of the durable inbox: where the mail is, and whether it was new."""

    id: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    """What an attachment is, without its content."""

    filename: str
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class ParsedMail:
    """A mail reduced to what rules look at."""

    message_id: str | None
    sender: str | None
    to: tuple[str, ...]
    subject: str
    date: datetime | None
    headers: Mapping[str, tuple[str, ...]]
    text: str
    content_type: str
    attachments: tuple[AttachmentInfo, ...] = ()
    defects: tuple[str, ...] = ()
    html_only: bool = False

    def header(self, name: str) -> tuple[str, ...]:
        """Every value of header ``name`` (case-insensitive), in order."""
        return self.headers.get(name.lower(), ())


@dataclass(frozen=True, slots=True)
class TicketSpec:
    """The ticket an alert makes when it opens one."""

    type: str
    summary: str
    details: str
    priority: int
    team: str | None = None
    category: str | None = None
    finish_scripts: bool = True


@dataclass(frozen=True, slots=True)
class TraceStep:
    """One rule tried while deciding, hit or miss, for `rules test` and audit."""

    stage: str
    name: str
    hit: bool
    detail: str = ""

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready form."""
        return {"stage": self.stage, "name": self.name, "hit": self.hit, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Decision:
    """What the rules decided for one mail, and why."""

    outcome: Outcome
    sender_rule: str | None
    alert_type: str | None
    fields: Mapping[str, str]
    ticket: TicketSpec | None
    trace: tuple[TraceStep, ...]
    ruleset_version: str
    reason: str | None = None
    dedup_template: Template | None = None
    key_values: Mapping[str, str] = field(default_factory=dict)
    """Built-in values the dedup key may use besides the fields (sender_rule, subject…)."""
    default_client: str | None = None
    default_site: str | None = None

    def dedup_key(self, asset_ref: str) -> str | None:
        """The dedup key once the asset is known (`{asset}` is ``asset_ref``)."""
        if self.dedup_template is None:
            return None
        values = {**self.key_values, **self.fields, "asset": asset_ref}
        return bounded_key(self.dedup_template.render(values))


@dataclass(frozen=True, slots=True)
class AssetMatch:
    """Which asset (if any) an alert names, found how, and under which client and site."""

    matched_by: MatchedBy
    ref: str
    asset_id: int | None = None
    asset_name: str | None = None
    automate_id: str | None = None
    client_id: int | None = None
    client_name: str | None = None
    site_id: int | None = None
    site_name: str | None = None

    @property
    def matched(self) -> bool:
        """Whether an asset was found."""
        return self.asset_id is not None


@dataclass(frozen=True, slots=True)
class TicketOutcome:
    """What applying one decision did to the tickets."""

    action: Action
    ticket_id: int | None = None
    detail: str = ""
    extra: Mapping[str, object] = field(default_factory=dict)
