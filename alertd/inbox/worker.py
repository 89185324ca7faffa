"""The inbox worker: claims messages, runs the pipeline, records every outcome.

Each message is processed in its own transaction and ends in a named state:
done, ignored, or failed with a reason. A transient failure (database
unavailable) is retried later with exponential backoff; a parse failure or
a bug waits for `alertd messages retry`. The worker wakes at once for mail
stored by this process and polls for mail stored by others.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alertd.clock import Clock
from alertd.db.engine import is_unavailable, storage_errors
from alertd.domain import ParsedMail
from alertd.errors import ParseError, StorageUnavailable
from alertd.inbox.pipeline import Pipeline
from alertd.inbox.store import Claimed, InboxStore, LeaseLost
from alertd.logs import get_logger
from alertd.mail.parse import parse_mail
from alertd.rules.engine import RuleSet
from alertd.settings import InboxSettings

log = get_logger(__name__)


@dataclass
class DrainReport:
    """What one drain did, counted by final state."""

    processed: int = 0
    by_state: dict[str, int] = field(default_factory=dict)

    def count(self, state: str) -> None:
        """Count one message that ended in ``state``."""
        self.processed += 1
        self.by_state[state] = self.by_state.get(state, 0) + 1


def worker_id(index: int = 0) -> str:
    """A name for a worker that is unique across hosts and processes."""
    return f"{socket.gethostname()}:{os.getpid()}:{index}"


class InboxWorker:
    """Claims and processes inbox messages until there are none (or until told to stop)."""

    def __init__(
        self,
        *,
        store: InboxStore,
        sessions: async_sessionmaker[AsyncSession],
        rules: Callable[[], RuleSet],
        pipeline: Pipeline,
        settings: InboxSettings,
        clock: Clock,
        name: str | None = None,
    ) -> None:
        self.store = store
        self.sessions = sessions
        self.rules = rules
        self.pipeline = pipeline
        self.settings = settings
        self.clock = clock
        self.name = name or worker_id()

    async def drain(self, stopping: asyncio.Event | None = None) -> DrainReport:
        """Process until nothing is due; stops between messages once ``stopping`` is set."""
        report = DrainReport()
        while stopping is None or not stopping.is_set():
            batch = await self.store.claim(
                self.name, limit=self.settings.batch_size, lease=self.settings.lease,
                max_attempts=self.settings.max_attempts,
            )
            if not batch:
                break
            await self._process_batch(batch, report, stopping)
        return report

    async def run(self, stopping: asyncio.Event) -> None:
        """Work until ``stopping`` is set: drain, then wait for arrivals or the poll interval."""
        poll = self.settings.poll_interval.total_seconds()
        while not stopping.is_set():
            self.store.arrived.clear()
            try:
                await self.drain(stopping)
            except StorageUnavailable as error:
                log.warning("inbox.storage_unavailable", error=str(error))
            waits = [asyncio.ensure_future(self.store.arrived.wait()),
                     asyncio.ensure_future(stopping.wait())]
            try:
                await asyncio.wait(waits, timeout=poll, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waits:
                    waiter.cancel()

    async def _process_batch(
        self, batch: list[Claimed], report: DrainReport, stopping: asyncio.Event | None
    ) -> None:
        parsed = await asyncio.to_thread(_parse_all, [item.data for item in batch])
        for index, (item, mail) in enumerate(zip(batch, parsed, strict=True)):
            if stopping is not None and stopping.is_set():
                # Not started: give the rest back now rather than after the lease.
                await self._release(batch[index:])
                return
            state = await self._process_one(item, mail)
            if state is not None:
                report.count(state)
            await asyncio.sleep(0)  # let sources accept mail between messages

    async def _process_one(self, item: Claimed, mail: ParsedMail | ParseError) -> str | None:
        started = time.perf_counter()
        structlog.contextvars.bind_contextvars(
            message_id=item.id, source=item.envelope.source,
            mail_message_id=mail.message_id if isinstance(mail, ParsedMail) else None,
        )
        try:
            if isinstance(mail, ParseError):
                await self._fail(item, f"parse: {mail}", transient=False)
                return "failed"
            rules = self.rules()
            try:
                async with storage_errors(), self.sessions.begin() as session:
                    completion, _, _, _ = await self.pipeline.process(
                        session, item.id, mail, item.envelope, item.received_at, rules
                    )
                    await self.store.complete(session, item.id, self.name, completion)
            except LeaseLost:
                log.warning("message.lease_lost")
                return None
            except StorageUnavailable as error:
                await self._fail(item, f"storage: {error}", transient=True)
                raise
            except Exception as error:
                if is_unavailable(error):
                    await self._fail(item, f"storage: {error}", transient=True)
                    raise StorageUnavailable(str(error)) from error
                log.exception("message.error")
                await self._fail(item, f"error: {type(error).__name__}: {error}",
                                 transient=False)
                return "failed"
            log.info(
                "message.processed", state=completion.state, action=completion.action,
                sender_rule=completion.sender_rule, alert_type=completion.alert_type,
                ticket_id=completion.ticket_id, reason=completion.reason,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            return completion.state
        finally:
            structlog.contextvars.unbind_contextvars("message_id", "source", "mail_message_id")

    async def _fail(self, item: Claimed, reason: str, *, transient: bool) -> None:
        retry_at: datetime | None = None
        if transient and item.attempts < self.settings.max_attempts:
            delay = min(self.settings.retry_backoff * (2 ** (item.attempts - 1)),
                        self.settings.retry_backoff_max)
            retry_at = self.clock.now() + delay
        elif transient:
            reason = f"{reason} (gave up after {item.attempts} attempts; retry by hand)"
        log.info("message.processed", state="failed", reason=reason, retry_at=retry_at,
                 attempts=item.attempts)
        try:
            await self.store.fail(item.id, self.name, reason, retry_at=retry_at)
        except StorageUnavailable:
            log.warning("message.fail_not_recorded", reason=reason)

    async def _release(self, items: list[Claimed]) -> None:
        await self.store.release([item.id for item in items], self.name)


def _parse_all(blobs: list[bytes]) -> list[ParsedMail | ParseError]:
    out: list[ParsedMail | ParseError] = []
    for blob in blobs:
        try:
            out.append(parse_mail(blob))
        except ParseError as error:
            out.append(error)
    return out
