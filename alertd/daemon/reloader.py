"""SIGHUP reloads the rules: the new set replaces the old whole, or not at all (SPEC R3.6)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from alertd.daemon.systemd import SystemdNotifier
from alertd.errors import RulesInvalid
from alertd.logs import get_logger
from alertd.metrics import RULE_RELOADS, RULES_LAST_RELOAD_SUCCESS
from alertd.rules.holder import RulesHolder

log = get_logger(__name__)


@dataclass
class ReloadState:
    """The outcome of the last reload, for /healthz."""

    last_ok: bool = True
    problems: int = 0


class RulesReloader:
    """Waits for the reload request (SIGHUP), loads the rules in a thread, swaps or refuses."""

    name = "rules-reloader"

    def __init__(self, holder: RulesHolder, requested: asyncio.Event,
                 notifier: SystemdNotifier) -> None:
        self.holder = holder
        self.requested = requested
        self.notifier = notifier
        self.state = ReloadState()
        # The rules in hand loaded at start-up; show both results from zero.
        RULES_LAST_RELOAD_SUCCESS.set(1)
        for result in ("success", "failure"):
            RULE_RELOADS.labels(result=result)

    async def run(self, stopping: asyncio.Event) -> None:
        """Reload each time it is asked to, until stopping."""
        while not stopping.is_set():
            waiters = [asyncio.ensure_future(self.requested.wait()),
                       asyncio.ensure_future(stopping.wait())]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
            if stopping.is_set():
                return
            self.requested.clear()
            await self.reload()

    async def reload(self) -> None:
        """Load the rules directory again; keep the old set if the new one is broken."""
        self.notifier.reloading()
        old = self.holder.current
        refused: RulesInvalid | None = None
        try:
            fresh = await asyncio.to_thread(self.holder.reload)
        except RulesInvalid as error:
            refused = error
        finally:
            self.notifier.notify("READY=1")
        if refused is not None:
            self.state = ReloadState(last_ok=False, problems=len(refused.problems))
            RULE_RELOADS.labels(result="failure").inc()
            RULES_LAST_RELOAD_SUCCESS.set(0)
            for problem in refused.problems:
                log.error("rules.problem", problem=problem.render())
            log.error("rules.reload_refused", problems=len(refused.problems),
                      kept_version=old.version)
            return
        self.state = ReloadState()
        RULE_RELOADS.labels(result="success").inc()
        RULES_LAST_RELOAD_SUCCESS.set(1)
        log.info("rules.reloaded", version=fresh.version, previous=old.version,
                 senders=len(fresh.senders), alert_types=len(fresh.alert_types),
                 ticket_types=len(fresh.ticket_types))
