"""IMAP mailboxes as alert sources (SPEC R1.1): one poller component per configured mailbox.

A poller holds the mailbox's lease (one active poller per mailbox across
instances, R6.4), logs in, and drains the folder by UID:

1. SELECT the folder; a UIDVALIDITY other than the one remembered means the
   folder was recreated, so the cursor starts over and the whole folder is
   read again (the inbox recognises what it already holds as duplicates).
2. UID SEARCH for what is there. A mail at or below the cursor is already
   in the inbox (a crash came between the commit and the server action),
   so only the action is applied to it; a mail above the cursor is new.
3. New mail is fetched with `BODY.PEEK[]` in batches of `batch_size`, each
   FETCH reading no more than the first megabyte (or `max_size`) of a mail:
   a longer mail is fetched again on its own, or, when it is over
   `max_size`, goes to `failed_folder` or stays where it is, remembered as
   parked. The next batch is on its way while the mail in hand is taken,
   and fetched mail is stored with `InboxStore.accept_many`, one
   transaction for up to 250 mails (a transaction has a fixed cost worth
   dozens of rows), committed while the next batches are fetched.
4. Only after its commit is a mail moved, flagged \\Seen or deleted, in
   commands of at most 250 UIDs, while the drain goes on: a long drain's
   UID MOVEs go over a second connection (`action_connection`), so that the
   server moves while it also serves the FETCHes; everything else runs
   between the FETCHes (`alertd.sources.imap_actions`). The cursor is saved
   at the end of the pass (and every second of a long one).
5. Wait for more: IDLE when offered (re-issued every `idle_renew`, under
   the 29-minute limit), otherwise poll every `poll_interval`.

A failure to connect or a lost connection is retried with capped,
jittered exponential backoff. The poller logs once when the mailbox goes
down, with the reason (dns, refused, tls, login_failed, ...), and once when
it is back; a refused login waits `login_backoff` and says plainly that the
credentials are wrong. The password is read at each login and never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from alertd.daemon.components import Component
from alertd.daemon.leases import Lease, lease_for
from alertd.db.engine import is_unavailable, storage_errors
from alertd.domain import Accepted, Envelope, RawMessage
from alertd.errors import ConfigError, StorageUnavailable
from alertd.logs import get_logger
from alertd.runtime import Runtime
from alertd.settings import ImapMailboxSettings
from alertd.sources.imap_actions import ActionQueue
from alertd.sources.imap_client import (
    ACTION_CHUNK,
    WATCHED,
    Fetched,
    ImapLoginRefused,
    ImapSession,
    ImapUnavailable,
    Selected,
)
from alertd.sources.imap_state import Cursor, load_cursor, save_cursor

log = get_logger(__name__)

BIG_MAIL = 1_000_000
"""Mails this long or longer (bytes) are fetched one at a time, so a batch stays small in
memory: a batch FETCH reads no more than this much of each mail."""
LEASE_CHECK_S = 30.0
"""How often a poller waiting in IDLE makes sure its lease is still held (PostgreSQL)."""
MAX_FETCH_ATTEMPTS = 3
"""A mail the server will not return this many times is set aside like an oversized one."""
STORE_GROUP = ACTION_CHUNK
"""Most fetched mails stored in one transaction: a transaction has a fixed cost (0.5-2 ms
measured here, more than 50 small mails' rows), so five FETCH batches of 50 share one, and
then one MOVE."""
STORE_GROUP_BYTES = 8_000_000
"""...or fewer, once they add up to this many bytes."""
ACTION_CONNECTION_FROM = 2 * STORE_GROUP
"""A drain of more new mails than this moves them over a second connection of its own
(`action_connection`): logging in costs a few round trips, a long drain saves many."""
SAVE_EVERY_S = 1.0
"""During a long drain the cursor is saved at most this often (and at the end of each pass);
a cursor left behind by a crash only costs re-fetching mail the inbox reports as duplicates."""


def mailbox_identity(mailbox: ImapMailboxSettings) -> str:
    """`user@host/folder`: what the inbox stores as a mail's mailbox, with its UIDVALIDITY and UID.

    It names the server's folder, not the settings entry, so renaming the
    entry changes nothing and two folders never share a UID space.
    """
    return f"{mailbox.user}@{mailbox.host.lower()}/{mailbox.folder}"


def imap_components(runtime: Runtime) -> list[Component]:
    """One poller per mailbox under `imap:` in the settings."""
    names = [mailbox.name for mailbox in runtime.settings.imap]
    doubled = sorted({name for name in names if names.count(name) > 1})
    if doubled:
        raise ConfigError(f"IMAP mailbox names must be unique: {', '.join(doubled)}")
    return [ImapPoller(runtime, mailbox) for mailbox in runtime.settings.imap]


@dataclass
class Outage:
    """A mailbox that cannot be drained right now, and since when."""

    reason: str
    message: str
    since: float
    attempts: int = 1
    logged: bool | None = None
    """None until logged; then whether the line logged was about refused credentials. A
    server that goes from unreachable to refusing the password (or back) is logged again;
    any other change of reason (closed, then refused while it restarts) only at debug."""


@dataclass
class PassReport:
    """What one pass over the folder did."""

    stored: int = 0
    duplicates: int = 0
    acted: int = 0
    set_aside: int = 0
    started: float = field(default_factory=time.perf_counter)

    @property
    def busy(self) -> bool:
        """Whether anything happened."""
        return bool(self.stored or self.duplicates or self.acted or self.set_aside)


class _Group:
    """Fetched mail waiting to be stored in one transaction."""

    def __init__(self) -> None:
        self.uids: list[int] = []
        self.bodies: dict[int, bytes] = {}
        self.size = 0

    def add(self, uids: Sequence[int], bodies: dict[int, bytes]) -> None:
        """Fetched mail: ``uids`` asked for, their ``bodies`` as returned (some may be missing)."""
        self.uids.extend(uids)
        for uid in uids:
            body = bodies.get(uid)
            if body is not None:
                self.bodies[uid] = body
                self.size += len(body)

    @property
    def full(self) -> bool:
        """Whether it is time to store."""
        return len(self.uids) >= STORE_GROUP or self.size >= STORE_GROUP_BYTES

    def take(self) -> tuple[list[int], dict[int, bytes]]:
        """Everything gathered, leaving the group empty."""
        taken = (self.uids, self.bodies)
        self.uids, self.bodies, self.size = [], {}, 0
        return taken


@dataclass(frozen=True, slots=True)
class _Step:
    """A batch to fetch, or one mail to set aside (with the reason)."""

    uids: tuple[int, ...]
    refuse: str | None = None


class ImapPoller:
    """Drains one mailbox into the inbox until the daemon stops."""

    def __init__(self, runtime: Runtime, mailbox: ImapMailboxSettings, *,
                 lease: Lease | None = None, rng: random.Random | None = None) -> None:
        self.runtime = runtime
        self.mailbox = mailbox
        self.name = f"imap:{mailbox.name}"
        self.identity = mailbox_identity(mailbox)
        self.lease = lease or lease_for(runtime.engine, f"imap:{self.identity}",
                                        retry=mailbox.standby_retry)
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.cursor: Cursor | None = None
        self.connected = asyncio.Event()
        """Set while logged in with the folder selected (tests and health wait on it)."""
        self.state = "starting"
        """standby, connecting, draining, idle, polling, down or stopped."""
        self.waiting = asyncio.Event()
        """Set while the folder is drained and the poller waits for more (IDLE or poll)."""
        self._fetch_failures: dict[int, int] = {}
        self._ever_connected = False
        self._saved_at = 0.0

    # -- the component -------------------------------------------------------------

    async def run(self, stopping: asyncio.Event) -> None:
        """Hold the lease and drain the mailbox until ``stopping``; then log out and return."""
        with structlog.contextvars.bound_contextvars(mailbox=self.mailbox.name):
            while not stopping.is_set():
                self.state = "standby"
                if not await self.lease.acquire(stopping):
                    break
                try:
                    await self._while_held(stopping)
                finally:
                    await self.lease.release()
            self.state = "stopped"

    async def _while_held(self, stopping: asyncio.Event) -> None:
        """Connect, drain and wait, reconnecting with backoff, while the lease is ours."""
        outage: Outage | None = None
        while not stopping.is_set():
            session: ImapSession | None = None
            try:
                self.state = "connecting"
                session = await ImapSession.open(self.mailbox)
                selected = await self._start(session)
                self._log_up(outage, session, selected)
                outage = None
                held = await self._serve(session, stopping)
                await session.logout()
                session = None
                if not held:
                    return
            except (ImapUnavailable, StorageUnavailable) as error:
                self.state = "down"
                outage = self._went_down(outage, error)
                delay = self._delay(outage, error)
                self._log_down(outage, error, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=delay)
                if not await self.lease.check():
                    return
            finally:
                self.connected.clear()
                self.waiting.clear()
                if session is not None:
                    session.close()

    # -- up and down --------------------------------------------------------------

    def _went_down(self, outage: Outage | None, error: Exception) -> Outage:
        reason = error.reason if isinstance(error, ImapUnavailable) else "database"
        message = error.message if isinstance(error, ImapUnavailable) else str(error)
        if outage is None:
            return Outage(reason=reason, message=message, since=time.monotonic())
        outage.attempts += 1
        outage.reason, outage.message = reason, message
        return outage

    def _delay(self, outage: Outage, error: Exception) -> float:
        """Capped exponential backoff with jitter; a refused login waits long."""
        if isinstance(error, ImapLoginRefused):
            base = self.mailbox.login_backoff.total_seconds()
            return base * self.rng.uniform(0.8, 1.0)
        first = self.mailbox.reconnect_backoff.total_seconds()
        cap = self.mailbox.reconnect_backoff_max.total_seconds()
        delay = min(cap, first * 2.0 ** min(outage.attempts - 1, 30))
        return delay * self.rng.uniform(0.5, 1.0)

    def _log_down(self, outage: Outage, error: Exception, delay: float) -> None:
        """One line when the mailbox goes down (or its credentials start or stop being
        refused), not one per retry."""
        credentials = isinstance(error, ImapLoginRefused)
        if outage.logged == credentials:
            log.debug("imap.retrying", reason=outage.reason, attempts=outage.attempts,
                      retry_in_s=round(delay, 2))
            return
        outage.logged = credentials
        if isinstance(error, ImapLoginRefused):
            log.error("imap.down", reason=outage.reason, error=outage.message,
                      retry_in_s=round(delay, 2),
                      hint="fix the user name or password; alertd tries again only after "
                           "login_backoff")
        else:
            log.warning("imap.down", reason=outage.reason, error=outage.message,
                        retry_in_s=round(delay, 2))

    def _log_up(self, outage: Outage | None, session: ImapSession, selected: Selected) -> None:
        """One line when the mailbox is back (or first connected)."""
        details = {
            "folder": self.mailbox.folder, "messages": selected.exists,
            "uidvalidity": selected.uidvalidity, "security": self.mailbox.security,
            **{cap.lower(): session.has(cap) for cap in WATCHED},
        }
        if outage is not None:
            log.info("imap.up", was=outage.reason, attempts=outage.attempts,
                     down_for_s=round(time.monotonic() - outage.since, 2), **details)
        elif not self._ever_connected:
            log.info("imap.connected", server=session.where, **details)
        self._ever_connected = True
        self.connected.set()

    # -- one session --------------------------------------------------------------

    async def _start(self, session: ImapSession) -> Selected:
        """Select the folder, make the target folders, and reconcile the cursor."""
        selected = await session.select(self.mailbox.folder)
        targets = [self.mailbox.failed_folder]
        if self.mailbox.after == "move":
            targets.append(self.mailbox.move_to)
        for folder in targets:
            if folder and await session.ensure_folder(folder):
                log.info("imap.folder_created", folder=folder)
        async with storage_errors(), self.runtime.sessions() as db:
            cursor = await load_cursor(db, self.identity, self.mailbox.name)
        if cursor.uidvalidity != selected.uidvalidity:
            if cursor.uidvalidity:
                log.warning("imap.uidvalidity_changed", old=cursor.uidvalidity,
                            new=selected.uidvalidity,
                            action="reading the whole folder again; mail already stored is "
                                   "recognised as a duplicate")
            cursor.reset(selected.uidvalidity)
            await self._save(cursor)
            self._fetch_failures.clear()  # counted against UIDs of the old folder
        self.cursor = cursor
        return selected

    async def _serve(self, session: ImapSession, stopping: asyncio.Event) -> bool:
        """Drain and wait until ``stopping`` (True) or the lease is lost (False)."""
        use_idle = self.mailbox.idle and session.has("IDLE")
        renew = self.mailbox.idle_renew.total_seconds()
        while True:
            self.state = "draining"
            self.waiting.clear()
            await self.drain_once(session, stopping)
            if stopping.is_set():
                return True
            if not await self.lease.check():
                return False
            self.state = "idle" if use_idle else "polling"
            self.waiting.set()
            if use_idle:
                why = await session.idle(stopping, renew=renew, check=self.lease.check,
                                         check_every=LEASE_CHECK_S)
                if why == "check_failed":
                    return False
                if why == "renew":
                    log.debug("imap.idle_renewed")
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(),
                                           timeout=self.mailbox.poll_interval.total_seconds())
            if stopping.is_set():
                return True

    # -- one pass -----------------------------------------------------------------

    async def drain_once(self, session: ImapSession, stopping: asyncio.Event) -> PassReport:
        """One pass over the folder: finish what a crash left, then take in what is new."""
        cursor = self._cursor()
        report = PassReport()
        session.new_mail.clear()
        if self.mailbox.after == "flag" and cursor.last_uid:
            # Flagged mail stays: what is left to do is the unseen mail, and anything newer
            # (`n:*` also matches the newest mail when n is past it, hence the filter).
            newer = [uid for uid in await session.search(f"UID {cursor.last_uid + 1}:*")
                     if uid > cursor.last_uid]
            present = sorted(set(await session.search("UNSEEN")) | set(newer))
        else:
            present = await session.search("ALL")
        here = set(present)
        cursor.parked &= here
        if cursor.parked and self.mailbox.failed_folder:
            moved = sorted(cursor.parked)
            await session.move(moved, self.mailbox.failed_folder)
            cursor.parked.clear()
            report.set_aside += len(moved)
        leftovers = [uid for uid in present if cursor.is_stored(uid)]
        if leftovers:
            await self._act(session, leftovers)
            report.acted += len(leftovers)
            log.info("imap.leftovers_finished", count=len(leftovers), after=self.mailbox.after)
        new = [uid for uid in present if uid > cursor.last_uid]
        if new:
            await self._take_in(session, new, stopping, report)
        if cursor.dirty:
            await self._save(cursor)
        if report.busy:
            elapsed = time.perf_counter() - report.started
            log.info("imap.drained", stored=report.stored, duplicates=report.duplicates,
                     acted=report.acted, set_aside=report.set_aside,
                     duration_s=round(elapsed, 3), after=self.mailbox.after)
        return report

    async def _take_in(self, session: ImapSession, new: Sequence[int],
                       stopping: asyncio.Event, report: PassReport) -> None:
        """Fetch, store and act on ``new`` in UID order, each step overlapping the others.

        The next FETCH is on its way while the mail in hand is taken; fetched
        batches are gathered into groups of up to `STORE_GROUP` mails, each
        stored in one transaction while the following batches are fetched;
        and the stored UIDs go to an `ActionQueue`, which acts on them while the
        drain goes on. Groups are committed one after the other, and the
        cursor only moves over committed mail. A FETCH reads at most the
        first `_cut_at` bytes of each mail: a longer one is fetched again
        alone, or set aside when it is over `max_size`.
        """
        limit = self._cut_at()
        steps = self._plan(new)
        actions = ActionQueue(self._act, session)
        if self._moves_apart(session, len(new)):
            actions.open_own(self._action_session)
        group = _Group()
        storing: asyncio.Future[bool] | None = None
        ahead: tuple[_Step, asyncio.Future[Fetched]] | None = None

        async def stored() -> bool:
            """Wait for the group being committed; False when it stopped short."""
            nonlocal storing
            pending, storing = storing, None
            return pending is None or await pending

        async def store_group() -> bool:
            """Start committing the gathered group once the one before is in."""
            nonlocal storing
            if not await stored():
                return False
            uids, bodies = group.take()
            if uids:
                storing = asyncio.ensure_future(
                    self._store(session, uids, bodies, report, actions))
            return True

        async def set_aside(uid: int, reason: str) -> bool:
            """Everything before ``uid`` stored first (the cursor passes over it)."""
            if not await store_group() or not await stored():
                return False
            await self._set_aside(session, uid, reason, report)
            return True

        async def take(uids: Sequence[int], fetched: Fetched) -> bool:
            """A fetched batch into the group, in UID order; mails that were cut are
            fetched again alone, or set aside."""
            sizes = await session.sizes(sorted(fetched.cut)) if fetched.cut else {}
            run: list[int] = []
            for uid in uids:
                if uid not in fetched.cut:
                    run.append(uid)
                    continue
                group.add(run, fetched.bodies)
                run = []
                size = sizes.get(uid, 0)
                alone = None
                if size <= self.mailbox.max_size:
                    # Cut again past max_size, whatever size the server gave.
                    alone = await self._fetch(session, [uid], self.mailbox.max_size + 1)
                    if uid in alone.cut:
                        size = max(size, self.mailbox.max_size + 1)
                if alone is None or uid in alone.cut:
                    reason = f"larger than max_size ({size} > {self.mailbox.max_size} bytes)"
                    if not await set_aside(uid, reason):
                        return False
                    continue
                group.add([uid], alone.bodies)
                if group.full and not await store_group():
                    return False
            group.add(run, fetched.bodies)
            return not group.full or await store_group()

        short = False
        try:
            for index, step in enumerate(steps):
                if stopping.is_set():
                    break
                if step.refuse is not None:
                    if not await set_aside(step.uids[0], step.refuse):
                        short = True
                        break
                    continue
                if ahead is not None and ahead[0] is step:
                    fetched = await ahead[1]
                    ahead = None
                else:
                    fetched = await self._fetch(session, step.uids, limit)
                following = steps[index + 1] if index + 1 < len(steps) else None
                if following is not None and following.refuse is None:
                    ahead = (following, asyncio.ensure_future(
                        self._fetch(session, following.uids, limit)))
                if not await take(step.uids, fetched):
                    short = True
                    break
            # After a group that came back short nothing later is stored: the cursor must
            # stay below the missing mail.
            if not short:
                await store_group()
            await stored()
            await actions.finish()
        finally:
            left = [pending for pending in (ahead[1] if ahead is not None else None, storing)
                    if pending is not None]
            for pending in left:
                if not pending.done():
                    pending.cancel()
            try:
                await asyncio.gather(*left, return_exceptions=True)
            finally:
                await actions.abandon()
                report.acted += actions.queued

    def _moves_apart(self, session: ImapSession, count: int) -> bool:
        """Whether to move ``count`` new mails over a second connection: for UID MOVE only.
        Flags cost the server little, and every flag or \\Deleted set over another
        connection comes back to the drain's as news of a change, a line per mail. (Measured
        on two cores against Dovecot: a drain that moves is about a fifth faster this way;
        one that flags or deletes is not.)"""
        return (self.mailbox.action_connection and self.mailbox.after == "move"
                and session.has("MOVE") and count > ACTION_CONNECTION_FROM)

    async def _action_session(self) -> ImapSession | None:
        """A second connection with the folder selected, for the server actions; None (the
        drain's own connection acts) when it cannot be had or the folder is not the same."""
        cursor = self._cursor()
        try:
            own = await ImapSession.open(self.mailbox)
        except ImapUnavailable as error:
            log.info("imap.action_session_refused", reason=error.reason, error=error.message)
            return None
        try:
            selected = await own.select(self.mailbox.folder)
        except ImapUnavailable as error:
            own.close()
            log.info("imap.action_session_refused", reason=error.reason, error=error.message)
            return None
        except BaseException:
            own.close()
            raise
        if selected.uidvalidity != cursor.uidvalidity:
            own.close()  # the folder was recreated: the drain's own session will find out
            return None
        return own

    async def _fetch(self, session: ImapSession, uids: Sequence[int], limit: int) -> Fetched:
        """`ImapSession.fetch`; when the connection drops (or the server stops answering)
        during it, each of ``uids`` counts a failed attempt: a server that drops the
        connection over one broken mail would otherwise be asked for it forever."""
        try:
            return await session.fetch(uids, limit=limit)
        except ImapUnavailable as error:
            if error.reason in {"connection_lost", "timeout"}:
                self._count_fetch_failures(uids)
            raise

    def _count_fetch_failures(self, uids: Sequence[int]) -> None:
        """One more failed FETCH for each of ``uids`` (see `_plan`)."""
        for uid in uids:
            self._fetch_failures[uid] = self._fetch_failures.get(uid, 0) + 1

    def _cut_at(self) -> int:
        """How much of a mail a batch FETCH reads: mail this long or longer is fetched alone."""
        return min(BIG_MAIL, self.mailbox.max_size + 1)

    def _plan(self, new: Sequence[int]) -> list[_Step]:
        """Batches of `batch_size`; a mail whose FETCH failed before is fetched alone (so the
        mail that fails is found), and one the server keeps failing to return is set aside."""
        steps: list[_Step] = []
        batch: list[int] = []
        for uid in new:
            failures = self._fetch_failures.get(uid, 0)
            if not failures:
                batch.append(uid)
                if len(batch) >= self.mailbox.batch_size:
                    steps.append(_Step(tuple(batch)))
                    batch = []
                continue
            if batch:
                steps.append(_Step(tuple(batch)))
                batch = []
            steps.append(_Step((uid,)) if failures < MAX_FETCH_ATTEMPTS else _Step(
                (uid,), f"the server failed to return it {failures} times (no content, or "
                        "the connection dropped while fetching it)"))
        if batch:
            steps.append(_Step(tuple(batch)))
        return steps

    async def _store(self, session: ImapSession, uids: Sequence[int], bodies: dict[int, bytes],
                     report: PassReport, actions: ActionQueue) -> bool:
        """Store fetched mail in one transaction; advance the cursor over what is in, and hand
        it to ``actions``; save the cursor when the last save is `SAVE_EVERY_S` old.

        Returns False when a UID came back empty: the cursor stops before it
        and the next pass asks again.
        """
        cursor = self._cursor()
        missing = [uid for uid in uids if uid not in bodies]
        # Only mail below the first missing one: the cursor stops there, and a mail set aside
        # above it would carry the cursor past it. The rest comes again next pass.
        present = [uid for uid in uids if uid in bodies and (not missing or uid < missing[0])]
        self._count_fetch_failures(missing)
        if self._fetch_failures:
            for uid in present:
                self._fetch_failures.pop(uid, None)
        now = self.runtime.clock.now()
        messages = [RawMessage(Envelope(source=self.name, peer=session.where,
                                        mailbox=self.identity, uidvalidity=cursor.uidvalidity,
                                        uid=uid), bodies[uid], now) for uid in present]
        stored = await self._accept(session, messages, report)
        limit = (missing[0] - 1) if missing else uids[-1]
        cursor.last_uid = max(cursor.last_uid, limit)
        if missing:
            log.warning("imap.fetch_incomplete", missing=len(missing), first_missing=missing[0])
        await actions.submit(stored)
        if time.monotonic() - self._saved_at >= SAVE_EVERY_S:
            await self._save(cursor)
        return not missing

    async def _accept(self, session: ImapSession, messages: Sequence[RawMessage],
                      report: PassReport) -> list[int]:
        """accept_many for the batch; a batch the database rejects is retried mail by mail."""
        if not messages:
            return []
        try:
            answers = await self.runtime.store.accept_many(messages)
        except StorageUnavailable:
            raise
        except Exception as error:
            if is_unavailable(error):
                raise StorageUnavailable(str(error)) from error
            if len(messages) == 1:
                uid = messages[0].envelope.uid
                assert uid is not None
                log.exception("imap.store_refused", uid=uid)
                await self._set_aside(session, uid, f"the database refused it: {error}", report)
                return []
            kept: list[int] = []
            for message in messages:
                kept.extend(await self._accept(session, [message], report))
            return kept
        self._count(answers, report)
        log.debug("imap.batch_stored", count=len(messages),
                  new=sum(not answer.duplicate for answer in answers),
                  first_uid=messages[0].envelope.uid, last_uid=messages[-1].envelope.uid)
        return [uid for uid in (m.envelope.uid for m in messages) if uid is not None]

    @staticmethod
    def _count(answers: Sequence[Accepted], report: PassReport) -> None:
        for answer in answers:
            if answer.duplicate:
                report.duplicates += 1
            else:
                report.stored += 1

    async def _set_aside(self, session: ImapSession, uid: int, reason: str,
                         report: PassReport) -> None:
        """A mail alertd will not take in: to `failed_folder`, or parked where it is."""
        cursor = self._cursor()
        folder = self.mailbox.failed_folder
        if folder:
            await session.move([uid], folder)
        else:
            cursor.parked.add(uid)
        cursor.last_uid = max(cursor.last_uid, uid)
        self._fetch_failures.pop(uid, None)
        report.set_aside += 1
        log.error("imap.mail_set_aside", uid=uid, reason=reason,
                  moved_to=folder, left_in=None if folder else self.mailbox.folder)
        if not folder:
            await self._save(cursor)

    async def _act(self, session: ImapSession, uids: Sequence[int]) -> None:
        """The configured server action, for mail the inbox has committed."""
        if self.mailbox.after == "move":
            assert self.mailbox.move_to is not None
            await session.move(uids, self.mailbox.move_to)
        elif self.mailbox.after == "flag":
            await session.flag_seen(uids)
        else:
            await session.delete(uids)

    # -- the cursor ---------------------------------------------------------------

    def _cursor(self) -> Cursor:
        assert self.cursor is not None, "the cursor is loaded when the session starts"
        return self.cursor

    async def _save(self, cursor: Cursor) -> None:
        async with (self.runtime.store.gate.storing(), storage_errors(),
                    self.runtime.sessions.begin() as db):
            await save_cursor(db, cursor, self.runtime.clock.now())
        self._saved_at = time.monotonic()
