"""Named leases: one holder at a time on PostgreSQL, always held on SQLite (R6.4)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import text
from structlog.testing import capture_logs

from alertd.daemon.leases import AdvisoryLease, HeldLease, lease_for
from alertd.db.engine import create_engine
from tests.sources.conftest import wait_until

RETRY = timedelta(milliseconds=50)


async def test_sqlite_lease_is_always_held(sqlite_url: str) -> None:
    """On SQLite (one writing process) a lease is held at once, unless stopping is set."""
    engine = create_engine(sqlite_url)
    try:
        lease = lease_for(engine, "imap:x", retry=RETRY)
        assert isinstance(lease, HeldLease)
        assert await lease.acquire(asyncio.Event())
        assert await lease.check()
        stopping = asyncio.Event()
        stopping.set()
        assert not await lease.acquire(stopping)
        await lease.release()
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_advisory_lease_has_one_holder_and_passes_on(pg_url: str) -> None:
    """Two holders of one name: the second waits (saying so once) until the first releases,
    then takes over; a different name is independent."""
    engine = create_engine(pg_url)
    first = lease_for(engine, "imap:a", retry=RETRY)
    second = lease_for(engine, "imap:a", retry=RETRY)
    other = lease_for(engine, "imap:b", retry=RETRY)
    assert isinstance(first, AdvisoryLease)
    try:
        assert await first.acquire(asyncio.Event())
        assert await other.acquire(asyncio.Event())
        with capture_logs() as logs:
            waiting = asyncio.create_task(second.acquire(asyncio.Event()))
            await wait_until(lambda: any(entry["event"] == "lease.waiting" for entry in logs),
                             what="lease.waiting")
            await asyncio.sleep(0.2)  # a few more tries, none of them logged
            assert not waiting.done()
            await first.release()
            assert await asyncio.wait_for(waiting, 10)
        assert [entry["reason"] for entry in logs if entry["event"] == "lease.waiting"] == [
            "held by another instance"]
        assert await second.check()
        assert not await first.check()
    finally:
        for lease in (first, second, other):
            await lease.release()
        await engine.dispose()


@pytest.mark.postgres
async def test_advisory_lease_is_lost_with_its_connection(pg_url: str) -> None:
    """A lease whose database connection dies is reported lost (and freed for others)."""
    engine = create_engine(pg_url)
    lease = lease_for(engine, "imap:c", retry=RETRY)
    rival = lease_for(engine, "imap:c", retry=RETRY)
    try:
        assert await lease.acquire(asyncio.Event())
        assert isinstance(lease, AdvisoryLease)
        async with engine.connect() as connection:
            killed = await connection.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks "
                "WHERE locktype = 'advisory' AND objsubid = 1 "
                "AND classid::bigint = :high AND objid::bigint = :low "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"),
                {"high": (lease.key >> 32) & 0xFFFFFFFF, "low": lease.key & 0xFFFFFFFF})
            assert killed.scalars().all() == [True]
            await connection.commit()
        with capture_logs() as logs:
            assert not await lease.check()
        assert [entry["event"] for entry in logs] == ["lease.lost"]
        assert await asyncio.wait_for(rival.acquire(asyncio.Event()), 10)
    finally:
        await lease.release()
        await rival.release()
        await engine.dispose()
