"""`alertd run`: builds the components from settings and supervises them (SPEC R6.1, DESIGN §1.5).

Start-up fails fast with a clear exit status: settings and rules problems
exit 78, a database that cannot be reached 75, a port that cannot be bound
1. Then every component runs under `guard()` in one TaskGroup. Signals only
set events: SIGTERM/SIGINT start the drain (sources stop first, the batch in
hand finishes or rolls back, the HTTP endpoint goes last) under one
deadline; SIGHUP reloads the rules. The exit status is 0 after a clean
stop and 1 if any component failed or the deadline cut the drain short.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import socket
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

from alertd.automate.client import AutomateClient
from alertd.daemon.checkpoint import WalCheckpointer
from alertd.daemon.components import Component, ComponentStates, guard
from alertd.daemon.import_schedule import import_scheduler
from alertd.daemon.reloader import RulesReloader
from alertd.daemon.systemd import SystemdNotifier, Watchdog
from alertd.errors import EX_FAILURE, EX_OK, AlertdError
from alertd.logs import get_logger
from alertd.outbox.worker import OutboxWorker
from alertd.runtime import Runtime, open_runtime
from alertd.settings import Settings
from alertd.sources.automate_tickets import automate_ticket_poller
from alertd.sources.imap import imap_components
from alertd.sources.smtp import SmtpListener, smtp_components
from alertd.tickets.links import Links
from alertd.web.app import Health, create_app
from alertd.web.auth import load_token
from alertd.web.common import Api
from alertd.web.server import WebServer

log = get_logger(__name__)


class CannotListen(AlertdError):
    """A listening port could not be bound (taken, or not allowed)."""


class Supervisor:
    """Owns the components, the stop and reload events, and the drain deadline."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.notifier = SystemdNotifier.from_environment()
        self.stopping = asyncio.Event()
        self.reload_requested = asyncio.Event()
        self.web_stopping = asyncio.Event()
        self.states = ComponentStates()
        self.ready = False
        self._deadline: asyncio.Timeout | None = None

    async def run(self) -> int:
        """Start everything, run until stopped, drain; returns the exit status."""
        async with AsyncExitStack() as stack:
            runtime = await stack.enter_async_context(open_runtime(self.settings, daemon=True))
            holder = runtime.load_rules()
            recovered = await runtime.store.recover_abandoned(
                socket.gethostname(), max_attempts=self.settings.inbox.max_attempts)
            if recovered:
                log.info("inbox.recovered", count=recovered,
                         reason="left in processing by a process that is gone")
            listeners = smtp_components(self.settings.smtp, runtime.store)
            for listener in listeners:
                try:
                    await listener.start()
                except OSError as error:
                    raise CannotListen(
                        f"{listener.name}: cannot listen on {listener.settings.listen}: "
                        f"{error.strerror or error}") from error
            reloader = RulesReloader(holder, self.reload_requested, self.notifier)
            components: list[Component] = [
                *listeners, *imap_components(runtime), *self._workers(runtime), reloader,
                Watchdog(self.notifier)]
            if runtime.store.sqlite_writer is not None:
                components.append(WalCheckpointer(runtime.store.sqlite_writer.path))
            if self.settings.automate is not None:
                client = await stack.enter_async_context(AutomateClient(self.settings.automate))
                scheduler = import_scheduler(runtime, client)
                if scheduler is not None:
                    components.append(scheduler)
                components.append(OutboxWorker(
                    store=runtime.outbox, client=client, settings=self.settings.automate.finish,
                    clock=runtime.clock))
                poller = automate_ticket_poller(runtime, client)
                if poller is not None:
                    components.append(poller)
            web = self._web(runtime, reloader)
            if web is not None:
                try:
                    web.start()
                except OSError as error:
                    raise CannotListen(f"http: cannot listen on {web.host}:{web.port}: "
                                       f"{error.strerror or error}") from error
                stack.callback(web.close)
            self._install_signals()
            stack.callback(self._remove_signals)
            drained = await self._supervise(components, web, listeners, runtime)
            log.info("daemon.stopped", clean=drained and not self.states.failed,
                     failed=self.states.failed)
        return EX_OK if drained and not self.states.failed else EX_FAILURE

    def _workers(self, runtime: Runtime) -> list[Component]:
        count = 1 if runtime.single_writer else self.settings.inbox.workers
        workers: list[Component] = []
        for index in range(count):
            worker = runtime.worker(index)
            workers.append(_WorkerComponent(f"inbox-worker-{index}", worker.run))
        return workers

    def _web(self, runtime: Runtime, reloader: RulesReloader) -> WebServer | None:
        if self.settings.http is None:
            return None
        holder = runtime.load_rules()
        api = Api(runtime=runtime, links=Links.from_settings(self.settings),
                  token=load_token(self.settings.http))
        app = create_app(Health(
            ready=lambda: self.ready and not self.stopping.is_set(),
            rules_version=lambda: holder.current.version,
            components=lambda: dict(self.states.states),
            last_reload_ok=lambda: reloader.state.last_ok,
        ), api)
        return WebServer(app, self.settings.http.listen)

    async def _supervise(
        self, components: list[Component], web: WebServer | None,
        listeners: list[SmtpListener], runtime: Runtime,
    ) -> bool:
        cut_short = False
        try:
            async with asyncio.timeout(None) as deadline:
                self._deadline = deadline
                async with asyncio.TaskGroup() as outer:
                    if web is not None:
                        outer.create_task(guard(web, self.web_stopping, self.states,
                                                failing=self.stopping), name=web.name)
                    async with asyncio.TaskGroup() as group:
                        for component in components:
                            group.create_task(guard(component, self.stopping, self.states),
                                              name=component.name)
                        await asyncio.sleep(0)
                        # Start-up objects (modules, rules, mappers) never die: keep them out
                        # of the collector's way, so full collections stay short.
                        gc.freeze()
                        self.ready = True
                        self.notifier.notify("READY=1", "STATUS=accepting mail")
                        log.info("daemon.ready", rules_version=runtime.load_rules().current.version,
                                 listeners={item.name: item.port for item in listeners},
                                 database=runtime.engine.dialect.name,
                                 components=[c.name for c in components])
                    self.web_stopping.set()
        except TimeoutError:
            cut_short = True
        if cut_short:
            log.error("daemon.drain_deadline_passed",
                      grace_s=self.settings.shutdown_grace.total_seconds(),
                      states=self.states.states)
        return not cut_short

    # -- signals -----------------------------------------------------------------

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, self.stop, "SIGINT")
        loop.add_signal_handler(signal.SIGHUP, self.reload_requested.set)

    def _remove_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)

    def stop(self, why: str = "requested") -> None:
        """Begin the drain: sources stop, work in hand finishes, within the grace period."""
        if self.stopping.is_set():
            return
        log.info("daemon.stopping", signal=why,
                 grace_s=self.settings.shutdown_grace.total_seconds())
        self.notifier.notify("STOPPING=1")
        self.stopping.set()
        if self._deadline is not None:
            loop = asyncio.get_running_loop()
            self._deadline.reschedule(loop.time() + self.settings.shutdown_grace.total_seconds())


class _WorkerComponent:
    """An inbox worker under its component name."""

    def __init__(self, name: str, run: Callable[[asyncio.Event], Awaitable[None]]) -> None:
        self.name = name
        self._run = run

    async def run(self, stopping: asyncio.Event) -> None:
        """Work the inbox until stopping."""
        await self._run(stopping)


async def run_daemon(settings: Settings) -> int:
    """Run the daemon on ``settings`` until it is stopped; returns the exit status."""
    return await Supervisor(settings).run()
