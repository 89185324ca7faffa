"""The outbox worker: launches Ticket Finish scripts through Automate, once each (R5.5).

For each due entry:

- `pending`: find the script id (by name through `GET /Scripts` when only
  a name is configured), note the target computer's newest ScriptHistory
  id, mark the entry `sending` (committed), then launch. Automate
  answering 429/5xx or being unreachable means nothing was launched: the
  entry waits with capped exponential backoff (Retry-After honoured). A
  refusal (4xx, `ContainsUnsuccessfulResults`) fails the entry and shows
  on the ticket. An answer lost after sending makes it `verifying`.
- `verifying`: look for the run in the computer's ScriptHistory (rows after
  the noted id, same script); found means launched; not found after
  `verify_checks` looks, or no computer to look at, hands the entry to an
  admin (`unconfirmed`; `alertd outbox retry|cancel`). It is never
  launched again on a guess.
- `following`: wait for the run's Completed row and put its outcome on
  the ticket, or give up waiting after `follow_up_for`.

Configuration trouble (a wrong password, a bad URL) leaves entries
pending on the longest backoff: nothing is lost while an admin fixes it.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from alertd.automate.client import AutomateClient
from alertd.automate.models import Bad
from alertd.automate.scripts import HistoryEntry, Script, ScriptLaunch
from alertd.clock import Clock
from alertd.errors import (
    AutomateAnswerLost,
    AutomateError,
    AutomateMisconfigured,
    AutomateRejected,
    AutomateUnavailable,
    StorageUnavailable,
)
from alertd.inbox.worker import worker_id
from alertd.logs import get_logger
from alertd.outbox.store import OutboxItem, OutboxStore
from alertd.settings import AutomateFinishSettings

log = get_logger(__name__)

CLAIM_LIMIT = 16
SCRIPT_NAMES_TTL = timedelta(minutes=10)


class _Refused(Exception):
    """The entry cannot be launched as configured (no such script, ambiguous name)."""


@dataclass
class OutboxReport:
    """What one drain did, by what happened to each entry."""

    handled: int = 0
    by_result: dict[str, int] = field(default_factory=dict)

    def count(self, result: str) -> None:
        """Count one entry."""
        self.handled += 1
        self.by_result[result] = self.by_result.get(result, 0) + 1


class OutboxWorker:
    """Works the outbox until stopped: woken by new entries, else every poll interval."""

    name = "outbox-worker"

    def __init__(self, *, store: OutboxStore, client: AutomateClient,
                 settings: AutomateFinishSettings, clock: Clock,
                 worker: str | None = None) -> None:
        self.store = store
        self.client = client
        self.settings = settings
        self.clock = clock
        self.worker = worker or worker_id(99)
        self._script_ids: dict[str, tuple[int, datetime]] = {}
        self._jitter = random.Random()  # noqa: S311 - backoff jitter, not cryptography

    async def run(self, stopping: asyncio.Event) -> None:
        """Drain, then wait for new entries or the poll interval, until ``stopping``."""
        poll = self.settings.poll_interval.total_seconds()
        while not stopping.is_set():
            self.store.arrived.clear()
            try:
                await self.drain(stopping)
            except StorageUnavailable as error:
                log.warning("outbox.storage_unavailable", error=str(error))
            waiters = [asyncio.ensure_future(stopping.wait()),
                       asyncio.ensure_future(self.store.arrived.wait())]
            try:
                await asyncio.wait(waiters, timeout=poll, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()

    async def drain(self, stopping: asyncio.Event | None = None) -> OutboxReport:
        """Handle every entry due now; stops between batches once ``stopping`` is set."""
        report = OutboxReport()
        while stopping is None or not stopping.is_set():
            items = await self.store.claim(self.worker, limit=CLAIM_LIMIT,
                                           lease=self.settings.lease)
            if not items:
                break
            results = await asyncio.gather(*(self._handle(item) for item in items))
            for result in results:
                report.count(result)
        return report

    async def _handle(self, item: OutboxItem) -> str:
        with structlog.contextvars.bound_contextvars(
            outbox_id=item.id, ticket_id=item.ticket_id, script=item.label,
        ):
            if item.state == "verifying":
                return await self._verify(item)
            if item.state == "following":
                return await self._follow(item)
            return await self._launch(item)

    # -- launching ---------------------------------------------------------------------

    async def _launch(self, item: OutboxItem) -> str:
        try:
            script_id = item.script_id or await self._script_id(item)
            history_after = (await self.client.latest_history_id(item.computer_id)
                             if item.computer_id is not None else None)
        except _Refused as refused:
            await self.store.failed(item, self.worker, reason=str(refused))
            log.error("outbox.failed", reason=str(refused))  # noqa: TRY400 - expected, no traceback
            return "failed"
        except AutomateError as error:
            return await self._not_launched(item, error)
        item = await self.store.mark_sending(item, self.worker, script_id=script_id,
                                             history_after=history_after)
        launch = ScriptLaunch(script_id=script_id, entity_type=item.entity_type,
                              entity_id=item.entity_id, parameters=item.parameters)
        try:
            result = await self.client.run_script(launch, reference=item.reference)
        except AutomateAnswerLost as lost:
            await self.store.answer_lost(item, self.worker, error=str(lost),
                                         verify_every=self.settings.verify_interval)
            log.warning("outbox.answer_lost", error=str(lost),
                        action="checking ScriptHistory before anything else")
            return "answer_lost"
        except AutomateRejected as rejected:
            await self.store.failed(item, self.worker, reason=str(rejected))
            log.error("outbox.failed", reason=str(rejected))  # noqa: TRY400 - expected, no traceback
            return "failed"
        except AutomateError as error:
            return await self._not_launched(item, error)
        if not result.accepted:
            reason = "Automate did not run it: " + ("; ".join(result.messages)
                                                    or "ContainsUnsuccessfulResults")
            await self.store.failed(item, self.worker, reason=reason, result=result.raw)
            log.error("outbox.failed", reason=reason)
            return "failed"
        follow = item.follow_up and item.computer_id is not None
        await self.store.launched(
            item, self.worker, result=result.raw, follow=follow,
            follow_every=self.settings.follow_up_interval,
            detail=f"{item.label} (script {script_id}) launched on {item.entity_type} "
                   f"{item.entity_id}",
        )
        log.info("outbox.launched", script_id=script_id, entity_type=item.entity_type,
                 entity_id=item.entity_id, reference=item.reference)
        return "launched"

    async def _not_launched(self, item: OutboxItem, error: AutomateError) -> str:
        """Automate did not take it (down, busy, misconfigured): wait and try again."""
        if isinstance(error, AutomateRejected):
            await self.store.failed(item, self.worker, reason=str(error))
            log.error("outbox.failed", reason=str(error))
            return "failed"
        if isinstance(error, AutomateMisconfigured):
            delay = self.settings.retry_backoff_max
        else:
            delay = self._backoff(item.attempts, error.retry_after
                                  if isinstance(error, AutomateUnavailable) else None)
        await self.store.retry_later(item, self.worker, error=str(error), delay=delay)
        log.warning("outbox.retry_later", error=str(error), attempts=item.attempts + 1,
                    delay_s=round(delay.total_seconds(), 3))
        return "retry_later"

    def _backoff(self, attempts: int, retry_after: float | None) -> timedelta:
        cap = self.settings.retry_backoff_max.total_seconds()
        if retry_after is not None:
            return timedelta(seconds=min(max(retry_after, 0.0), cap))
        base = self.settings.retry_backoff.total_seconds() * float(2 ** min(attempts, 30))
        return timedelta(seconds=min(cap, base) * (0.5 + self._jitter.random() / 2))

    async def _script_id(self, item: OutboxItem) -> int:
        name = item.script_name or ""
        key = name.casefold()
        now = self.clock.now()
        cached = self._script_ids.get(key)
        if cached is not None and now - cached[1] < SCRIPT_NAMES_TTL:
            return cached[0]
        found = [s for s in await self.client.scripts(name_like=name)
                 if isinstance(s, Script) and s.name.casefold() == key]
        if not found:
            raise _Refused(f"Automate has no script named {name!r} "
                           "(`alertd automate scripts` lists them)")
        if len(found) > 1:
            ids = ", ".join(str(s.id) for s in found)
            raise _Refused(f"{len(found)} scripts are named {name!r} (ids {ids}): configure "
                           "the script by id")
        self._script_ids[key] = (found[0].id, now)
        return found[0].id

    # -- verifying and following ----------------------------------------------------------

    async def _runs(self, item: OutboxItem) -> list[HistoryEntry]:
        assert item.computer_id is not None
        assert item.script_id is not None
        rows = await self.client.script_history(item.computer_id, script_id=item.script_id,
                                                after_id=item.history_after or 0)
        return [row for row in rows if not isinstance(row, Bad)]

    async def _verify(self, item: OutboxItem) -> str:
        if item.computer_id is None or item.script_id is None or item.history_after is None:
            await self.store.unconfirmed(
                item, self.worker,
                reason="the launch's answer was lost and there is no computer whose "
                       "ScriptHistory could confirm it: check Automate, then `alertd outbox "
                       f"retry {item.id}` to launch it again or `alertd outbox cancel {item.id}`")
            return "unconfirmed"
        try:
            runs = await self._runs(item)
        except AutomateError as error:
            await self.store.check_again(item, self.worker, delay=self.settings.verify_interval,
                                         note=f"verifying: {error}")
            return "check_again"
        if runs:
            follow = item.follow_up
            await self.store.launched(
                item, self.worker, result=None, follow=follow,
                follow_every=self.settings.follow_up_interval, kind="finish_launched",
                detail=f"{item.label} (script {item.script_id}) launched on {item.entity_type} "
                       f"{item.entity_id}: the answer was lost, ScriptHistory confirms the run",
            )
            if follow:
                return "launched"
            return "verified"
        if item.checks + 1 >= self.settings.verify_checks:
            await self.store.unconfirmed(
                item, self.worker,
                reason=f"the launch's answer was lost and computer {item.computer_id}'s "
                       f"ScriptHistory shows no run after {item.checks + 1} looks: check "
                       f"Automate, then `alertd outbox retry {item.id}` or "
                       f"`alertd outbox cancel {item.id}`")
            log.error("outbox.unconfirmed", computer_id=item.computer_id)
            return "unconfirmed"
        await self.store.check_again(item, self.worker, delay=self.settings.verify_interval)
        return "check_again"

    async def _follow(self, item: OutboxItem) -> str:
        if item.computer_id is None or item.script_id is None:
            await self.store.finished(item, self.worker, outcome="outcome unknown: no computer")
            return "followed"
        try:
            runs = await self._runs(item)
        except AutomateError as error:
            runs = []
            log.warning("outbox.follow_up_failed", error=str(error))
        done = next((run for run in runs if run.completed), None)
        if done is not None:
            outcome = done.state or "Completed"
            if done.message:
                outcome += f": {done.message}"
            await self.store.finished(item, self.worker, outcome=outcome)
            return "followed"
        sent = item.sent_at or self.clock.now()
        if self.clock.now() - sent >= self.settings.follow_up_for:
            minutes = int(self.settings.follow_up_for.total_seconds() // 60)
            await self.store.finished(
                item, self.worker,
                outcome=f"no completed run in ScriptHistory within {minutes} min")
            return "followed"
        await self.store.check_again(item, self.worker,
                                     delay=self.settings.follow_up_interval)
        return "check_again"
