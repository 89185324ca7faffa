"""Storing mail on SQLite in one thread hop: the durable accept's fast path.

Through SQLAlchemy and aiosqlite a group commit takes half a dozen trips
between the event loop and the database thread (begin, insert, fetch,
commit, pool reset), each costing CPU on the loop that also runs every SMTP
session. Here the whole transaction (`BEGIN IMMEDIATE`, one multi-row
`INSERT ... ON CONFLICT DO NOTHING RETURNING`, `COMMIT` with
`synchronous=FULL`) is one call on a plain `sqlite3` connection in a thread
of its own: one hop per group. sqlite3 lets go of the interpreter while
SQLite works and while the commit writes and syncs, so the loop goes on
answering sessions on the other core meanwhile. (Committing on the loop and
only syncing in the thread measured slower: the loop then did SQLite's page
writes itself.) The connection waits out a busy database in that thread (WAL,
busy timeout, foreign keys), never on the loop. Values are written in the
forms SQLAlchemy reads back (UTC text timestamps, JSON text). Everything
else keeps using SQLAlchemy.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from alertd.errors import StorageUnavailable

COLUMNS = ("source", "mail_from", "rcpt_to", "peer", "mailbox", "uidvalidity", "uid",
           "message_id", "message_key", "content_hash", "size", "raw", "received_at", "state",
           "attempts")
RETURNED = ("id", "message_key", "content_hash", "mailbox", "uidvalidity", "uid")
_ROWS_PER_STATEMENT = 500  # 15 values a row, well under SQLite's variable limit


class SqliteInboxWriter:
    """Inserts inbox rows durably, one transaction per call; the waiting happens in a thread."""

    def __init__(self, path: str, busy_timeout_s: float, *, autocheckpoint: bool = True) -> None:
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        self.autocheckpoint = autocheckpoint
        self._executor = ThreadPoolExecutor(max_workers=1,
                                            thread_name_prefix="alertd-inbox-writer")
        self._connection: sqlite3.Connection | None = None

    async def insert(self, rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """Insert ``rows`` (skipping duplicates) and commit durably; `RETURNED` of new rows."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._insert, list(rows))

    async def existing(self, rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """Stored rows with the same content or mailbox UID as ``rows`` (`RETURNED` form)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._existing, list(rows))

    async def close(self) -> None:
        """Close the connection and stop the thread."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)

    # -- in the writer thread ----------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = self._open()
        return self._connection

    def _open(self) -> sqlite3.Connection:
        busy_timeout_s = self.busy_timeout_s
        try:
            connection = sqlite3.connect(self.path, timeout=busy_timeout_s,
                                         isolation_level=None, check_same_thread=False)
            # In the daemon this connection never copies the WAL back into the database
            # (a checkpoint's writes and fsync would stall every mail waiting for its
            # 250): the checkpoint component does that, outside any transaction.
            for pragma in ("journal_mode=WAL", "synchronous=FULL",
                           f"busy_timeout={int(busy_timeout_s * 1000)}",
                           "foreign_keys=ON",
                           f"wal_autocheckpoint={1000 if self.autocheckpoint else 0}"):
                connection.execute(f"PRAGMA {pragma}")
        except sqlite3.Error as error:
            raise StorageUnavailable(f"database unavailable: {error}") from error
        return connection

    def _insert(self, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        connection = self._connect()
        returned: list[tuple[Any, ...]] = []
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                for start in range(0, len(rows), _ROWS_PER_STATEMENT):
                    chunk = rows[start : start + _ROWS_PER_STATEMENT]
                    placeholders = ", ".join(
                        ["(" + ", ".join("?" * len(COLUMNS)) + ")"] * len(chunk))
                    values = _values(chunk)
                    returned += connection.execute(
                        f"INSERT INTO messages ({', '.join(COLUMNS)}) VALUES {placeholders} "  # noqa: S608 - fixed column names, values bound
                        f"ON CONFLICT DO NOTHING RETURNING {', '.join(RETURNED)}",
                        values,
                    ).fetchall()
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as error:
            raise StorageUnavailable(f"database unavailable: {error}") from error
        return returned

    def _existing(self, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        connection = self._connect()
        found: list[tuple[Any, ...]] = []
        columns = ", ".join(RETURNED)
        try:
            for row in rows:
                if row["message_key"] is not None:
                    found += connection.execute(
                        f"SELECT {columns} FROM messages "  # noqa: S608 - fixed column names
                        "WHERE message_key = ? AND content_hash = ?",
                        (row["message_key"], row["content_hash"])).fetchall()
                if row["uid"] is not None:
                    found += connection.execute(
                        f"SELECT {columns} FROM messages "  # noqa: S608 - fixed column names
                        "WHERE mailbox = ? AND uidvalidity = ? AND uid = ?",
                        (row["mailbox"], row["uidvalidity"], row["uid"])).fetchall()
        except sqlite3.OperationalError as error:
            raise StorageUnavailable(f"database unavailable: {error}") from error
        return found

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


_AS_IS = frozenset({str, int, bytes, type(None)})


def _values(rows: Sequence[dict[str, Any]]) -> list[Any]:
    """The `COLUMNS` of ``rows``, flat, in the forms SQLAlchemy stores (`_value`); plain
    values as they are, and each timestamp formatted once however many rows share it."""
    formatted: dict[Any, Any] = {}
    out: list[Any] = []
    for row in rows:
        for column in COLUMNS:
            value = row[column]
            if type(value) in _AS_IS:
                out.append(value)
            elif isinstance(value, datetime):
                text = formatted.get(value)
                if text is None:
                    text = formatted[value] = _value(value)
                out.append(text)
            else:
                out.append(_value(value))
    return out


def _value(value: Any) -> Any:
    """A Python value in the form SQLAlchemy stores it in SQLite."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, list | dict):
        return json.dumps(value)
    return value
