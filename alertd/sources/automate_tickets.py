"""API-based alerting: Automate's own tickets as an alert source (SPEC R5.6).

Every poll asks `GET /Tickets` for tickets not finished (`Status.Id in
(...)`) and updated since the last one seen, less a small overlap, walking
the result by `TicketId` (an order that does not shift while tickets
change). Each ticket state becomes one mail in the durable inbox, so it
goes through the same rules, asset resolution and dedup as alert mail:

- From is `api_alerting.sender`, which the bundled rules know;
- headers `X-Automate-Ticket-Id`, `X-Automate-Computer-Id`,
  `X-Automate-Client`, `X-Automate-Location`, `X-Automate-Status` carry
  the ids (the ticket id becomes the local ticket's Automate ticket id, so
  finishing it runs the Ticket Finish scripts against that ticket);
- the Message-ID names the ticket and its UpdateDate, and the content
  depends only on the ticket, so reading the same state twice stores it
  once, and an update arrives as a new occurrence.

The cursor (the latest UpdateDate seen) is saved only after a whole poll is
stored: a crash re-reads, and the inbox drops what it already has, so a
restart neither loses nor repeats a ticket. One instance polls at a time
(a lease, as for IMAP mailboxes).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alertd.automate.client import AutomateClient
from alertd.automate.models import Bad
from alertd.automate.tickets import AutomateTicket
from alertd.clock import Clock
from alertd.daemon.leases import Lease, lease_for
from alertd.db.engine import storage_errors
from alertd.db.tables import AUTOMATE_TICKET_CURSOR
from alertd.domain import Envelope, RawMessage
from alertd.errors import AutomateError, AutomateMisconfigured, StorageUnavailable
from alertd.inbox.store import InboxStore
from alertd.logs import get_logger
from alertd.runtime import Runtime
from alertd.settings import AutomateApiAlerting

log = get_logger(__name__)

SOURCE = "automate"
CURSOR_NAME = "tickets"
BACKOFF_MAX_S = 600.0
_STAMP = re.compile(r"[^0-9A-Za-z]+")


class AutomateTicketPoller:
    """Polls Automate tickets into the inbox until stopped."""

    name = "automate-tickets"

    def __init__(self, *, store: InboxStore, sessions: async_sessionmaker[AsyncSession],
                 client: AutomateClient, settings: AutomateApiAlerting, clock: Clock,
                 lease: Lease, automate_url: str) -> None:
        self.store = store
        self.sessions = sessions
        self.client = client
        self.settings = settings
        self.clock = clock
        self.lease = lease
        self.automate_url = automate_url
        self.zone = ZoneInfo(settings.server_timezone)
        self._rng = random.Random()  # noqa: S311 - backoff jitter

    async def run(self, stopping: asyncio.Event) -> None:
        """Hold the lease and poll every interval; log outages once, and recoveries."""
        while not stopping.is_set():
            if not await self.lease.acquire(stopping):
                break
            try:
                await self._while_held(stopping)
            finally:
                await self.lease.release()

    async def _while_held(self, stopping: asyncio.Event) -> None:
        failures = 0
        while not stopping.is_set():
            delay = self.settings.poll_interval.total_seconds()
            try:
                stored = await self.poll_once(stopping)
                if failures:
                    log.info("automate_tickets.recovered", after_failures=failures)
                failures = 0
                if stored:
                    log.info("automate_tickets.polled", stored=stored)
            except (AutomateError, StorageUnavailable) as error:
                failures += 1
                long = isinstance(error, AutomateMisconfigured)
                delay = BACKOFF_MAX_S if long else min(
                    BACKOFF_MAX_S, delay * (2 ** min(failures - 1, 8))) * (
                    0.5 + self._rng.random() / 2)
                if failures == 1:
                    log.warning("automate_tickets.down", error=str(error),
                                retry_in_s=round(delay, 1))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=delay)
            if not await self.lease.check():
                return

    async def poll_once(self, stopping: asyncio.Event | None = None) -> int:
        """Read tickets changed since the cursor into the inbox; returns how many were new."""
        cursor = await self._load_cursor()
        statuses = ",".join(str(int(s)) for s in self.settings.status_ids)
        base = f"Status.Id in ({statuses})"
        if cursor is not None:
            base += f" and UpdateDate >= {_minus(cursor, self.settings.overlap)}"
        last_id = 0
        newest = cursor
        stored = 0
        while stopping is None or not stopping.is_set():
            page = await self.client.ticket_page(f"{base} and TicketId > {last_id}")
            tickets: list[AutomateTicket] = []
            ids: list[int] = []
            for ticket in page:
                if isinstance(ticket, Bad):
                    log.warning("automate_tickets.unreadable", ticket_id=ticket.id,
                                reason=ticket.reason)
                    if ticket.id is not None and ticket.id.isdigit():
                        ids.append(int(ticket.id))
                else:
                    tickets.append(ticket)
                    ids.append(ticket.id)
            if not ids:
                break
            received = self.clock.now()
            accepted = await self.store.accept_many(
                [self.message(ticket, received) for ticket in tickets])
            stored += sum(1 for answer in accepted if not answer.duplicate)
            last_id = max(ids)
            stamps = [t.update_date for t in tickets] + ([newest] if newest is not None else [])
            if stamps:
                newest = max(stamps, key=_stamp_key)
            if len(page) < self.client.settings.page_size:
                break
        if newest is not None and newest != cursor:
            await self._save_cursor(newest)
        return stored

    def message(self, ticket: AutomateTicket, received: datetime) -> RawMessage:
        """The mail one ticket state becomes; the same state always gives the same bytes."""
        mail = EmailMessage(policy=SMTP)
        mail["From"] = f"Automate tickets <{self.settings.sender}>"
        mail["To"] = self.settings.sender
        mail["Subject"] = ticket.subject
        when = _as_time(ticket.update_date, self.zone)
        if when is not None:
            mail["Date"] = format_datetime(when)
        domain = self.settings.sender.rpartition("@")[2] or "automate-api.alertd.invalid"
        mail["Message-ID"] = (f"<automate-ticket-{ticket.id}-"
                              f"{_STAMP.sub('', ticket.update_date)}@{domain}>")
        mail["Auto-Submitted"] = "auto-generated"
        headers = {
            "X-Automate-Ticket-Id": str(ticket.id),
            "X-Automate-Computer-Id": ticket.computer_id,
            "X-Automate-Computer": ticket.computer,
            "X-Automate-Client-Id": ticket.client_id,
            "X-Automate-Client": ticket.client,
            "X-Automate-Location": ticket.location,
            "X-Automate-Status": ticket.status,
            "X-Automate-Monitor-Id": ticket.monitor_id,
            "X-Automate-Update-Date": ticket.update_date,
        }
        for name, value in headers.items():
            if value:
                mail[name] = value
        lines = [
            f"AutomateTicketID: {ticket.id}",
            *(f"{label}: {value}" for label, value in (
                ("ComputerID", ticket.computer_id), ("Computer", ticket.computer),
                ("ClientID", ticket.client_id), ("Client", ticket.client),
                ("Location", ticket.location), ("Status", ticket.status),
                ("Priority", ticket.priority), ("Category", ticket.category),
                ("From", ticket.sender), ("Updated", ticket.update_date),
                ("Ticket", f"{self.automate_url}/automate/ticket/{ticket.id}"),
            ) if value),
            "",
            *ticket.comments,
        ]
        mail.set_content("\n".join(lines) + "\n")
        envelope = Envelope(source=SOURCE, mail_from=self.settings.sender, rcpt_to=(),
                            peer=self.automate_url)
        return RawMessage(envelope=envelope, data=mail.as_bytes(), received_at=received)

    async def _load_cursor(self) -> str | None:
        async with storage_errors(), self.sessions() as session:
            value = (await session.execute(
                select(AUTOMATE_TICKET_CURSOR.c.last_update)
                .where(AUTOMATE_TICKET_CURSOR.c.name == CURSOR_NAME)
            )).scalar()
        return str(value) if value is not None else None

    async def _save_cursor(self, value: str) -> None:
        async with storage_errors(), self.sessions.begin() as session:
            connection = await session.connection()
            module = postgresql if connection.dialect.name == "postgresql" else sqlite
            statement = module.insert(AUTOMATE_TICKET_CURSOR).values(
                name=CURSOR_NAME, last_update=value, updated_at=self.clock.now())
            await session.execute(statement.on_conflict_do_update(
                index_elements=[AUTOMATE_TICKET_CURSOR.c.name],
                set_={"last_update": statement.excluded.last_update,
                      "updated_at": statement.excluded.updated_at}))


def automate_ticket_poller(runtime: Runtime, client: AutomateClient) -> AutomateTicketPoller | None:
    """The poller, when `automate.api_alerting.enabled` says so."""
    automate = runtime.settings.automate
    if automate is None or not automate.api_alerting.enabled:
        return None
    alerting = automate.api_alerting
    return AutomateTicketPoller(
        store=runtime.store, sessions=runtime.sessions, client=client, settings=alerting,
        clock=runtime.clock, automate_url=automate.url,
        lease=lease_for(runtime.engine, "automate-tickets",
                        retry=min(alerting.poll_interval, timedelta(seconds=30))),
    )


def _parse_stamp(value: str) -> datetime | None:
    raw = value.strip().replace("Z", "")
    head, dot, rest = raw.partition(".")
    digits = rest[:6] if dot else ""
    try:
        return datetime.fromisoformat(f"{head}.{digits}" if digits else head).replace(
            tzinfo=None)
    except ValueError:
        return None


def _stamp_key(value: str) -> tuple[int, datetime | str]:
    parsed = _parse_stamp(value)
    return (1, parsed) if parsed is not None else (0, value)


def _minus(stamp: str, overlap: timedelta) -> str:
    """The server-local stamp ``overlap`` earlier, unquoted ISO as conditions take it."""
    parsed = _parse_stamp(stamp)
    if parsed is None:
        return stamp
    return (parsed - overlap).isoformat(timespec="seconds")


def _as_time(stamp: str, zone: ZoneInfo) -> datetime | None:
    parsed = _parse_stamp(stamp)
    return parsed.replace(tzinfo=zone) if parsed is not None else None

