"""Named exclusive leases: one instance at a time does a named job (one poller per mailbox, R6.4).

On PostgreSQL a lease is a session-level advisory lock, held on a
connection of its own (outside the pool, in autocommit so it never sits
"idle in transaction"): it lasts exactly as long as that connection, so an
instance that dies, or loses its database, lets go of its leases by itself
and a standby instance takes over at its next try. On SQLite one process is
the only writer, so a lease is always held.

A lease protects efficiency, not correctness: two pollers on one mailbox
for a moment (a lost connection noticed late) store nothing twice, because
the inbox is idempotent per mailbox UID.

::

    lease = lease_for(engine, "imap:alerts@imap.example.net/INBOX", retry=timedelta(seconds=15))
    if await lease.acquire(stopping):        # waits while another instance holds it
        try:
            ... while await lease.check(): work ...
        finally:
            await lease.release()
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from alertd.db.engine import is_sqlite, is_unavailable
from alertd.db.locks import name_hash
from alertd.logs import get_logger

log = get_logger(__name__)

CHECK_TIMEOUT_S = 10.0
"""A lease whose connection does not answer within this is treated as lost."""


class Lease(Protocol):
    """The right to do one named job, held by at most one instance."""

    name: str

    async def acquire(self, stopping: asyncio.Event) -> bool:
        """Wait until the lease is ours (True) or ``stopping`` is set (False)."""
        ...

    async def check(self) -> bool:
        """Whether the lease is still ours."""
        ...

    async def release(self) -> None:
        """Give the lease up (safe to call when not held)."""
        ...


def lease_for(engine: AsyncEngine, name: str, *, retry: timedelta) -> Lease:
    """The lease called ``name`` on this database; ``retry`` is how often a standby tries."""
    if is_sqlite(engine):
        return HeldLease(name)
    return AdvisoryLease(engine, name, retry=retry)


class HeldLease:
    """Always held: SQLite admits one writing process, so there is nobody to share with."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def acquire(self, stopping: asyncio.Event) -> bool:
        """Held at once, unless the daemon is already stopping."""
        return not stopping.is_set()

    async def check(self) -> bool:
        """Always ours."""
        return True

    async def release(self) -> None:
        """Nothing to give up."""


class AdvisoryLease:
    """A PostgreSQL session advisory lock on a connection of its own."""

    def __init__(self, engine: AsyncEngine, name: str, *, retry: timedelta) -> None:
        self.name = name
        self.key = name_hash(f"lease:{name}")
        self.retry = retry.total_seconds()
        self._engine = engine
        self._own_engine: AsyncEngine | None = None
        self._connection: AsyncConnection | None = None

    def _lease_engine(self) -> AsyncEngine:
        if self._own_engine is None:
            self._own_engine = create_async_engine(
                self._engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        return self._own_engine

    async def acquire(self, stopping: asyncio.Event) -> bool:
        """Try now, then every ``retry`` seconds, until held or stopping; logs waits once."""
        waiting_for: str | None = None
        while not stopping.is_set():
            try:
                if await self._try():
                    log.info("lease.acquired", lease=self.name,
                             **({"after": waiting_for} if waiting_for else {}))
                    return True
                reason = "held by another instance"
            except Exception as error:
                if not is_unavailable(error):
                    raise
                reason = "database unavailable"
                log.debug("lease.try_failed", lease=self.name, error=str(error))
            if reason != waiting_for:
                log.info("lease.waiting", lease=self.name, reason=reason, retry_s=self.retry)
                waiting_for = reason
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=self.retry)
        return False

    async def _try(self) -> bool:
        connection = await self._lease_engine().connect()
        try:
            result = await connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key})
            held = bool(result.scalar())
        except BaseException:
            await _close(connection)
            raise
        if not held:
            await _close(connection)
            return False
        self._connection = connection
        return True

    async def check(self) -> bool:
        """Whether our connection still answers: while it lives, nobody else can hold the lock."""
        connection = self._connection
        if connection is None:
            return False
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                await connection.execute(text("SELECT 1"))
        except Exception as error:
            if not is_unavailable(error) and not isinstance(error, TimeoutError):
                raise
            log.warning("lease.lost", lease=self.name, error=str(error))
            self._connection = None
            await _close(connection)
            return False
        return True

    async def release(self) -> None:
        """Unlock and close the connection (closing alone would unlock too)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CHECK_TIMEOUT_S):
                    await connection.execute(
                        text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            await _close(connection)
            log.info("lease.released", lease=self.name)
        if self._own_engine is not None:
            engine, self._own_engine = self._own_engine, None
            await engine.dispose()


async def _close(connection: AsyncConnection) -> None:
    """Close, and if even that fails, drop the connection (the server then frees its locks)."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await connection.close()
    except Exception:  # noqa: BLE001 - a broken connection is being thrown away either way
        with contextlib.suppress(Exception):
            await connection.invalidate()
