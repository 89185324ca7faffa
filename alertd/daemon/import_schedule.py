"""The in-daemon Automate import (`automate.import.schedule`, SPEC R5.4) as a component.

`import_scheduler(runtime, client)` gives the supervisor an
`ImportScheduler` (name `automate-import`) when a schedule is set, else
None. It runs `import all` at once and then every interval, logs one report
line per run, and links unmatched tickets after each import (the importer
does that). It stops between two units of work when `stopping` is set and
returns only then.

Failures follow house rule 11: when Automate (or the database) becomes
unavailable it logs once, retries on a capped, jittered exponential
back-off (never longer than the interval), and logs once more when imports
work again; a configuration problem (password, MFA user, ClientId, an HTML
page) is logged as an error and retried only on a long back-off, so a
broken set-up never turns into a tight login loop.
"""

from __future__ import annotations

import asyncio
import random

from alertd.assets.importer import Importer
from alertd.automate.client import AutomateClient
from alertd.daemon.components import Component
from alertd.errors import AutomateMisconfigured, StorageUnavailable, TransientError
from alertd.logs import get_logger
from alertd.runtime import Runtime

log = get_logger(__name__)

RETRY_FIRST_S = 30.0
RETRY_MAX_S = 900.0
MISCONFIGURED_RETRY_S = 3600.0


class ImportScheduler:
    """Runs `import all` every ``interval`` seconds until the daemon stops."""

    name = "automate-import"

    def __init__(
        self,
        runtime: Runtime,
        client: AutomateClient,
        interval: float,
        *,
        retry_first: float = RETRY_FIRST_S,
        retry_max: float = RETRY_MAX_S,
        misconfigured_retry: float = MISCONFIGURED_RETRY_S,
    ) -> None:
        self.runtime = runtime
        self.client = client
        self.interval = interval
        self.retry_first = retry_first
        self.retry_max = retry_max
        self.misconfigured_retry = misconfigured_retry
        self.runs = 0
        """Imports finished (whatever their outcome), for health and tests."""
        self._jitter = random.Random()  # noqa: S311 - backoff jitter, not cryptography

    async def run(self, stopping: asyncio.Event) -> None:
        """Import now, then every interval; return once ``stopping`` is set."""
        failures = 0
        delay = 0.0
        while not await _stopped_within(stopping, delay):
            try:
                report = await Importer(self.runtime, self.client,
                                        should_stop=stopping.is_set).run("all")
            except AutomateMisconfigured as error:
                log.error("automate.import.misconfigured", error=str(error),  # noqa: TRY400 - expected, no traceback
                          retry_in=self.misconfigured_retry)
                delay = max(self.interval, self.misconfigured_retry)
                failures = 0
                self.runs += 1
                continue
            except (StorageUnavailable, TransientError) as error:
                failures += 1
                delay = self._backoff(failures)
                if failures == 1:
                    log.warning("automate.import.unavailable", error=str(error),
                                retry_in=round(delay, 1))
                self.runs += 1
                continue
            self.runs += 1
            if stopping.is_set():
                log.info("automate.import.interrupted", **report.summary())
                return
            if report.unavailable:
                failures += 1
                delay = self._backoff(failures)
                if failures == 1:
                    log.warning("automate.import.unavailable", error=report.error,
                                retry_in=round(delay, 1))
                continue
            if failures:
                log.info("automate.import.recovered", after_failures=failures)
            failures = 0
            delay = self.interval
            log.info("automate.import.report", next_in=self.interval, **report.summary())

    def _backoff(self, failures: int) -> float:
        base = min(self.retry_max, self.retry_first * float(2 ** (failures - 1)))
        return min(self.interval, base * (0.5 + self._jitter.random() / 2))


async def _stopped_within(stopping: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds``; whether ``stopping`` was set meanwhile."""
    if stopping.is_set():
        return True
    if seconds <= 0:
        return False
    try:
        await asyncio.wait_for(stopping.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


def import_scheduler(runtime: Runtime, client: AutomateClient) -> Component | None:
    """The scheduled import component, or None when `automate.import.schedule` is not set."""
    automate = runtime.settings.automate
    if automate is None or automate.import_.schedule_seconds is None:
        return None
    return ImportScheduler(runtime, client, automate.import_.schedule_seconds)
