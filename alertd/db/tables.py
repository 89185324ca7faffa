"""The schema, as SQLAlchemy 2 typed tables.

Two constraints carry the no-loss and no-duplicate promises, so they hold
across workers and instances without in-process locks:

- `messages` is unique on `(message_key, content_hash)` and on
  `(mailbox, uidvalidity, uid)`: the same mail is stored once (R1.4);
- `tickets` has a partial unique index on `dedup_key` where
  `status = 'open'`: one open ticket per alert key (R4.3, R6.4).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with stable constraint names for migrations."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: dict[Any, Any] = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        datetime: UtcDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class Client(Base):
    """A customer (Automate "client")."""

    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    name_key: Mapped[str] = mapped_column(Text, index=True)
    automate_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    top_level: Mapped[str | None] = mapped_column(Text)
    """The customer top level the import put this client under (R5.2)."""
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Site(Base):
    """A client's site (Automate "location")."""

    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(Text)
    name_key: Mapped[str] = mapped_column(Text)
    automate_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class User(Base):
    """A client's contact (Automate "contact")."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int | None] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), index=True
    )
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    automate_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Asset(Base):
    """A device alerts can name: server, workstation, router, printer…"""

    __tablename__ = "assets"
    __table_args__ = (UniqueConstraint("automate_kind", "automate_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    name_key: Mapped[str] = mapped_column(Text, index=True)
    """Lower-cased short host name, what alert host names are compared with."""
    kind: Mapped[str] = mapped_column(String(64))
    automate_kind: Mapped[str | None] = mapped_column(String(32))
    """computer, router, printer or network_device: which Automate id space."""
    automate_id: Mapped[str | None] = mapped_column(String(64))
    asset_tag: Mapped[str | None] = mapped_column(Text)
    tag_key: Mapped[str | None] = mapped_column(Text, index=True)
    serial: Mapped[str | None] = mapped_column(Text)
    serial_key: Mapped[str | None] = mapped_column(Text, index=True)
    client_id: Mapped[int | None] = mapped_column(
        ForeignKey("clients.id", ondelete="SET NULL"), index=True
    )
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="SET NULL"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("assets.id", ondelete="SET NULL"))
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Message(Base):
    """The durable inbox: every accepted mail, raw, with its envelope and fate (R1.4)."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("message_key", "content_hash"),
        UniqueConstraint("mailbox", "uidvalidity", "uid"),
        Index("ix_messages_state_id", "state", "id"),
        Index("ix_messages_retry_due", "retry_at", "id",
              sqlite_where=text("state = 'failed' AND retry_at IS NOT NULL"),
              postgresql_where=text("state = 'failed' AND retry_at IS NOT NULL")),
        Index("ix_messages_lease", "lease_until", "id",
              sqlite_where=text("state = 'processing'"),
              postgresql_where=text("state = 'processing'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    mail_from: Mapped[str | None] = mapped_column(Text)
    rcpt_to: Mapped[list[Any]] = mapped_column(default=list)
    peer: Mapped[str | None] = mapped_column(Text)
    mailbox: Mapped[str | None] = mapped_column(Text)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    uid: Mapped[int | None] = mapped_column(BigInteger)
    message_id: Mapped[str | None] = mapped_column(Text)
    message_key: Mapped[str | None] = mapped_column(String(255))
    """Message-ID cut to an indexable length; NULL when absent, so only mails that
    name themselves are de-duplicated by content."""
    content_hash: Mapped[str] = mapped_column(String(64))
    size: Mapped[int]
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(16), default="received")
    action: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    retry_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(Text)
    lease_until: Mapped[datetime | None]
    processed_at: Mapped[datetime | None]
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("tickets.id", ondelete="SET NULL"), index=True
    )
    sender: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(Text)
    alert_time: Mapped[datetime | None]
    sender_rule: Mapped[str | None] = mapped_column(Text)
    alert_type: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(String(32))
    fields: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    trace: Mapped[list[Any] | None] = mapped_column(JSON)
    ruleset_version: Mapped[str | None] = mapped_column(String(32))


class Ticket(Base):
    """An alert ticket: one per open alert key, with its occurrences (R4.2)."""

    __tablename__ = "tickets"
    __table_args__ = (
        Index(
            "uq_tickets_open_dedup_key",
            "dedup_key",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
        Index("ix_tickets_dedup_key_status", "dedup_key", "status", "resolved_at"),
        Index("ix_tickets_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text)
    details: Mapped[str] = mapped_column(Text)
    priority: Mapped[int]
    team: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(Text)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="SET NULL"))
    client_name: Mapped[str | None] = mapped_column(Text)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="SET NULL"))
    site_name: Mapped[str | None] = mapped_column(Text)
    asset_id: Mapped[int | None] = mapped_column(
        ForeignKey("assets.id", ondelete="SET NULL"), index=True
    )
    matched_by: Mapped[str] = mapped_column(String(32))
    asset_ref: Mapped[str] = mapped_column(Text)
    """The asset part of the dedup key, swapped when a later import links the asset."""
    sender_rule: Mapped[str | None] = mapped_column(Text)
    alert_type: Mapped[str | None] = mapped_column(Text)
    dedup_key: Mapped[str] = mapped_column(Text)
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """The opening alert's extracted fields, kept to link the asset later."""
    occurrences: Mapped[int] = mapped_column(default=1)
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    last_problem_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    resolution: Mapped[str | None] = mapped_column(Text)
    finish_scripts: Mapped[bool] = mapped_column(Boolean, default=True)
    automate_ticket_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    """The Automate ticket this ticket stands for (API alerting, or a mail that names it):
    finishing runs the Ticket Finish scripts against it (R5.5, R5.6)."""
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class AlertKey(Base):
    """What is known of an alert key beyond its tickets: its latest recovery.

    A recovery that finds nothing open is kept here, so a problem older
    than it (processed later: another worker, a retry, a slow queue) opens
    its ticket already resolved, as live arrival in order would have.
    """

    __tablename__ = "alert_keys"

    dedup_key: Mapped[str] = mapped_column(Text, primary_key=True)
    last_recovery_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TicketEvent(Base):
    """One line of a ticket's history: an alert, a status change, a call (R4.2)."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime]
    """When it happened: the alert's own time for alert events."""
    recorded_at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(Text)
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), index=True
    )
    detail: Mapped[str] = mapped_column(Text, default="")


class OutboxEntry(Base):
    """One Automate action a ticket change queued, committed with that change (R5.5).

    States: `pending` (due at `due_at`), `sending` (a launch is in flight),
    `verifying` (a launch whose answer was lost: ScriptHistory is checked
    before anything else), `unconfirmed` (could not be verified: an admin
    decides), `following` (launched; waiting for the run's outcome), then
    `done` or `failed`. A row is never sent again once a launch may have
    reached Automate, unless an admin says so.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_state_due", "state", "due_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"),
                                           index=True)
    action: Mapped[str] = mapped_column(String(32))
    """What to do: `finish_script`."""
    label: Mapped[str] = mapped_column(Text)
    """The script as configured (its name or `script 6401`), for people."""
    script_id: Mapped[int | None] = mapped_column(BigInteger)
    script_name: Mapped[str | None] = mapped_column(Text)
    """Looked up through `GET /Scripts` at launch when no id is configured."""
    entity_type: Mapped[str] = mapped_column(String(32))
    """`Ticket` or `Computer` (ScheduleScriptBatchRequest.EntityType)."""
    entity_id: Mapped[int] = mapped_column(BigInteger)
    computer_id: Mapped[int | None] = mapped_column(BigInteger)
    """Where the run shows in ScriptHistory (to verify a lost answer, to follow the outcome)."""
    parameters: Mapped[list[Any]] = mapped_column(default=list)
    """`[{"Key": ..., "Value": ...}]`, rendered when the ticket was resolved."""
    follow_up: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    """Launch attempts that got an answer saying nothing was launched (429, 5xx, refused)."""
    checks: Mapped[int] = mapped_column(default=0)
    """ScriptHistory look-ups made to verify a lost answer or follow the outcome."""
    due_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    """When the launch that may have reached Automate was sent."""
    claimed_by: Mapped[str | None] = mapped_column(Text)
    lease_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """Automate's answer to the launch (ScheduleScriptBatchResponse)."""
    outcome: Mapped[str | None] = mapped_column(Text)
    """The run's outcome from ScriptHistory, when followed."""
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class AutomateTicketCursor(Base):
    """How far the Automate ticket poller has read (R5.6): the latest UpdateDate seen."""

    __tablename__ = "automate_ticket_cursor"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_update: Mapped[str] = mapped_column(String(64))
    """Automate's own UpdateDate text (server local time, no zone), compared as Automate does."""
    updated_at: Mapped[datetime]


def core_table(model: type[Base]) -> Table:
    """The Core table behind a mapped class, for bulk statements without ORM overhead."""
    return cast(Table, model.__table__)


CLIENTS = core_table(Client)
MESSAGES = core_table(Message)
TICKETS = core_table(Ticket)
TICKET_EVENTS = core_table(TicketEvent)
ALERT_KEYS = core_table(AlertKey)
OUTBOX = core_table(OutboxEntry)
AUTOMATE_TICKET_CURSOR = core_table(AutomateTicketCursor)
