"""Fixtures for the IMAP source: a real Dovecot, fresh accounts, settings, a running poller.

The session's Dovecot (`dovecot`) serves every test with a fresh account of
its own, so tests never see each other's mail. Tests that stop the server
use `own_dovecot`, which belongs to that test alone. `imap` is a plain
aioimaplib client for the test's side of the conversation (appending mail,
looking at folders and flags), never a stand-in for alertd's code.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import aioimaplib
import pytest

from alertd.runtime import Runtime, open_runtime
from alertd.settings import ImapMailboxSettings, Settings, bundled_rules_dir
from alertd.sources.imap import ImapPoller
from alertd.sources.imap_client import folder_argument
from tests.sources.dovecot import Dovecot, MailUser

WAIT_S = 30.0
"""Upper bound of every wait for the poller; tests pass long before (no timing assertions)."""


def start_dovecot(**options: Any) -> Dovecot:
    """A started Dovecot of our own, or a skip saying how to install it."""
    if shutil.which("dovecot") is None or shutil.which("openssl") is None:
        pytest.skip("dovecot or openssl is not installed: run scripts/install-test-services")
    server = Dovecot(**options)
    server.start()
    return server


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """One Dovecot for the whole session (plain and TLS listeners on loopback)."""
    server = start_dovecot()
    yield server
    server.close()


@pytest.fixture
async def sqlite_runtime(sqlite_url: str) -> AsyncIterator[Runtime]:
    """alertd's services on a SQLite file only, for IMAP behaviour the database does not
    change (the storage paths run on both databases in the other tests)."""
    settings = Settings.model_validate({
        "database": {"url": sqlite_url}, "rules": {"dir": bundled_rules_dir()},
    })
    async with open_runtime(settings) as opened:
        yield opened
    leftovers = [task for task in asyncio.all_tasks()
                 if task is not asyncio.current_task() and not task.done()]
    assert not leftovers, f"tasks left behind: {leftovers}"


@pytest.fixture
def own_dovecot() -> Iterator[Dovecot]:
    """A Dovecot of this test's own, which it may stop and start."""
    server = start_dovecot()
    yield server
    server.close()


@pytest.fixture
def mail_user(dovecot: Dovecot) -> MailUser:
    """A fresh account with an empty INBOX on the session's Dovecot."""
    return dovecot.add_user()


MailboxFactory = Callable[..., ImapMailboxSettings]


def mailbox_settings(server: Dovecot, user: MailUser, tmp_path: Path,
                     **overrides: Any) -> ImapMailboxSettings:
    """Settings for ``user``'s mailbox over TLS, with short waits fit for tests."""
    password_file = tmp_path / f"{user.name}.password"
    if not password_file.exists():
        password_file.write_text(user.password + "\n")
    security = overrides.get("security", "tls")
    values: dict[str, Any] = {
        "name": "alerts",
        "host": "127.0.0.1",
        "port": server.tls_port if security == "tls" else server.plain_port,
        "security": "tls",
        "ca_file": server.cert,
        "user": user.name,
        "password_file": password_file,
        "poll_interval": timedelta(milliseconds=100),
        "reconnect_backoff": timedelta(milliseconds=50),
        "reconnect_backoff_max": timedelta(milliseconds=400),
        "login_backoff": timedelta(milliseconds=300),
        "standby_retry": timedelta(milliseconds=100),
        "timeout": timedelta(seconds=10),
    }
    values.update(overrides)
    return ImapMailboxSettings.model_validate(values)


@pytest.fixture
def make_mailbox(dovecot: Dovecot, mail_user: MailUser, tmp_path: Path) -> MailboxFactory:
    """Settings for this test's account; keyword arguments override."""

    def make(**overrides: Any) -> ImapMailboxSettings:
        return mailbox_settings(dovecot, mail_user, tmp_path, **overrides)

    return make


_TRUTHY = object()


async def wait_until(predicate: Callable[[], Any], *, equals: Any = _TRUTHY,
                     within: float = WAIT_S, step: float = 0.02,
                     what: str = "condition") -> Any:
    """Poll ``predicate`` (sync or async) until it is truthy, or equal to ``equals``;
    fail after ``within`` seconds (a bound on waiting, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    value: Any = None
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if (value == equals) if equals is not _TRUTHY else bool(value):
            return value
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting for {what} (last value: {value!r})")
        await asyncio.sleep(step)


class RunningPoller:
    """A poller running as a task, and the event that stops it."""

    def __init__(self, poller: ImapPoller, stopping: asyncio.Event,
                 task: asyncio.Task[None]) -> None:
        self.poller = poller
        self.stopping = stopping
        self.task = task

    async def stop(self) -> None:
        """Set `stopping` and wait for the poller to log out and return."""
        self.stopping.set()
        async with asyncio.timeout(WAIT_S):
            await self.task


@asynccontextmanager
async def running(runtime: Runtime, mailbox: ImapMailboxSettings,
                  **kwargs: Any) -> AsyncIterator[RunningPoller]:
    """Run an ImapPoller for ``mailbox`` until the block ends (then stop it cleanly)."""
    poller = ImapPoller(runtime, mailbox, **kwargs)
    stopping = asyncio.Event()
    task = asyncio.create_task(poller.run(stopping), name=poller.name)
    handle = RunningPoller(poller, stopping, task)
    try:
        yield handle
    finally:
        if not task.done():
            await handle.stop()
        else:
            await task


class MailClient:
    """The test's own IMAP client: appends mail and looks at folders, through aioimaplib."""

    def __init__(self, client: aioimaplib.IMAP4) -> None:
        self.client = client

    @classmethod
    async def login(cls, server: Dovecot, user: MailUser) -> MailClient:
        """Log in over the plain listener (loopback)."""
        client = aioimaplib.IMAP4(host="127.0.0.1", port=server.plain_port, timeout=30)
        await client.wait_hello_from_server()
        response = await client.login(user.name, user.password)
        if response.result != "OK":
            client.protocol.transport.close()
            raise AssertionError(f"test login refused: {response}")
        return cls(client)

    async def append(self, mails: list[bytes], folder: str = "INBOX") -> None:
        """APPEND each mail to ``folder``."""
        for data in mails:
            response = await self.client.append(data, mailbox=folder_argument(folder))
            assert response.result == "OK", response

    async def count(self, folder: str) -> int:
        """Messages in ``folder`` (0 when it does not exist)."""
        response = await self.client.status(folder_argument(folder), "(MESSAGES)")
        if response.result != "OK":
            return 0
        match = re.search(rb"MESSAGES (\d+)", b" ".join(
            line for line in response.lines if isinstance(line, bytes)))
        return int(match.group(1)) if match else 0

    async def flags(self, folder: str) -> list[str]:
        """The FLAGS of every message in ``folder``, in order."""
        response = await self.client.select(folder_argument(folder))
        assert response.result == "OK", response
        response = await self.client.fetch("1:*", "(FLAGS)")
        out = [line.decode() for line in response.lines
               if isinstance(line, bytes) and b"FETCH" in line]
        await self.client.close()
        return out

    async def bodies(self, folder: str) -> list[bytes]:
        """The raw mails in ``folder`` (peeked, so flags are unchanged)."""
        response = await self.client.select(folder_argument(folder))
        assert response.result == "OK", response
        response = await self.client.fetch("1:*", "(BODY.PEEK[])")
        out = [bytes(line) for line in response.lines if isinstance(line, bytearray)]
        await self.client.close()
        return out

    async def exists(self, folder: str) -> bool:
        """Whether ``folder`` exists."""
        response = await self.client.list('""', folder_argument(folder))
        return any(isinstance(line, bytes) and line.startswith(b"(")
                   for line in response.lines[:-1])

    async def create(self, folder: str) -> None:
        """CREATE ``folder``."""
        response = await self.client.create(folder_argument(folder))
        assert response.result == "OK", response

    async def delete(self, folder: str) -> None:
        """DELETE ``folder`` with everything in it."""
        response = await self.client.delete(folder_argument(folder))
        assert response.result == "OK", response

    async def unflag_seen(self, folder: str) -> None:
        """Clear \\Seen on every message in ``folder``."""
        response = await self.client.select(folder_argument(folder))
        assert response.result == "OK", response
        response = await self.client.store("1:*", "-FLAGS.SILENT", r"(\Seen)")
        assert response.result == "OK", response
        await self.client.close()

    async def logout(self) -> None:
        """LOGOUT, and close our end at once (the server's own close may come after the test's
        event loop is gone, leaving the socket open)."""
        await self.client.logout()
        self.client.protocol.transport.close()
        await asyncio.sleep(0)


@pytest.fixture
async def imap(dovecot: Dovecot, mail_user: MailUser) -> AsyncIterator[MailClient]:
    """The test's own client, logged in to this test's account."""
    client = await MailClient.login(dovecot, mail_user)
    yield client
    await client.logout()
