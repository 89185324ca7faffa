"""Copying SQLite's write-ahead log back into the database, off the hot path.

In the daemon no connection checkpoints on commit (that would stall a mail
waiting for its 250, or hold up the turn of storing). This component runs a
PASSIVE checkpoint every few seconds from its own connection in a thread:
it waits for no reader or writer and never holds the write lock, so storing
goes on while it runs. On PostgreSQL it does nothing.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3

from alertd.logs import get_logger

log = get_logger(__name__)

INTERVAL_S = 2.0


class WalCheckpointer:
    """Runs `PRAGMA wal_checkpoint(PASSIVE)` every few seconds while there is work for it."""

    name = "sqlite-checkpoint"

    def __init__(self, path: str, *, interval_s: float = INTERVAL_S) -> None:
        self.path = path
        self.interval_s = interval_s
        self._last_size = -1

    async def run(self, stopping: asyncio.Event) -> None:
        """Checkpoint until stopping, then once more."""
        while not stopping.is_set():
            try:
                await asyncio.wait_for(stopping.wait(), timeout=self.interval_s)
            except TimeoutError:
                await self.checkpoint()
        await self.checkpoint()

    async def checkpoint(self) -> None:
        """One passive checkpoint, if the log has grown since the last one."""
        size = await asyncio.to_thread(self._wal_size)
        if size is None or size == self._last_size:
            return
        try:
            busy, frames, copied = await asyncio.to_thread(self._checkpoint)
        except sqlite3.Error as error:
            log.warning("sqlite.checkpoint_failed", error=str(error))
            return
        self._last_size = size
        log.debug("sqlite.checkpoint", wal_bytes=size, frames=frames, copied=copied, busy=busy)

    def _wal_size(self) -> int | None:
        try:
            return os.path.getsize(f"{self.path}-wal")
        except OSError:
            return None

    def _checkpoint(self) -> tuple[int, int, int]:
        connection = sqlite3.connect(self.path, timeout=1.0, isolation_level=None)
        try:
            row = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            connection.close()
        return int(row[0]), int(row[1]), int(row[2])
