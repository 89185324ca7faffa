"""Building alertd's working parts from settings, once, for the CLI and the daemon.

Start-up order follows DESIGN §1.5: database engine and schema check (an
old schema is a configuration error unless SQLite upgrades itself), then
rules (every problem listed), then the services that use them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from alertd.assets.resolve import AssetResolver
from alertd.clock import Clock, SystemClock
from alertd.db.engine import create_engine, ensure_schema, is_sqlite, session_factory
from alertd.db.sqlite_writer import SqliteInboxWriter
from alertd.inbox.pipeline import Pipeline
from alertd.inbox.store import InboxStore
from alertd.inbox.worker import InboxWorker, worker_id
from alertd.outbox.plan import FinishPlan
from alertd.outbox.store import OutboxStore
from alertd.rules.holder import RulesHolder
from alertd.settings import Settings
from alertd.tickets.service import TicketService


@dataclass
class Runtime:
    """The engine and services every command and component works through."""

    settings: Settings
    clock: Clock
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    readers: async_sessionmaker[AsyncSession]
    """Read-only sessions: listing and showing, never a change (they take no write lock)."""
    store: InboxStore
    outbox: OutboxStore
    tickets: TicketService
    resolver: AssetResolver
    rules: RulesHolder | None

    def pipeline(self) -> Pipeline:
        """The message pipeline over these services."""
        return Pipeline(resolver=self.resolver, tickets=self.tickets,
                        future_skew=self.settings.rules.future_skew)

    def worker(self, index: int = 0) -> InboxWorker:
        """An inbox worker; needs rules."""
        holder = self.load_rules()
        return InboxWorker(
            store=self.store, sessions=self.sessions, rules=lambda: holder.current,
            pipeline=self.pipeline(), settings=self.settings.inbox, clock=self.clock,
            name=worker_id(index),
        )

    def load_rules(self) -> RulesHolder:
        """The rules, loaded on first use; RulesInvalid when they are broken."""
        if self.rules is None:
            self.rules = RulesHolder.load(self.settings.rules.dir)
        return self.rules

    @property
    def single_writer(self) -> bool:
        """Whether the database allows only one writing process (SQLite)."""
        return is_sqlite(self.engine)


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    with_rules: bool = True,
    clock: Clock | None = None,
    check_schema: bool = True,
    daemon: bool = False,
) -> AsyncIterator[Runtime]:
    """Open the database (checking its schema) and load rules; dispose on exit.

    ``daemon``: a long-running process, which checkpoints SQLite's WAL itself.
    """
    clock = clock or SystemClock()
    store: InboxStore | None = None
    engine = create_engine(settings.database.url,
                           pool_size=max(5, settings.inbox.workers + 4),
                           busy_timeout_s=settings.database.busy_timeout.total_seconds(),
                           wal_autocheckpoint=not daemon)
    try:
        if check_schema:
            await ensure_schema(engine, upgrade_itself=settings.database.upgrades_itself)
        holder = RulesHolder.load(settings.rules.dir) if with_rules else None
        sessions = session_factory(engine)
        writer = None
        if is_sqlite(engine) and engine.url.database not in (None, "", ":memory:"):
            writer = SqliteInboxWriter(str(engine.url.database),
                                       settings.database.busy_timeout.total_seconds(),
                                       autocheckpoint=not daemon)
        store = InboxStore(sessions, clock, exclusive_writes=is_sqlite(engine),
                           sqlite_writer=writer)
        finish = settings.automate.finish.scripts if settings.automate is not None else ()
        outbox = OutboxStore(sessions, clock, FinishPlan(finish),
                             exclusive_writes=is_sqlite(engine))
        yield Runtime(
            settings=settings,
            clock=clock,
            engine=engine,
            sessions=sessions,
            readers=session_factory(engine, read_only=True),
            store=store,
            outbox=outbox,
            tickets=TicketService(reopen_window=settings.rules.reopen_window, clock=clock,
                                  finisher=outbox if outbox.plan.enabled else None),
            resolver=AssetResolver(),
            rules=holder,
        )
    finally:
        if store is not None:
            await store.close()
        await engine.dispose()
