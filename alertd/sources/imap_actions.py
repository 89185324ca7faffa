"""The server action for mail an IMAP drain has stored, run while the drain goes on.

Only after its inbox commit is a mail moved, flagged \\Seen or deleted. The
drain (`alertd.sources.imap`) hands each committed group to an
`ActionQueue`, which acts on it in commands of at most `ACTION_CHUNK` UIDs
while the next groups are fetched and stored; storing waits only when
`ACTION_BACKLOG` UIDs are queued. A long drain's UID MOVEs go over a
connection of their own (`open_own`), so the server moves while it also
serves the FETCHes; everything else runs on the drain's connection, between
its FETCHes.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from alertd.sources.imap_client import ACTION_CHUNK, ImapSession

ACTION_BACKLOG = 4 * ACTION_CHUNK
"""Most stored UIDs waiting for their server action before storing waits for the actions."""

Act = Callable[[ImapSession, list[int]], Awaitable[None]]
"""The configured server action for committed UIDs, over the session given."""
Opener = Callable[[], Awaitable[ImapSession | None]]
"""Opens a second connection with the folder selected; None when it cannot be had."""


class ActionQueue:
    """Committed UIDs waiting for their server action, and the task that acts on them."""

    def __init__(self, act: Act, session: ImapSession) -> None:
        self.act = act
        self.session = session
        """The drain's own connection: used unless one of its own is opened."""
        self.queued = 0
        """UIDs handed over so far (for the pass report)."""
        self.waiting: list[int] = []
        self.more = asyncio.Event()
        self.room = asyncio.Event()
        self.room.set()
        self.done = False
        self.closed = False
        """Set by `abandon`: a group committed after it is acted on by the next pass."""
        self.worker: asyncio.Task[None] | None = None
        self.opening: asyncio.Task[ImapSession | None] | None = None

    def open_own(self, opener: Opener) -> None:
        """Start opening a connection for the actions (used once it is ready)."""
        self.opening = asyncio.ensure_future(opener())

    async def submit(self, uids: Sequence[int]) -> None:
        """Queue ``uids`` (committed) to be acted upon; waits while `ACTION_BACKLOG` are queued."""
        if not uids or self.closed:
            return
        await self.room.wait()
        if self.closed:
            return
        self.waiting.extend(uids)
        self.queued += len(uids)
        if len(self.waiting) >= ACTION_BACKLOG:
            self.room.clear()
        self.more.set()
        if self.worker is None:
            self.worker = asyncio.ensure_future(self._work())
        elif self.worker.done():
            await self.worker  # raises the failure that ended it

    async def finish(self) -> None:
        """Wait until everything queued is done (a failure is raised here), then log out of
        the connection of its own."""
        self.done = True
        self.more.set()
        if self.worker is not None:
            await self.worker
        elif self.opening is not None and not self.opening.done():
            self.opening.cancel()  # nothing to act on: no reason to wait for a login
        if self.opening is not None:
            await asyncio.gather(self.opening, return_exceptions=True)
            own = self._opened()
            self.opening = None
            if own is not None:
                await own.logout()

    async def abandon(self) -> None:
        """On the way out after a failure: stop (the mail stays in the folder, already stored,
        and the next pass acts on it)."""
        self.closed = self.done = True
        tasks = [task for task in (self.worker, self.opening) if task is not None]
        for task in tasks:
            if not task.done():
                task.cancel()
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:  # even when cancelled again meanwhile: no socket outlives the pass
            own = self._opened()
            if own is not None:
                own.close()
            self.worker = self.opening = None

    async def _work(self) -> None:
        try:
            own = await self.opening if self.opening is not None else None
            await self._act_on(own or self.session)
        finally:
            self.room.set()  # a failure must not leave `submit` waiting for room

    async def _act_on(self, session: ImapSession) -> None:
        """Take chunks off the queue and act on them until the queue is closed and empty."""
        while True:
            if not self.waiting:
                if self.done:
                    return
                self.more.clear()
                await self.more.wait()
                continue
            chunk = self.waiting[:ACTION_CHUNK]
            del self.waiting[:len(chunk)]
            if len(self.waiting) < ACTION_BACKLOG:
                self.room.set()
            await self.act(session, chunk)

    def _opened(self) -> ImapSession | None:
        """The connection of its own, once opening it has finished well."""
        opening = self.opening
        if (opening is None or not opening.done() or opening.cancelled()
                or opening.exception() is not None):
            return None
        return opening.result()
