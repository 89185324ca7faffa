"""The inbox worker: claims messages, runs the pipeline, records every outcome.

A claimed batch is processed in one transaction: the claim is re-confirmed,
the pipeline runs, and the messages' new states commit with the ticket
changes they caused. Every message ends in a named state: done, ignored, or
failed with a reason. If a batch cannot be written (a rare race with
another instance, or one message the database refuses), its messages are
processed one by one, so one bad message never holds up the others. A
transient failure (database unavailable) is retried later with exponential
backoff; a parse failure or a bug waits for `alertd messages retry`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alertd.clock import Clock
from alertd.db.engine import is_unavailable, storage_errors
from alertd.domain import ParsedMail
from alertd.errors import ParseError, StorageUnavailable
from alertd.inbox.pipeline import Incoming, Pipeline, Processed
from alertd.inbox.store import Claimed, Completion, InboxStore
from alertd.logs import get_logger
from alertd.mail.parse import parse_mail
from alertd.metrics import MESSAGES, PROCESSING_SECONDS
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

    async def drain(
        self,
        stopping: asyncio.Event | None = None,
        *,
        pause: Callable[[], bool] | None = None,
    ) -> DrainReport:
        """Process until nothing is due; stops between batches once ``stopping`` is set
        (or ``pause`` says so: sources need the CPU).

        The next batch is claimed and its parsing started while the current
        one is written, so parsing fills the waits for the database. While
        sources are storing mail, each batch is followed by a rest (`_rest`).
        """
        report = DrainReport()
        upcoming = await self._claim_and_parse()
        while upcoming is not None:
            started = time.perf_counter()
            batch, parsing = upcoming
            upcoming = None
            try:
                parsed = await parsing
                if stopping is not None and stopping.is_set():
                    await self.store.release([item.id for item in batch], self.name)
                    break
                if pause is None or not pause():
                    upcoming = await self._claim_and_parse()
                await self.process_batch(batch, report, parsed)
            except BaseException:
                await self._give_back(batch, upcoming)
                raise
            await self._rest(time.perf_counter() - started)
        return report

    async def _rest(self, worked_s: float) -> None:
        """Let sources have the loop between batches: a turn, or while they are storing mail,
        as long again as `busy_share` leaves them.

        Sources and workers share one event loop, which favours nobody: with
        a backlog to work off (a storm that outlasted `max_hold`), a worker
        that only yields a turn between batches keeps the loop nearly to
        itself, and every SMTP session's next step queues behind its batches
        (`bench/smtp.py --mails 20000`: accept latency climbed to seconds at
        500 mails/s). Resting in proportion to the work keeps the sessions'
        turns short and still processes faster than alerts usually arrive.
        """
        share = self.settings.busy_share
        if share < 1 and self.store.gate.recently_busy(BUSY_WINDOW_S):
            await asyncio.sleep(worked_s * (1 - share) / share)
        else:
            await asyncio.sleep(0)

    async def _give_back(
        self,
        batch: list[Claimed],
        upcoming: tuple[list[Claimed], asyncio.Future[list[ParsedMail | ParseError]]] | None,
    ) -> None:
        """Something went wrong: hand back what was claimed but not processed, now rather
        than after the lease (best effort: if the database is gone, the lease does it)."""
        unfinished = list(batch)
        if upcoming is not None:
            upcoming[1].cancel()
            await asyncio.gather(upcoming[1], return_exceptions=True)
            unfinished += upcoming[0]
        with contextlib.suppress(StorageUnavailable):
            await self.store.release([item.id for item in unfinished], self.name)

    async def _claim_and_parse(
        self,
    ) -> tuple[list[Claimed], asyncio.Future[list[ParsedMail | ParseError]]] | None:
        busy = self.store.gate.recently_busy(BUSY_WINDOW_S)
        batch = await self.store.claim(
            self.name,
            limit=self.settings.busy_batch_size if busy else self.settings.batch_size,
            lease=self.settings.lease,
            max_attempts=self.settings.max_attempts,
        )
        if not batch:
            return None
        parsing = asyncio.ensure_future(parse_batch([item.data for item in batch]))
        return batch, parsing

    async def run(self, stopping: asyncio.Event) -> None:
        """Work until ``stopping`` is set: drain, then wait for arrivals or the poll interval."""
        poll = self.settings.poll_interval.total_seconds()
        held_since: float | None = None
        while not stopping.is_set():
            self.store.arrived.clear()
            if self._storm(held=held_since is not None):
                held_since = held_since or time.monotonic()
                if time.monotonic() - held_since < self.settings.max_hold.total_seconds():
                    await _wait(stopping, HOLD_CHECK_S)
                    continue
                pause = None  # held long enough: process while the storm goes on
            else:
                held_since = None
                pause = self._storm
            try:
                await self.drain(stopping, pause=pause)
            except StorageUnavailable as error:
                log.warning("inbox.storage_unavailable", error=str(error))
            if not self._storm(held=held_since is not None):
                await _wait(stopping, poll, self.store.arrived)
                if self.store.arrived.is_set() and self.settings.hold_above > 0:
                    # Let a burst show itself before competing with it for the CPU.
                    await _wait(stopping, SETTLE_S)

    def _storm(self, *, held: bool = False) -> bool:
        """Whether mail arrives fast enough that storing it should have the CPU to itself.

        A storm starts above `hold_above` mails/s and ends only below a fifth
        of that, so a short dip does not wake processing in the middle of it.
        """
        limit = self.settings.hold_above
        if limit <= 0:
            return False
        return self.store.gate.incoming_rate() > (limit / 5 if held else limit)

    async def process_batch(
        self,
        batch: Sequence[Claimed],
        report: DrainReport,
        parsed: Sequence[ParsedMail | ParseError] | None = None,
    ) -> None:
        """Process and record one claimed batch (parsing it first unless already parsed)."""
        started = time.perf_counter()
        if parsed is None:
            parsed = await parse_batch([item.data for item in batch])
        work = list(zip(batch, parsed, strict=True))
        try:
            results = await self._run(work)
        except StorageUnavailable as error:
            await self._fail_transient(batch, f"storage: {error}")
            raise
        except Exception as error:
            if is_unavailable(error):
                await self._fail_transient(batch, f"storage: {error}")
                raise StorageUnavailable(str(error)) from error
            if len(work) == 1:
                if isinstance(error, IntegrityError):
                    # A race the key lock should have prevented: try again later.
                    await self._fail_transient(batch, f"conflict: {error.orig}")
                    report.count("failed")
                    return
                await self._fail_permanent(work[0][0], error)
                report.count("failed")
                return
            log.warning("inbox.batch_retried_singly", size=len(work),
                        error=f"{type(error).__name__}: {error}")
            for claimed, mail in work:
                await self.process_batch([claimed], report, [mail])
            return
        elapsed_ms = (time.perf_counter() - started) * 1000 / max(len(results), 1)
        counts: dict[tuple[str, str], int] = {}
        for claimed, mail, completion in results:
            _log_processed(claimed, mail, completion, elapsed_ms)
            report.count(completion.state)
            labels = (claimed.envelope.source, completion.state)
            counts[labels] = counts.get(labels, 0) + 1
            PROCESSING_SECONDS.observe(elapsed_ms / 1000)
        for (source, state), count in counts.items():
            MESSAGES.labels(source=source, state=state).inc(count)

    async def _run(
        self, work: list[tuple[Claimed, ParsedMail | ParseError]]
    ) -> list[tuple[Claimed, ParsedMail | ParseError, Completion]]:
        rules = self.rules()
        async with (
            self.store.gate.processing(), storage_errors(), self.sessions.begin() as session
        ):
            ours = await self.store.renew(session, [c.id for c, _ in work], self.name,
                                          self.settings.lease)
            work = [(claimed, mail) for claimed, mail in work if claimed.id in ours]
            incoming = [Incoming(c.id, mail, c.envelope, c.received_at)
                        for c, mail in work if isinstance(mail, ParsedMail)]
            processed = {p.message_id: p for p in
                         await self.pipeline.process(session, incoming, rules)}
            results = [(claimed, mail, _completion_for(claimed, mail, processed))
                       for claimed, mail in work]
            await self.store.complete_many(session, [(c.id, done) for c, _, done in results])
        return results

    async def _fail_transient(self, batch: Sequence[Claimed], reason: str) -> None:
        failures: list[tuple[int, str, datetime | None]] = []
        for item in batch:
            retry_at: datetime | None = None
            text = reason
            if item.attempts < self.settings.max_attempts:
                delay = min(self.settings.retry_backoff * (2 ** (item.attempts - 1)),
                            self.settings.retry_backoff_max)
                retry_at = self.clock.now() + delay
            else:
                text = f"{reason} (gave up after {item.attempts} attempts; retry by hand)"
            failures.append((item.id, text, retry_at))
        try:
            await self.store.fail_many(failures, self.name)
        except StorageUnavailable:
            log.warning("inbox.failure_not_recorded", count=len(failures), reason=reason)

    async def _fail_permanent(self, item: Claimed, error: BaseException) -> None:
        reason = f"error: {type(error).__name__}: {error}"
        log.error("message.processed", message_id=item.id, source=item.envelope.source,
                  state="failed", reason=reason, exc_info=error)
        MESSAGES.labels(source=item.envelope.source, state="failed").inc()
        await self.store.fail_many([(item.id, reason, None)], self.name)


def _completion_for(
    claimed: Claimed, mail: ParsedMail | ParseError, processed: dict[int | None, Processed]
) -> Completion:
    if isinstance(mail, ParseError):
        return Completion(state="failed", action="none", reason=f"parse: {mail}")
    return processed[claimed.id].completion


def _log_processed(
    claimed: Claimed, mail: ParsedMail | ParseError, completion: Completion, elapsed_ms: float
) -> None:
    # The ids go in as fields, not bound context: the line is the same, without binding
    # and unbinding three context variables per message.
    log.info(
        "message.processed", message_id=claimed.id, source=claimed.envelope.source,
        mail_message_id=mail.message_id if isinstance(mail, ParsedMail) else None,
        state=completion.state, action=completion.action,
        sender_rule=completion.sender_rule, alert_type=completion.alert_type,
        ticket_id=completion.ticket_id, reason=completion.reason,
        duration_ms=round(elapsed_ms, 2),
    )


BUSY_WINDOW_S = 0.2
"""Mail stored this recently makes the worker take small batches (short turns at the database)."""
HOLD_CHECK_S = 0.05
"""How often a held worker looks whether the storm is over."""
SETTLE_S = 0.1
"""After new mail arrives, how long the worker waits to see whether a storm is starting."""


async def _wait(stopping: asyncio.Event, seconds: float, *also: asyncio.Event) -> None:
    """Sleep up to ``seconds``; wake early when ``stopping`` or any of ``also`` is set."""
    waits = [asyncio.ensure_future(event.wait()) for event in (stopping, *also)]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waits:
            waiter.cancel()


async def parse_batch(blobs: Sequence[bytes]) -> list[ParsedMail | ParseError]:
    """Parse a claimed batch on the event loop, yielding to it between mails.

    mail-parser is pure Python, so a thread buys no parallelism: it only
    makes the event loop and the database driver's thread queue for the GIL
    behind it (measured: slower than parsing here). Parsed here, a mail at a
    time, the work fills the loop's waits for the database instead. A mail
    bigger than `INLINE_PARSE_BYTES` still goes to a thread, so one huge
    message never stalls the sources.
    """
    out: list[ParsedMail | ParseError] = []
    budget = INLINE_PARSE_BYTES
    for blob in blobs:
        if len(blob) > INLINE_PARSE_BYTES:
            out.append(await asyncio.to_thread(_parse_one, blob))
            continue
        if len(blob) > budget:
            await asyncio.sleep(0)  # let sources and the database have the loop
            budget = INLINE_PARSE_BYTES
        budget -= len(blob)
        out.append(_parse_one(blob))
    return out


INLINE_PARSE_BYTES = 64 * 1024
"""Mail parsed on the event loop between two yields (about 15 ms of parsing at most)."""


def _parse_one(blob: bytes) -> ParsedMail | ParseError:
    try:
        return parse_mail(blob)
    except ParseError as error:
        return error
