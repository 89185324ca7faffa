"""The durable inbox: idempotent accept, leases, completion only by the claim holder (R1.4)."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from alertd.clock import FixedClock
from alertd.domain import Envelope, RawMessage
from alertd.errors import NotFound
from alertd.inbox.store import Completion, InboxStore, RetryRefused
from alertd.runtime import Runtime
from tests.helpers import message, message_count
from tests.mails import automate_tagged

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


def raw(data: bytes, **envelope: object) -> RawMessage:
    return RawMessage(Envelope(source="test", **envelope), data, T0)  # type: ignore[arg-type]


async def test_the_same_mail_twice_is_stored_once(runtime: Runtime) -> None:
    """Same Message-ID and same content: the second accept returns the first id."""
    data = automate_tagged("FAILED", date=T0, message_id="same")
    first = await runtime.store.accept(raw(data))
    second = await runtime.store.accept(raw(data.replace(b"\r\n", b"\n")))
    assert (first.duplicate, second.duplicate) == (False, True)
    assert second.id == first.id
    assert await message_count(runtime) == 1


async def test_same_message_id_with_other_content_is_another_mail(runtime: Runtime) -> None:
    """Some senders reuse Message-IDs; different content is kept as a separate mail."""
    a = await runtime.store.accept(raw(automate_tagged("FAILED", date=T0, message_id="m")))
    b = await runtime.store.accept(raw(automate_tagged("SUCCESS", date=T0, message_id="m")))
    assert a.id != b.id
    assert not b.duplicate


async def test_the_same_mailbox_uid_is_stored_once(runtime: Runtime) -> None:
    """An IMAP message seen again under the same UIDVALIDITY and UID is a duplicate."""
    where = {"mailbox": "imap:alerts/INBOX", "uidvalidity": 7, "uid": 42}
    a = await runtime.store.accept(raw(automate_tagged("FAILED", date=T0), **where))
    b = await runtime.store.accept(raw(automate_tagged("FAILED", date=T0), **where))
    assert (b.id, b.duplicate) == (a.id, True)


async def test_accept_many_answers_in_order_and_stores_each_mail_once(runtime: Runtime) -> None:
    """A batch with a repeat inside it and one already stored: ids follow the input order."""
    old = automate_tagged("FAILED", date=T0, message_id="old")
    first = await runtime.store.accept(raw(old))
    new = automate_tagged("FAILED", date=T0, message_id="new")
    answers = await runtime.store.accept_many([raw(new), raw(old), raw(new)])
    assert [a.duplicate for a in answers] == [False, True, True]
    assert answers[1].id == first.id
    assert answers[2].id == answers[0].id
    assert await message_count(runtime) == 2


async def test_a_broken_header_block_and_nul_bytes_are_still_stored(runtime: Runtime) -> None:
    """Garbage is stored (and later failed with a reason), never refused at the door."""
    data = b"Message-ID: <a\x00b@\xff>\r\nSubject: \x00\r\n\r\n\x00\xfe"
    accepted = await runtime.store.accept(raw(data, mail_from="x\x00@y", rcpt_to=("r@\xe9",)))
    row = await message(runtime, accepted.id)
    assert row["state"] == "received"
    assert row["message_id"] == "<ab@\ufffd>"
    assert row["envelope"]["mail_from"] == "x@y"


async def test_a_lease_keeps_others_off_until_it_expires(runtime: Runtime) -> None:
    """Claimed rows are not handed out twice; after the lease runs out another worker may take
    them, and the first worker can no longer complete them."""
    clock = FixedClock(T0)
    store = InboxStore(runtime.sessions, clock)
    accepted = await store.accept(raw(automate_tagged("FAILED", date=T0)))
    [mine] = await store.claim("w1", limit=10, lease=LEASE, max_attempts=5)
    assert await store.claim("w2", limit=10, lease=LEASE, max_attempts=5) == []

    clock.set(T0 + LEASE + timedelta(seconds=1))
    [theirs] = await store.claim("w2", limit=10, lease=LEASE, max_attempts=5)
    assert theirs.id == mine.id == accepted.id
    assert theirs.attempts == 2
    async with runtime.sessions.begin() as session:
        assert await store.renew(session, [mine.id], "w1", LEASE) == set()
        assert await store.renew(session, [mine.id], "w2", LEASE) == {mine.id}
        await store.complete_many(session, [(mine.id, Completion(state="ignored", action="none",
                                                                 reason="test"))])
    assert (await message(runtime, mine.id))["state"] == "ignored"


async def test_a_message_that_keeps_killing_its_worker_is_given_up(runtime: Runtime) -> None:
    """After max attempts whose leases all expired, the message is failed for an admin."""
    clock = FixedClock(T0)
    store = InboxStore(runtime.sessions, clock)
    accepted = await store.accept(raw(automate_tagged("FAILED", date=T0)))
    for attempt in range(3):
        clock.set(T0 + attempt * (LEASE + timedelta(seconds=1)))
        assert len(await store.claim(f"w{attempt}", limit=1, lease=LEASE, max_attempts=3)) == 1
    clock.set(T0 + 3 * (LEASE + timedelta(seconds=1)))
    assert await store.claim("w9", limit=1, lease=LEASE, max_attempts=3) == []
    row = await message(runtime, accepted.id)
    assert row["state"] == "failed"
    assert row["reason"].startswith("gave up after 3 attempts")


async def test_retry_puts_failed_and_ignored_messages_back(runtime: Runtime) -> None:
    """`messages retry` re-queues failed or ignored mail; done mail and unknown ids are refused."""
    store = runtime.store
    accepted = await store.accept(raw(automate_tagged("FAILED", date=T0)))
    [claimed] = await store.claim("w", limit=1, lease=LEASE, max_attempts=5)
    await store.fail_many([(claimed.id, "parse: test", None)], "w")
    assert await store.retry() == [accepted.id]
    row = await message(runtime, accepted.id)
    assert (row["state"], row["attempts"]) == ("received", 0)

    [claimed] = await store.claim("w", limit=1, lease=LEASE, max_attempts=5)
    async with runtime.sessions.begin() as session:
        await store.complete_many(session, [(claimed.id, Completion(state="done",
                                                                    action="new_ticket"))])
    with pytest.raises(RetryRefused, match="is done"):
        await store.retry([accepted.id])
    with pytest.raises(NotFound):
        await store.retry([999])


async def test_mail_without_a_message_id_is_never_merged_by_content(runtime: Runtime) -> None:
    """Without a Message-ID, identical bytes can be a real repeat (FAILED, SUCCESS, FAILED
    again): each is kept; only mails that name themselves are de-duplicated by content."""
    data = b"From: device@example.net\r\nSubject: FAILED\r\n\r\nDisk full\r\n"
    first = await runtime.store.accept(raw(data))
    second = await runtime.store.accept(raw(data))
    assert not second.duplicate
    assert second.id != first.id


async def test_imap_uids_and_uidvalidity_up_to_2_to_the_32_are_stored(runtime: Runtime) -> None:
    """IMAP allows 32-bit unsigned UIDs; they fit and still identify the mail."""
    where = {"mailbox": "imap:alerts/INBOX", "uidvalidity": 4_294_967_295, "uid": 4_294_967_295}
    a = await runtime.store.accept(raw(automate_tagged("FAILED", date=T0), **where))
    b = await runtime.store.accept(raw(automate_tagged("SUCCESS", date=T0), **where))
    assert (b.id, b.duplicate) == (a.id, True)


async def test_recovery_at_start_takes_back_a_dead_process_rows_and_gives_up_on_crashers(
    runtime: Runtime,
) -> None:
    """Rows a dead process on this host left in processing go back to received at start-up;
    one that has used up its attempts (it keeps killing the daemon) is failed instead."""
    clock = FixedClock(T0)
    store = InboxStore(runtime.sessions, clock)
    first = await store.accept(raw(automate_tagged("FAILED", date=T0, message_id="a")))
    second = await store.accept(raw(automate_tagged("FAILED", date=T0, message_id="b")))
    dead = "testhost:999999:0"  # no such process
    assert len(await store.claim(dead, limit=2, lease=LEASE, max_attempts=5)) == 2
    for attempt in (1, 2):  # the first mail is taken twice more after its lease ran out
        clock.set(T0 + attempt * (LEASE + timedelta(seconds=1)))
        [again] = await store.claim(dead, limit=1, lease=LEASE, max_attempts=5)
        assert again.id == first.id
    assert await store.recover_abandoned("testhost", max_attempts=3) == 1
    rows = {row: await message(runtime, row) for row in (first.id, second.id)}
    assert rows[first.id]["state"] == "failed"
    assert rows[first.id]["reason"].startswith("gave up after 3 attempts")
    assert (rows[second.id]["state"], rows[second.id]["attempts"]) == ("received", 1)


async def test_mail_waits_out_a_briefly_locked_sqlite_database(runtime: Runtime) -> None:
    """Another process holding the write lock: accept waits (in the writer thread) and stores."""
    writer = runtime.store.sqlite_writer
    if writer is None:
        pytest.skip("SQLite only")
    blocker = sqlite3.connect(writer.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        accepting = asyncio.create_task(
            runtime.store.accept(raw(automate_tagged("FAILED", date=T0, message_id="locked"))))
        await asyncio.sleep(0.05)
        assert not accepting.done()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    accepted = await accepting
    assert not accepted.duplicate
    assert await message_count(runtime) == 1


async def test_a_caller_that_goes_away_does_not_stop_the_group_commit(runtime: Runtime) -> None:
    """One SMTP session dropped while its mail is being stored: the others still get answers."""
    tasks = [asyncio.create_task(runtime.store.accept(
        raw(automate_tagged("FAILED", date=T0, message_id=f"group-{n}")))) for n in range(5)]
    await asyncio.sleep(0)
    tasks[2].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[2], asyncio.CancelledError)
    answers = [r for r in results if not isinstance(r, BaseException)]
    assert len({a.id for a in answers}) == 4
    assert await message_count(runtime) >= 4
