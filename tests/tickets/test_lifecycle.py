"""The alert lifecycle through the real pipeline, on a SQLite file and on PostgreSQL (R4.2, R4.3).

Each test delivers Automate mails in both shapes of automate-api.md §4.1 to
the inbox, drains it with a real worker, and reads the tickets back.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete

from alertd.db.tables import Message, Ticket, TicketEvent
from alertd.runtime import Runtime
from tests.helpers import deliver, deliver_and_process, messages, process, ticket, tickets
from tests.mails import SHAPES, automate_monitor, automate_tagged

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


@pytest.mark.parametrize("shape", ["tagged", "monitor"])
async def test_failed_failed_success_is_one_ticket_with_two_occurrences_resolved(
    runtime: Runtime, shape: str
) -> None:
    """FAILED, FAILED again, then SUCCESS: one ticket, two occurrences, resolved."""
    make = SHAPES[shape]
    first = await deliver_and_process(runtime, make("FAILED", date=T0))
    second = await deliver_and_process(runtime, make("FAILED", date=T0 + 10 * MIN))
    third = await deliver_and_process(runtime, make("SUCCESS", date=T0 + 20 * MIN))

    assert [first["action"], second["action"], third["action"]] == [
        "new_ticket", "occurrence", "resolved"]
    [only] = await tickets(runtime)
    assert only["status"] == "resolved"
    assert only["occurrences"] == 2
    assert only["first_seen"] == iso(T0)
    assert only["last_seen"] == iso(T0 + 20 * MIN)
    assert {first["ticket_id"], second["ticket_id"], third["ticket_id"]} == {only["id"]}
    history = (await ticket(runtime, only["id"]))["history"]
    assert [event["kind"] for event in history] == ["opened", "occurrence", "resolved"]


async def test_two_monitors_on_one_computer_are_two_tickets(runtime: Runtime) -> None:
    """The key is asset + monitor + field: another monitor on the same computer is apart."""
    await deliver_and_process(runtime, automate_tagged("FAILED", date=T0))
    await deliver_and_process(runtime, automate_tagged(
        "FAILED", date=T0, monitor="Memory - Available", field="RAM"))
    await deliver_and_process(runtime, automate_tagged(
        "FAILED", date=T0, field="D:"))
    assert len(await tickets(runtime, "open")) == 3


async def test_one_monitor_on_two_computers_is_two_tickets(runtime: Runtime) -> None:
    """The same monitor failing on two computers is two tickets, in both shapes."""
    await deliver_and_process(runtime, automate_tagged("FAILED", date=T0, computer_id=1))
    await deliver_and_process(runtime, automate_tagged(
        "FAILED", date=T0, computer_id=2, host="NW-FS02"))
    await deliver_and_process(runtime, automate_monitor("FAILED", date=T0, host="WS-A"))
    await deliver_and_process(runtime, automate_monitor("FAILED", date=T0, host="WS-B"))
    assert len(await tickets(runtime, "open")) == 4


@pytest.mark.parametrize("shape", ["tagged", "monitor"])
async def test_flapping_reopens_within_the_window(runtime: Runtime, shape: str) -> None:
    """A problem 10 minutes after the recovery reopens the ticket instead of opening another."""
    make = SHAPES[shape]
    await deliver_and_process(runtime, make("FAILED", date=T0))
    await deliver_and_process(runtime, make("SUCCESS", date=T0 + 5 * MIN))
    again = await deliver_and_process(runtime, make("FAILED", date=T0 + 15 * MIN))

    assert again["action"] == "reopened"
    [only] = await tickets(runtime)
    assert only["status"] == "open"
    assert only["occurrences"] == 2
    kinds = [e["kind"] for e in (await ticket(runtime, only["id"]))["history"]]
    assert kinds == ["opened", "resolved", "reopened"]


async def test_problem_after_the_window_opens_a_new_ticket(runtime: Runtime) -> None:
    """31 minutes after the recovery (window 30m), a problem is a new incident."""
    await deliver_and_process(runtime, automate_tagged("FAILED", date=T0))
    await deliver_and_process(runtime, automate_tagged("SUCCESS", date=T0 + 5 * MIN))
    later = await deliver_and_process(runtime, automate_tagged("FAILED", date=T0 + 36 * MIN))
    assert later["action"] == "new_ticket"
    assert [t["status"] for t in await tickets(runtime)] == ["resolved", "open"]


async def test_one_batch_opening_the_same_key_twice_keeps_each_ticket_apart(
    runtime: Runtime,
) -> None:
    """Opened, recovered and opened again past the window, all in one batch: the two
    tickets of one key get their own ids, messages and history, as mail by mail would."""
    ids = [await deliver(runtime, mail) for mail in (
        automate_tagged("FAILED", date=T0),
        automate_tagged("FAILED", date=T0, monitor="Memory - Available", field="RAM"),
        automate_tagged("SUCCESS", date=T0 + 5 * MIN),
        automate_tagged("FAILED", date=T0 + 36 * MIN),
        automate_tagged("FAILED", date=T0 + 37 * MIN, computer_id=2, host="NW-FS02"),
    )]
    report = await process(runtime)
    assert report.processed == 5

    by_id = {row["id"]: row for row in await messages(runtime)}
    done = [by_id[i] for i in ids]
    assert [m["action"] for m in done] == [
        "new_ticket", "new_ticket", "resolved", "new_ticket", "new_ticket"]
    first, memory, recovery, again, other = (m["ticket_id"] for m in done)
    assert recovery == first
    assert len({first, memory, again, other}) == 4
    listed = {t["id"]: t for t in await tickets(runtime)}
    assert listed[first]["status"] == "resolved"
    assert listed[again]["status"] == "open"
    assert listed[again]["dedup_key"] == listed[first]["dedup_key"]
    assert listed[again]["first_seen"] == iso(T0 + 36 * MIN)
    assert listed[memory]["dedup_key"] != listed[first]["dedup_key"]
    assert [e["kind"] for e in (await ticket(runtime, first))["history"]] == [
        "opened", "resolved"]
    assert [e["kind"] for e in (await ticket(runtime, again))["history"]] == ["opened"]


@pytest.mark.parametrize("shape", ["tagged", "monitor"])
async def test_stale_recovery_does_not_close(runtime: Runtime, shape: str) -> None:
    """A recovery dated before the latest problem (it sat in a queue) leaves the ticket open."""
    make = SHAPES[shape]
    await deliver_and_process(runtime, make("FAILED", date=T0))
    await deliver_and_process(runtime, make("FAILED", date=T0 + 10 * MIN))
    stale = await deliver_and_process(runtime, make("SUCCESS", date=T0 + 5 * MIN))

    assert stale["action"] == "stale_recovery"
    assert stale["state"] == "done"
    assert "stale recovery" in stale["reason"]
    [only] = await tickets(runtime)
    assert only["status"] == "open"
    kinds = [e["kind"] for e in (await ticket(runtime, only["id"]))["history"]]
    assert kinds == ["opened", "occurrence", "stale_recovery"]


@pytest.mark.parametrize("shape", ["tagged", "monitor"])
async def test_orphan_recovery_is_recorded_without_a_ticket(runtime: Runtime, shape: str) -> None:
    """A recovery with nothing open is recorded on the message; no ticket appears."""
    orphan = await deliver_and_process(runtime, SHAPES[shape]("SUCCESS", date=T0))
    assert orphan["state"] == "done"
    assert orphan["action"] == "recovery_without_ticket"
    assert orphan["ticket_id"] is None
    assert await tickets(runtime) == []


async def test_a_closed_ticket_is_final(runtime: Runtime) -> None:
    """After a person closes a ticket, the next problem opens a new one even within the window."""
    first = await deliver_and_process(runtime, automate_tagged("FAILED", date=T0))
    async with runtime.sessions.begin() as session:
        await runtime.tickets.close(session, first["ticket_id"], actor="test")
    again = await deliver_and_process(runtime, automate_tagged("FAILED", date=T0 + MIN))
    assert again["action"] == "new_ticket"
    assert again["ticket_id"] != first["ticket_id"]
    assert [t["status"] for t in await tickets(runtime)] == ["closed", "open"]


async def test_time_zones_are_compared_as_instants(runtime: Runtime) -> None:
    """09:30 +0000 is after 10:00 +0100: that recovery resolves, it is not stale."""
    await deliver_and_process(runtime, automate_tagged(
        "FAILED", date="Mon, 02 Nov 2026 10:00:00 +0100"))
    recovery = await deliver_and_process(runtime, automate_tagged(
        "SUCCESS", date="Mon, 02 Nov 2026 09:30:00 +0000"))
    assert recovery["action"] == "resolved"


async def test_a_date_too_far_in_the_future_falls_back_to_the_received_time(
    runtime: Runtime,
) -> None:
    """A Date hours past arrival (a wrong clock) is not believed; old Dates are."""
    received = T0 + 60 * MIN
    future = await deliver_and_process(
        runtime, automate_tagged("FAILED", date=received + timedelta(hours=5)),
        received_at=received)
    assert future["alert_time"] == iso(received)
    old = await deliver_and_process(
        runtime, automate_tagged("FAILED", date=T0 - timedelta(days=30), field="D:"),
        received_at=received)
    assert old["alert_time"] == iso(T0 - timedelta(days=30))
    assert old["state"] == "done"


async def test_a_missing_date_uses_the_received_time(runtime: Runtime) -> None:
    """Without a Date header the alert happened when alertd received it."""
    row = await deliver_and_process(runtime, automate_tagged("FAILED", date=None),
                                    received_at=T0)
    assert row["alert_time"] == iso(T0)


SEQUENCE = [
    ("FAILED", 0), ("FAILED", 5), ("SUCCESS", 10), ("FAILED", 20), ("SUCCESS", 60),
    ("FAILED", 120), ("SUCCESS", 115),
]


def _shape_of_tickets(rows: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return [(r["status"], r["occurrences"], r["first_seen"], r["last_seen"], r["summary"])
            for r in rows]


async def _wipe(runtime: Runtime) -> None:
    async with runtime.sessions.begin() as session:
        for table in (TicketEvent, Message, Ticket):
            await session.execute(delete(table))


async def test_replaying_saved_mail_gives_the_same_tickets_as_live_arrival(
    runtime: Runtime,
) -> None:
    """Live (each mail processed as it arrives) and replay (all at once, a week later) agree."""
    mails = [automate_tagged(status, date=T0 + minutes * MIN, message_id=f"seq{i}")
             for i, (status, minutes) in enumerate(SEQUENCE)]
    for data, (_, minutes) in zip(mails, SEQUENCE, strict=True):
        await deliver_and_process(runtime, data, received_at=T0 + minutes * MIN + 2 * MIN)
    live = _shape_of_tickets(await tickets(runtime))
    live_actions = [m["action"] for m in await messages(runtime)]

    await _wipe(runtime)
    for data in mails:
        await deliver(runtime, data, received_at=T0 + timedelta(days=7))
    await process(runtime)

    assert _shape_of_tickets(await tickets(runtime)) == live
    assert [m["action"] for m in await messages(runtime)] == live_actions
    assert live_actions == ["new_ticket", "occurrence", "resolved", "reopened", "resolved",
                            "new_ticket", "stale_recovery"]


async def test_a_storm_processed_by_concurrent_workers_makes_one_ticket(
    runtime: Runtime,
) -> None:
    """Dedup holds when several workers race on one key: one ticket, every mail counted once."""
    count = 120
    for i in range(count):
        await deliver(runtime, automate_tagged("FAILED", date=T0 + i * timedelta(seconds=1),
                                               message_id=f"storm{i}"))
    workers = [runtime.worker(index) for index in range(4)]
    reports = await asyncio.gather(*(worker.drain() for worker in workers))

    assert sum(report.processed for report in reports) == count
    [only] = await tickets(runtime)
    assert only["occurrences"] == count
    actions = [m["action"] for m in await messages(runtime)]
    assert actions.count("new_ticket") == 1
    assert actions.count("occurrence") == count - 1


@pytest.mark.parametrize(
    ("extra", "mail_from", "reason"),
    [
        ("Auto-Submitted: auto-replied", None, "auto-reply (Auto-Submitted: auto-replied)"),
        ("", "", "bounce (null envelope sender)"),
        ("X-Failed-Recipients: alerts@helpdesk.example.net", None,
         "bounce (X-Failed-Recipients)"),
    ],
)
async def test_auto_replies_and_bounces_are_recorded_not_ticketed(
    runtime: Runtime, extra: str, mail_from: str | None, reason: str
) -> None:
    """Noise from the Automate sender quoting a real alert is stored, ignored, not ticketed."""
    row = await deliver_and_process(
        runtime, automate_tagged("FAILED", date=T0, extra_headers=extra), mail_from=mail_from)
    assert (row["state"], row["action"], row["reason"]) == ("ignored", "none", reason)
    assert row["ticket_id"] is None
    assert await tickets(runtime) == []


@pytest.mark.parametrize("shape", ["tagged", "monitor"])
async def test_a_recovery_processed_before_its_problem_leaves_no_open_ticket(
    runtime: Runtime, shape: str
) -> None:
    """Another worker, a retry or a slow queue can let the recovery through first: the
    older problem then opens its ticket already resolved, as in-order arrival would."""
    make = SHAPES[shape]
    early = await deliver_and_process(runtime, make("SUCCESS", date=T0 + 5 * MIN))
    late = await deliver_and_process(runtime, make("FAILED", date=T0))
    assert early["action"] == "recovery_without_ticket"
    assert late["action"] == "new_ticket"
    [only] = await tickets(runtime)
    assert only["status"] == "resolved"
    kinds = [e["kind"] for e in (await ticket(runtime, only["id"]))["history"]]
    assert kinds == ["opened", "resolved"]
    newer = await deliver_and_process(runtime, make("FAILED", date=T0 + 10 * MIN))
    assert newer["action"] == "reopened"
