"""One IMAP session over aioimaplib, with every failure turned into a reason a person can act on.

This module is the only one that touches aioimaplib. It connects with
implicit TLS, STARTTLS (which aioimaplib lacks, so it is done here with
`loop.start_tls`) or plain; logs in with a password read at every login;
and offers the few verbs the poller needs, each bounded (TESTING-NOTES.md):
UID SEARCH, FETCH of `BODY.PEEK[]` (or of its first bytes only) for a batch,
and MOVE / STORE / EXPUNGE in chunks of at most `ACTION_CHUNK` UIDs. Without
MOVE, a move is COPY + STORE \\Deleted + (UID) EXPUNGE. A session sends one
command at a time. aioimaplib's reader of received data is replaced by a
loop (`_line_reader`): the library's own recurses once per line and dies on a
read of more than about 1,000 lines, which a second session on the same
folder causes (the server reports the other session's thousands of EXPUNGEs
at once); such news, which no command waits for, is dropped quietly. IDLE
waits are raced against the connection being lost, so a dead server is
noticed at once rather than after the IDLE period.

Errors (part of alertd's tree, see `alertd.errors`)::

    TransientError
    └── ImapUnavailable          reason: dns, refused, unreachable, timeout, tls,
        │                        connection_lost, protocol, folder_missing,
        │                        login_unavailable (the server cannot check passwords now),
        │                        connection_limit (too many connections of this user)
        └── ImapLoginRefused     reason: login_failed, credentials (wrong or unreadable
                                 user name / password; retried only after a long wait)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import aioimaplib  # type: ignore[import-untyped]  # ships no type information

from alertd.errors import TransientError
from alertd.settings import ImapMailboxSettings

ACTION_CHUNK = 250
"""Most UIDs in one MOVE / STORE / EXPUNGE / COPY (aioimaplib overflows near 1,000 lines)."""
SIZE_CHUNK = 250
"""Most UIDs in one FETCH of sizes."""
WATCHED = ("IDLE", "MOVE", "UIDPLUS")
"""Capabilities alertd uses when offered, shown by `alertd mailboxes check`."""

_FETCH_HEAD = re.compile(rb"^(\d+) FETCH \(")
_UID_ITEM = re.compile(rb"UID (\d+)")
_SIZE_ITEM = re.compile(rb"RFC822\.SIZE (\d+)")
_LITERAL_END = re.compile(rb"\{(\d+)\}$")
_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_UIDNEXT = re.compile(rb"\[UIDNEXT (\d+)\]")
_EXISTS = re.compile(rb"^(\d+) EXISTS$")


class ImapUnavailable(TransientError):
    """The mailbox cannot be used right now; ``reason`` names why in one word."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.message = message
        super().__init__(message)


class ImapLoginRefused(ImapUnavailable):
    """The user name or password is wrong, or the password cannot be read."""


@dataclass(frozen=True, slots=True)
class Selected:
    """What SELECT (or EXAMINE) said about the folder."""

    uidvalidity: int
    exists: int
    uidnext: int | None


@dataclass(frozen=True, slots=True)
class Fetched:
    """What a FETCH brought: whole mails by UID, and the UIDs of mails cut at the limit."""

    bodies: dict[int, bytes]
    cut: frozenset[int]


def read_password(mailbox: ImapMailboxSettings) -> str:
    """The password, from `password_env` or `password_file`, read now (never logged)."""
    if mailbox.password_env is not None:
        value = os.environ.get(mailbox.password_env)
        if not value:
            raise ImapLoginRefused(
                "credentials",
                f"the environment variable {mailbox.password_env} that should hold the password "
                f"of mailbox {mailbox.name!r} is not set")
        return value
    assert mailbox.password_file is not None
    try:
        value = mailbox.password_file.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as error:
        raise ImapLoginRefused(
            "credentials",
            f"cannot read the password file {mailbox.password_file} of mailbox "
            f"{mailbox.name!r}: {error.strerror or error}") from error
    if not value:
        raise ImapLoginRefused(
            "credentials", f"the password file {mailbox.password_file} of mailbox "
                           f"{mailbox.name!r} is empty")
    return value


def tls_context(mailbox: ImapMailboxSettings) -> ssl.SSLContext:
    """Certificate and host name checks on, against `ca_file` or the system's trust store."""
    try:
        return ssl.create_default_context(
            cafile=str(mailbox.ca_file) if mailbox.ca_file is not None else None)
    except (OSError, ssl.SSLError) as error:
        raise ImapUnavailable(
            "tls", f"cannot load the CA file {mailbox.ca_file}: {error}") from error


def folder_argument(name: str) -> str:
    """A folder name as an IMAP quoted string, in modified UTF-7 (RFC 3501 5.1.3)."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    encoded = "".join(out)
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


def uid_set(uids: Iterable[int]) -> str:
    """A UID set naming exactly ``uids``: runs of consecutive UIDs as `a:b`, never wider."""
    ordered = sorted(set(uids))
    parts: list[str] = []
    start = previous = ordered[0] if ordered else 0
    for uid in ordered[1:]:
        if uid == previous + 1:
            previous = uid
            continue
        parts.append(f"{start}:{previous}" if previous > start else str(start))
        start = previous = uid
    if ordered:
        parts.append(f"{start}:{previous}" if previous > start else str(start))
    return ",".join(parts)


def chunks(items: Sequence[int], size: int) -> list[Sequence[int]]:
    """``items`` cut into runs of at most ``size``."""
    return [items[i:i + size] for i in range(0, len(items), size)]


class _NoWireDump(logging.Filter):
    """Drops aioimaplib's debug records: they hold every byte sent and received, mail
    included, and its password scrubbing misses passwords that need quoting."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


_WIRE_FILTER = _NoWireDump()


def _silence_wire_log() -> None:
    """Install the filter on aioimaplib's logger (once)."""
    logger = logging.getLogger("aioimaplib.aioimaplib")
    if _WIRE_FILTER not in logger.filters:
        logger.addFilter(_WIRE_FILTER)


def _why_connect_failed(error: BaseException, host: str, port: int) -> ImapUnavailable:
    where = f"{host}:{port}"
    if isinstance(error, socket.gaierror):
        return ImapUnavailable("dns", f"cannot resolve {host}: {error.strerror or error}")
    if isinstance(error, ConnectionRefusedError):
        return ImapUnavailable("refused", f"{where} refused the connection")
    if isinstance(error, ssl.SSLCertVerificationError):
        return ImapUnavailable(
            "tls", f"TLS with {where} failed: {error.verify_message or error} (set ca_file to "
                   "the CA that signed the server's certificate)")
    if isinstance(error, ssl.SSLError):
        return ImapUnavailable("tls", f"TLS with {where} failed: {error.reason or error}")
    if isinstance(error, TimeoutError):
        return ImapUnavailable("timeout", f"{where} did not answer in time")
    if isinstance(error, ConnectionError | EOFError):
        return ImapUnavailable("connection_lost", f"{where} closed the connection")
    if isinstance(error, OSError):
        return ImapUnavailable("unreachable", f"cannot reach {where}: {error.strerror or error}")
    if isinstance(error, aioimaplib.CommandTimeout):
        return ImapUnavailable("timeout", f"{where} did not answer in time")
    return ImapUnavailable("protocol", f"{where}: {type(error).__name__}: {error}")


def _untagged_name(line: bytes) -> str:
    """The name aioimaplib files an untagged line under: FETCH or EXPUNGE after a number,
    otherwise the first word (`* SEARCH 1 2` → SEARCH, `* 3 EXISTS` → 3)."""
    words = line.split(b" ", 3)
    if len(words) > 2 and words[1].isdigit() and words[2] in (b"FETCH", b"EXPUNGE"):
        return words[2].decode()
    return words[1].decode("ascii", "replace").upper() if len(words) > 1 else ""


def _text(lines: Sequence[Any]) -> str:
    """The server's words from a response, for messages."""
    words = [bytes(line).decode("utf-8", "replace") for line in lines
             if isinstance(line, bytes | bytearray)]
    return " ".join(word for word in words if word).strip()


class ImapSession:
    """A logged-in connection to one mailbox's server."""

    def __init__(self, mailbox: ImapMailboxSettings, client: aioimaplib.IMAP4,
                 lost: asyncio.Event) -> None:
        self.mailbox = mailbox
        self.client = client
        self.lost = lost
        self.timeout = mailbox.timeout.total_seconds()
        self.where = f"{mailbox.host}:{mailbox.port_or_default}"
        self.capabilities: frozenset[str] = frozenset()
        self.new_mail = asyncio.Event()
        """Set by every untagged EXISTS: aioimaplib drops those that arrive outside IDLE
        (say, during a SEARCH), and a mail announced then would wait for the next renewal."""
        self._turn = asyncio.Lock()
        """One command at a time: aioimaplib lets a FETCH slip out while a MOVE waits for its
        turn, and then fails on the FETCH's answer."""
        protocol = client.protocol
        untagged = protocol._untagged_response
        waiting = protocol.pending_async_commands

        def watch(line: bytes) -> Any:
            if line.endswith(b" EXISTS"):
                self.new_mail.set()
            if (protocol.pending_sync_command is None and "NOOP" not in waiting
                    and _untagged_name(line) not in waiting):
                # Unsolicited, as the EXPUNGE and FLAGS news of what another session did to
                # this folder: aioimaplib would log each line at info level and drop it.
                return None
            return untagged(line)

        protocol._untagged_response = watch
        protocol._handle_responses = _line_reader(protocol)

    # -- connecting ---------------------------------------------------------------

    @classmethod
    async def open(cls, mailbox: ImapMailboxSettings) -> ImapSession:
        """Connect, secure, log in and learn the capabilities; ImapUnavailable on any failure."""
        _silence_wire_log()
        password = read_password(mailbox)
        context = tls_context(mailbox) if mailbox.security != "plain" else None
        lost = asyncio.Event()
        host, port = mailbox.host, mailbox.port_or_default
        client = aioimaplib.IMAP4(
            host=host, port=port, timeout=mailbox.timeout.total_seconds(),
            conn_lost_cb=lambda _error: lost.set(),
            ssl_context=context if mailbox.security == "tls" else None,
        )
        session = cls(mailbox, client, lost)
        try:
            try:
                await client.wait_hello_from_server()
            except Exception as error:
                raise _why_connect_failed(error, host, port) from error
            if mailbox.security == "starttls":
                assert context is not None
                await session._starttls(context)
            await session._login(password)
        except BaseException:
            session.close()
            raise
        return session

    async def _starttls(self, context: ssl.SSLContext) -> None:
        protocol = self.client.protocol
        if "STARTTLS" not in protocol.capabilities:
            raise ImapUnavailable("tls", f"{self.where} does not offer STARTTLS")
        response = await self._call(protocol.execute(
            aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)))
        if response.result != "OK":
            raise ImapUnavailable("tls", f"{self.where} refused STARTTLS: {_text(response.lines)}")
        loop = asyncio.get_running_loop()
        try:
            transport = await asyncio.wait_for(
                loop.start_tls(protocol.transport, protocol, context,
                               server_hostname=self.mailbox.host),
                timeout=self.timeout)
        except Exception as error:
            raise _why_connect_failed(error, self.mailbox.host,
                                      self.mailbox.port_or_default) from error
        protocol.transport = transport
        await self._call(protocol.capability(), within=self.timeout)

    async def _login(self, password: str) -> None:
        protocol = self.client.protocol
        if "LOGINDISABLED" in protocol.capabilities:
            raise ImapLoginRefused(
                "login_failed", f"{self.where} does not allow logging in without TLS: "
                                "use security: starttls or tls")
        response = await self._call(
            self.client.login(aioimaplib.quoted(self.mailbox.user), password))
        if response.result != "OK" and "[UNAVAILABLE]" in _text(response.lines):
            raise ImapUnavailable(  # RFC 5530: the server cannot check credentials right now
                "login_unavailable", f"{self.where} cannot log anyone in right now: "
                                     f"{_text(response.lines)}")
        if response.result != "OK" and "[LIMIT]" in _text(response.lines):
            raise ImapUnavailable(  # RFC 5530: too many connections, not a wrong password
                "connection_limit", f"{self.where} refused another connection of user "
                                    f"{self.mailbox.user!r}: {_text(response.lines)}")
        if response.result != "OK":
            raise ImapLoginRefused(
                "login_failed",
                f"{self.where} refused the user name or password of mailbox "
                f"{self.mailbox.name!r} (user {self.mailbox.user!r}): the credentials are "
                f"wrong. The server said: {_text(response.lines) or response.result}")
        # Capabilities may change at login (RFC 3501 6.2.3): ask again rather than
        # keep the pre-login list, which for example advertises IDLE on some servers.
        await self._call(protocol.capability(), within=self.timeout)
        self.capabilities = frozenset(
            cap.upper() for cap in protocol.capabilities if cap.upper() != "CAPABILITY")

    def has(self, capability: str) -> bool:
        """Whether the server offered ``capability`` after login."""
        return capability.upper() in self.capabilities

    # -- commands -----------------------------------------------------------------

    async def _call(self, command: Awaitable[Any], *, within: float | None = None) -> Any:
        """Await ``command`` when no other command is running, failing at once if the
        connection is lost meanwhile."""
        async with self._turn:
            return await self._call_now(command, within)

    async def _call_now(self, command: Awaitable[Any], within: float | None) -> Any:
        """`_call` for the holder of the turn."""
        if self.lost.is_set():
            if asyncio.iscoroutine(command):
                command.close()
            raise ImapUnavailable("connection_lost", f"{self.where} closed the connection")
        running = asyncio.ensure_future(command)
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            done, _ = await asyncio.wait({running, lost}, timeout=within,
                                         return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            running.cancel()  # cancelled: the command must not wait on a closed connection
            raise
        finally:
            lost.cancel()
        if running not in done:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            if self.lost.is_set():
                raise ImapUnavailable("connection_lost", f"{self.where} closed the connection")
            raise ImapUnavailable("timeout", f"{self.where} did not answer in time")
        try:
            return running.result()
        except ImapUnavailable:
            raise
        except Exception as error:
            if self.lost.is_set():
                raise ImapUnavailable(
                    "connection_lost", f"{self.where} closed the connection") from error
            raise _why_connect_failed(error, self.mailbox.host,
                                      self.mailbox.port_or_default) from error

    def _check(self, response: Any, what: str) -> Any:
        if response.result != "OK":
            raise ImapUnavailable(
                "protocol", f"{self.where} refused {what}: {_text(response.lines)}")
        return response

    async def select(self, folder: str, *, readonly: bool = False) -> Selected:
        """SELECT (or EXAMINE) ``folder``; a missing folder is reason `folder_missing`."""
        if readonly:
            response = await self._call(self.client.examine(folder_argument(folder)))
        else:
            response = await self._call(self.client.select(folder_argument(folder)))
        if response.result != "OK":
            raise ImapUnavailable(
                "folder_missing", f"cannot open folder {folder!r} of mailbox "
                                  f"{self.mailbox.name!r}: {_text(response.lines)}")
        uidvalidity = uidnext = exists = None
        for line in response.lines:
            if not isinstance(line, bytes):
                continue
            if match := _UIDVALIDITY.search(line):
                uidvalidity = int(match.group(1))
            elif match := _UIDNEXT.search(line):
                uidnext = int(match.group(1))
            elif match := _EXISTS.match(line):
                exists = int(match.group(1))
        if uidvalidity is None:
            raise ImapUnavailable("protocol", f"{self.where} gave no UIDVALIDITY for {folder!r}")
        return Selected(uidvalidity=uidvalidity, exists=exists or 0, uidnext=uidnext)

    async def search(self, criteria: str) -> list[int]:
        """UID SEARCH; the UIDs found, ascending."""
        response = self._check(await self._call(
            self.client.uid_search(criteria, charset=None), within=self.timeout),
            f"UID SEARCH {criteria}")
        found: set[int] = set()
        for line in response.lines[:-1]:
            if isinstance(line, bytes):
                found.update(int(word) for word in line.split() if word.isdigit())
        return sorted(found)

    async def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        """RFC822.SIZE of each UID (in chunks)."""
        out: dict[int, int] = {}
        for chunk in chunks(uids, SIZE_CHUNK):
            response = await self._call(self.client.uid("fetch", uid_set(chunk),
                                                        "(UID RFC822.SIZE)"))
            for line in response.lines:
                if isinstance(line, bytes) and _FETCH_HEAD.match(line):
                    uid, size = _UID_ITEM.search(line), _SIZE_ITEM.search(line)
                    if uid and size:
                        out[int(uid.group(1))] = int(size.group(1))
        return out

    async def fetch(self, uids: Sequence[int], *, limit: int | None = None) -> Fetched:
        """The raw mails (BODY.PEEK[], so nothing is marked read), by UID. With ``limit`` no
        more than the first ``limit`` bytes of each mail are read (`BODY.PEEK[]<0.limit>`):
        a mail that fills them is left out of `bodies` and named in `cut` instead.

        UIDs missing from the answer were expunged meanwhile, or the server
        could not read them; the caller decides.
        """
        protocol = self.client.protocol
        if protocol.state != aioimaplib.SELECTED:
            raise ImapUnavailable("protocol", f"FETCH with no folder selected on {self.where}")
        part = "BODY.PEEK[]" if limit is None else f"BODY.PEEK[]<0.{limit}>"
        response = await self._call(protocol.execute(_LinearFetch(
            protocol.new_tag(), uid_set(uids), f"(UID {part})", prefix="UID",
            loop=protocol.loop, timeout=self.timeout)))
        if response.result not in {"OK", "NO"}:
            raise ImapUnavailable(
                "protocol", f"{self.where} refused FETCH: {_text(response.lines)}")
        bodies = parse_fetch(response.lines)
        if limit is None:
            return Fetched(bodies, frozenset())
        cut = frozenset(uid for uid, body in bodies.items() if len(body) >= limit)
        for uid in cut:
            del bodies[uid]
        return Fetched(bodies, cut)

    async def move(self, uids: Sequence[int], folder: str) -> None:
        """Move ``uids`` to ``folder``: UID MOVE, or COPY + delete when MOVE is not offered."""
        target = folder_argument(folder)
        for chunk in chunks(uids, ACTION_CHUNK):
            if self.has("MOVE"):
                self._check(await self._call(
                    self.client.uid("move", uid_set(chunk), target), within=self.timeout),
                    f"UID MOVE to {folder!r}")
            else:
                self._check(await self._call(
                    self.client.uid("copy", uid_set(chunk), target), within=self.timeout),
                    f"UID COPY to {folder!r}")
                await self._delete_chunk(chunk)

    async def flag_seen(self, uids: Sequence[int]) -> None:
        """Set \\Seen on ``uids``."""
        for chunk in chunks(uids, ACTION_CHUNK):
            self._check(await self._call(
                self.client.uid("store", uid_set(chunk), "+FLAGS.SILENT", r"(\Seen)"),
                within=self.timeout), "UID STORE \\Seen")

    async def delete(self, uids: Sequence[int]) -> None:
        """Flag ``uids`` \\Deleted and expunge them (UID EXPUNGE when UIDPLUS is offered)."""
        for chunk in chunks(uids, ACTION_CHUNK):
            await self._delete_chunk(chunk)

    async def _delete_chunk(self, chunk: Sequence[int]) -> None:
        self._check(await self._call(
            self.client.uid("store", uid_set(chunk), "+FLAGS.SILENT", r"(\Deleted)"),
            within=self.timeout), "UID STORE \\Deleted")
        if self.has("UIDPLUS"):
            self._check(await self._call(
                self.client.uid("expunge", uid_set(chunk)), within=self.timeout),
                "UID EXPUNGE")
        else:
            self._check(await self._call(self.client.expunge(), within=self.timeout),
                        "EXPUNGE")

    async def folder_exists(self, folder: str) -> bool:
        """Whether LIST finds ``folder``."""
        response = self._check(await self._call(
            self.client.list('""', folder_argument(folder)), within=self.timeout), "LIST")
        # aioimaplib strips "* LIST " and keeps "(flags) sep name" for each folder found
        return any(isinstance(line, bytes) and line.startswith(b"(")
                   for line in response.lines[:-1])

    async def ensure_folder(self, folder: str) -> bool:
        """Create ``folder`` unless it exists; True when it was created."""
        if await self.folder_exists(folder):
            return False
        response = await self._call(self.client.create(folder_argument(folder)),
                                    within=self.timeout)
        if response.result != "OK" and not await self.folder_exists(folder):
            raise ImapUnavailable(
                "folder_missing", f"cannot create folder {folder!r} in mailbox "
                                  f"{self.mailbox.name!r}: {_text(response.lines)}")
        return bool(response.result == "OK")

    # -- waiting ------------------------------------------------------------------

    async def idle(self, stopping: asyncio.Event, *, renew: float,
                   check: Callable[[], Awaitable[bool]] | None = None,
                   check_every: float = 30.0) -> str:
        """One IDLE command, until new mail ("mail"), ``renew`` seconds ("renew"), ``stopping``
        ("stopping") or a failed ``check`` ("check_failed", asked every ``check_every``
        seconds while IDLE goes on); it always ends the IDLE (DONE) before returning.

        Mail announced since `new_mail` was last cleared counts: it returns at once.
        """
        if self.new_mail.is_set():
            return "mail"
        protocol = self.client.protocol
        while not protocol.idle_queue.empty():
            protocol.idle_queue.get_nowait()
        try:
            idle = await self._call(self.client.idle_start(timeout=renew), within=self.timeout)
        except aioimaplib.Abort as error:
            raise ImapUnavailable("protocol", f"{self.where} refused IDLE: {error}") from error
        loop = asyncio.get_running_loop()
        until = loop.time() + renew
        why = "renew"
        try:
            while (left := until - loop.time()) > 0:
                push = asyncio.ensure_future(protocol.idle_queue.get())
                waiters = {push, *(asyncio.ensure_future(event.wait())
                                   for event in (stopping, self.lost, self.new_mail))}
                try:
                    done, _ = await asyncio.wait(waiters, timeout=min(left, check_every),
                                                 return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waiters:
                        waiter.cancel()
                if self.lost.is_set():
                    raise ImapUnavailable("connection_lost",
                                          f"{self.where} closed the connection")
                if self.new_mail.is_set():
                    why = "mail"
                    break
                if stopping.is_set():
                    why = "stopping"
                    break
                if push in done and push.result() == aioimaplib.STOP_WAIT_SERVER_PUSH:
                    break
                if not done and check is not None and not await check():
                    why = "check_failed"
                    break
        finally:
            await self._end_idle(idle)
        return why

    async def _end_idle(self, idle: asyncio.Future[Any]) -> None:
        if not self.lost.is_set() and not idle.done():
            self.client.idle_done()
        try:
            await self._call(asyncio.shield(idle), within=self.timeout)
        except ImapUnavailable:
            idle.cancel()
            await asyncio.gather(idle, return_exceptions=True)
            raise

    # -- leaving ------------------------------------------------------------------

    async def logout(self) -> None:
        """LOGOUT politely, then close (also when cancelled); never raises otherwise."""
        try:
            with contextlib.suppress(Exception):
                if not self.lost.is_set():
                    await self._call(self.client.logout(), within=min(self.timeout, 5.0))
        finally:
            self.close()

    def close(self) -> None:
        """Drop the connection and aioimaplib's helper tasks at once.

        The transport is aborted, not closed: closing TLS politely waits for the
        server's answer to its close_notify, and a socket still waiting when the
        loop ends is never closed (after LOGOUT there is nothing left to say).
        """
        protocol = self.client.protocol
        transport = getattr(protocol, "transport", None)
        if transport is not None:
            transport.abort()
        else:
            self.client._client_task.cancel()
        for task in (*self.client.tasks, *protocol.tasks):
            task.cancel()
        waiter = self.client._idle_waiter
        if waiter is not None:
            waiter.cancel()


def _line_reader(protocol: Any) -> Callable[..., None]:
    """aioimaplib's reader of received data, as a loop: the library's own calls itself once
    per response line and so dies (RecursionError, connection lost) when one read holds more
    than about 1,000 lines, as when another session moved thousands of mails and the server
    reports their EXPUNGEs together (aioimaplib issue #118). Same steps, same order; it also
    walks the data by offset instead of copying the rest of it at every line."""
    incomplete = aioimaplib.aioimaplib.IncompleteRead
    literal_start = aioimaplib.aioimaplib.literal_data_re

    def handle(data: bytes, line_handler: Callable[[bytes, Any], Any],
               current_cmd: Any = None) -> None:
        view = memoryview(data)
        pos, end = 0, len(data)
        command = current_cmd
        while True:
            if pos >= end:
                if protocol.pending_sync_command is not None:
                    protocol.pending_sync_command.flush()
                if command is not None and command.wait_data():
                    raise incomplete(command)
                return
            if command is not None and command.wait_literal_data():
                pos = end - len(command.append_literal_data(view[pos:]))
                if command.wait_literal_data():
                    raise incomplete(command)
            stop = data.find(b"\r\n", pos)
            if stop < 0:
                raise incomplete(command, data[pos:])
            line = data[pos:stop]
            pos = stop + 2
            handled = line_handler(line, command)
            literal = literal_start.match(line)
            if literal:
                if handled is None:
                    handled = aioimaplib.Command("NIL", "unused")
                handled.begin_literal_data(int(literal.group("size")))
                command = handled
            elif handled is not None and handled.wait_data():
                command = handled
            else:
                command = None

    return handle


class _LinearFetch(aioimaplib.FetchCommand):  # type: ignore[misc]  # aioimaplib is untyped
    """aioimaplib's FETCH command, cheaper per response line.

    The library decides whether a message's item list is complete by
    rescanning every line received so far at each new line, which is
    quadratic in the batch and most of its parsing time; here the answer is
    the same (parentheses in the lines, not in the literals, since the last
    `n FETCH (` line), kept as a running count.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._depth = 0
        self._active_at = 0.0
        super().__init__(*args, **kwargs)

    # The library re-arms its inactivity timer on every line (two timer handles per line);
    # here a line only notes the time, and the one timer re-arms itself when it fires early.
    def _set_timer(self) -> None:
        if self._timeout is not None:
            self._active_at = self._loop.time()
            self._timer = self._loop.call_later(self._timeout, self._check_inactive)

    def _reset_timer(self) -> None:
        self._active_at = self._loop.time()

    def _check_inactive(self) -> None:
        quiet = self._loop.time() - self._active_at
        if quiet >= self._timeout:
            self._timeout_callback()
        else:
            self._timer = self._loop.call_later(self._timeout - quiet, self._check_inactive)

    def append_to_resp(self, line: Any, result: str = "Pending") -> None:
        super().append_to_resp(line, result)
        if isinstance(line, bytes):
            change = line.count(b"(") - line.count(b")")
            self._depth = change if self.FETCH_MESSAGE_DATA_RE.match(line) else (
                self._depth + change)

    def wait_data(self) -> bool:
        return self._depth != 0


def parse_fetch(lines: Sequence[Any]) -> dict[int, bytes]:
    """Raw mails by UID from a `UID FETCH (UID BODY.PEEK[])` answer.

    Each mail arrives as the line `n FETCH (... {size}`, then the literal (a
    bytearray), then the rest of the item list; the UID may stand before or
    after the literal.
    """
    out: dict[int, bytes] = {}
    index = 0
    count = len(lines)
    while index < count:
        line = lines[index]
        if (isinstance(line, bytes) and _FETCH_HEAD.match(line) and _LITERAL_END.search(line)
                and index + 1 < count and isinstance(lines[index + 1], bytearray)):
            uid_match = _UID_ITEM.search(line)
            if uid_match is None and index + 2 < count and isinstance(lines[index + 2], bytes):
                uid_match = _UID_ITEM.search(lines[index + 2])
            if uid_match is not None:
                out[int(uid_match.group(1))] = bytes(lines[index + 1])
            index += 2
            continue
        index += 1
    return out
