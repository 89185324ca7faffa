"""Taking turns at the database inside one process: storing mail before processing it.

SQLite admits one writer at a time, and a writer that finds the database
busy sleeps in growing steps (its busy handler), so an SMTP session could
wait tens of milliseconds behind a worker's batch. Within one process the
turns are therefore given out here, in asyncio, with storing first: a worker
waits while mail is waiting to be stored, and works in small batches while
sources are busy (DESIGN §1.5, "accept first"). On PostgreSQL writers do not
block each other, so the gate only keeps the "busy" signal.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

RATE_WINDOW_S = 0.25
MAX_WAIT_S = 0.25
"""A worker waits at most this long for a quiet moment, so processing never starves."""


class WriteGate:
    """One writer at a time (when ``exclusive``), and storing goes first."""

    def __init__(self, *, exclusive: bool) -> None:
        self.exclusive = exclusive
        self._condition = asyncio.Condition()
        self._writing = False
        self._storers_waiting = 0
        self._last_store = 0.0
        self._stored: deque[tuple[float, int]] = deque()

    def recently_busy(self, within_s: float = 1.0) -> bool:
        """Whether mail was stored in the last ``within_s`` seconds."""
        return time.monotonic() - self._last_store < within_s

    def incoming_rate(self) -> float:
        """Mails stored per second over the last quarter of a second."""
        cutoff = time.monotonic() - RATE_WINDOW_S
        while self._stored and self._stored[0][0] < cutoff:
            self._stored.popleft()
        return sum(count for _, count in self._stored) / RATE_WINDOW_S

    @asynccontextmanager
    async def storing(self, count: int = 1) -> AsyncIterator[None]:
        """Hold the gate to store ``count`` mails; storers are served before processing."""
        self._last_store = time.monotonic()
        self._stored.append((self._last_store, count))
        if not self.exclusive:
            yield
            return
        async with self._condition:
            self._storers_waiting += 1
            try:
                await self._condition.wait_for(lambda: not self._writing)
            finally:
                self._storers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            await self._release()

    @asynccontextmanager
    async def processing(self) -> AsyncIterator[None]:
        """Hold the gate to process; waits (a bounded time) while mail is waiting to be stored."""
        if not self.exclusive:
            yield
            return
        async with self._condition:
            try:
                await asyncio.wait_for(
                    self._condition.wait_for(
                        lambda: not self._writing and self._storers_waiting == 0),
                    timeout=MAX_WAIT_S,
                )
            except TimeoutError:
                await self._condition.wait_for(lambda: not self._writing)
            self._writing = True
        try:
            yield
        finally:
            await self._release()

    async def _release(self) -> None:
        async with self._condition:
            self._writing = False
            self._condition.notify_all()
