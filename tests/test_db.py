"""The database layer: outages classified as transient, readers that never block the writer."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from alertd.clock import SystemClock
from alertd.db.engine import create_engine, is_unavailable, session_factory
from alertd.domain import Envelope, RawMessage
from alertd.errors import StorageUnavailable
from alertd.inbox.store import InboxStore


@pytest.mark.postgres
async def test_postgresql_timeouts_and_cancellations_count_as_transient(pg_url: str) -> None:
    """A statement timeout (SQLSTATE 57014) is "try again later", not a broken message."""
    engine = create_engine(pg_url)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SET statement_timeout = 50"))
            with pytest.raises(Exception) as raised:
                await connection.execute(text("SELECT pg_sleep(2)"))
        assert is_unavailable(raised.value)
        async with engine.connect() as connection:
            with pytest.raises(Exception) as bad_sql:
                await connection.execute(text("SELECT no_such_column FROM messages"))
        assert not is_unavailable(bad_sql.value)
    finally:
        await engine.dispose()


async def test_a_reader_in_another_process_does_not_block_storing_mail(sqlite_url: str) -> None:
    """`alertd tickets list` style sessions take no write lock: mail is stored meanwhile."""
    engine = create_engine(sqlite_url, busy_timeout_s=0.5)
    other = create_engine(sqlite_url, busy_timeout_s=0.5)
    try:
        store = InboxStore(session_factory(engine), SystemClock(), exclusive_writes=True)
        async with session_factory(other, read_only=True)() as reader:
            await reader.execute(text("SELECT count(*) FROM messages"))
            accepted = await store.accept(RawMessage(
                Envelope(source="test"), b"Subject: x\r\n\r\ny\r\n", datetime.now(UTC)))
        assert accepted.id == 1
    finally:
        await engine.dispose()
        await other.dispose()


async def test_a_writer_in_another_process_makes_storing_fail_after_the_busy_timeout(
    sqlite_url: str,
) -> None:
    """A lock held elsewhere past the busy timeout is an outage (451 / exit 75), not a hang."""
    engine = create_engine(sqlite_url, busy_timeout_s=0.2)
    blocker = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        store = InboxStore(session_factory(engine), SystemClock(), exclusive_writes=True)
        with pytest.raises(StorageUnavailable):
            await asyncio.wait_for(store.accept(RawMessage(
                Envelope(source="test"), b"Subject: x\r\n\r\ny\r\n", datetime.now(UTC))), 30)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        await engine.dispose()
