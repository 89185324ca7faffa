"""Ticket Finish scripts (R5.5) against the local Automate over real HTTP, on SQLite and
PostgreSQL: a recovery mail queues exactly one launch with the expected body, outages and
throttling delay it without losing it (across a restart too), refusals show on the ticket,
a lost answer is verified through ScriptHistory and never launched again on a guess, and
each ticket's launches run in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from alertd.automate.client import AutomateClient
from alertd.clock import FixedClock
from alertd.db.tables import OutboxEntry
from alertd.metrics import OUTBOX_FAILURES
from alertd.outbox.store import list_entries
from alertd.outbox.worker import OutboxWorker
from alertd.runtime import Runtime, open_runtime
from alertd.settings import Settings
from alertd.testing import automate_data as build
from alertd.testing.automate_server import AutomateApp
from tests.automate.contract import check_all, schema_errors
from tests.helpers import deliver, process, ticket, tickets
from tests.mails import automate_tagged

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
AUTOMATE_TICKET = 88231
COMPUTER = 2201

FINISH_WITH_COMMENT: dict[str, Any] = {
    "id": 6402, "target": "ticket",
    "parameters": {"TicketID": "{automate_ticket_id}",
                   "FinishBody": "Resolved by alertd ticket {ticket_id}: {resolution}"},
}


def finish(*scripts: dict[str, Any], **options: Any) -> dict[str, Any]:
    """An `automate.finish` section with short waits, so tests move the clock, not sleep."""
    return {"scripts": list(scripts) or [FINISH_WITH_COMMENT], "retry_backoff": "10s",
            "retry_backoff_max": "10m", "verify_interval": "1m", "verify_checks": 3,
            "follow_up_interval": "1m", "follow_up_for": "10m", **options}


@pytest.fixture
def automate_ticket(automate_state: AutomateApp) -> int:
    """An open Automate ticket on NW-FS01, as a monitor would have made it."""
    automate_state.data.add_ticket(build.ticket(
        AUTOMATE_TICKET, "FAILED - Disk - Free Space C: - Northwind Traders\\NW-FS01 [CWA:2201]",
        client_id=41, client_name="Northwind Traders", location_id=51,
        location_name="Head Office", computer_id=COMPUTER, computer_name="NW-FS01"))
    return AUTOMATE_TICKET


class Daemon:
    """alertd's services and an outbox worker on one database, on a clock tests move."""

    def __init__(self, runtime: Runtime, worker: OutboxWorker, clock: FixedClock) -> None:
        self.runtime = runtime
        self.worker = worker
        self.clock = clock

    def later(self, delta: timedelta) -> None:
        """Move the clock on."""
        self.clock.set(self.clock.now() + delta)

    async def entries(self) -> list[dict[str, Any]]:
        """Outbox entries, oldest first."""
        async with self.runtime.readers() as session:
            return sorted(await list_entries(session), key=lambda e: e["id"])

    async def due_at(self, entry_id: int) -> datetime:
        """When an entry is next due."""
        async with self.runtime.readers() as session:
            return (await session.execute(
                select(OutboxEntry.due_at).where(OutboxEntry.id == entry_id))).scalar_one()


@pytest.fixture
def daemon(import_settings: Callable[..., Settings], client_for: Callable[..., AutomateClient],
           ) -> Callable[..., Any]:
    """Opens a Daemon (again, for a restart) on this test's database."""

    @asynccontextmanager
    async def start(clock: FixedClock | None = None, **automate: Any) -> AsyncIterator[Daemon]:
        settings = import_settings(**{"finish": finish(), **automate})
        assert settings.automate is not None
        clock = clock or FixedClock(T0)
        async with open_runtime(settings, clock=clock) as runtime, \
                client_for(settings.automate) as client:
            worker = OutboxWorker(store=runtime.outbox, client=client,
                                  settings=settings.automate.finish, clock=clock)
            yield Daemon(runtime, worker, clock)

    return start


async def problem_and_recovery(runtime: Runtime, *, ticket_line: bool = True) -> int:
    """A tagged problem mail naming the Automate ticket, then its recovery; returns the ticket."""
    extra = f"TicketID: {AUTOMATE_TICKET}" if ticket_line else None
    for status, minute in (("FAILED", 0), ("SUCCESS", 5)):
        mail = automate_tagged(status, date=T0 + timedelta(minutes=minute))
        if extra is not None:
            mail = mail.replace(b"Field: C:", f"{extra}\r\nField: C:".encode())
        await deliver(runtime, mail)
    await process(runtime)
    (only,) = await tickets(runtime)
    return int(only["id"])


def successful(state: AutomateApp) -> list[Any]:
    """Launches the server answered with 200 or carried out (a lost answer counts)."""
    return [launch for launch in state.launches if launch.status == 200 or not launch.answered]


async def test_a_recovery_mail_resolves_the_ticket_and_launches_exactly_one_finish_script(
    daemon: Callable[..., Any], automate_state: AutomateApp, automate_ticket: int,
) -> None:
    """Problem then recovery: the ticket is resolved, one outbox entry is queued in the same
    transaction, and one launch reaches Automate with the ScheduleScriptBatchRequest body the
    configuration describes; Automate then shows its ticket finished. Draining again sends
    nothing more."""
    async with daemon() as d:
        ticket_id = await problem_and_recovery(d.runtime)
        shown = await ticket(d.runtime, ticket_id)
        assert shown["status"] == "resolved"
        assert [e["state"] for e in await d.entries()] == ["pending"]
        assert automate_state.launches == []

        report = await d.worker.drain()
        assert report.by_result == {"launched": 1}
        (launch,) = automate_state.launches
        body = launch.body
        assert {k: body[k] for k in ("EntityType", "EntityIds", "ScriptId", "Parameters")} == {
            "EntityType": "Ticket", "EntityIds": [AUTOMATE_TICKET], "ScriptId": 6402,
            "Parameters": [
                {"Key": "TicketID", "Value": str(AUTOMATE_TICKET)},
                {"Key": "FinishBody", "Value": f"Resolved by alertd ticket {ticket_id}: recovered"},
            ],
        }
        assert schema_errors(
            "Automate.Api.Domain.Contracts.BatchScripts.ScheduleScriptBatchRequest", body) == []
        assert check_all([e for e in automate_state.exchanges if "batch" in e.path.lower()])
        assert launch.reference == f"alertd-outbox-{(await d.entries())[0]['id']}"
        assert automate_state.is_finished(AUTOMATE_TICKET)
        assert [e["state"] for e in await d.entries()] == ["done"]
        kinds = [h["kind"] for h in (await ticket(d.runtime, ticket_id))["history"]]
        assert "finish_queued" in kinds
        assert "finish_launched" in kinds

        d.later(timedelta(hours=1))
        assert (await d.worker.drain()).handled == 0
        assert len(automate_state.launches) == 1


async def test_an_outage_then_throttling_delays_the_launch_across_a_restart_without_losing_it(
    daemon: Callable[..., Any], automate_state: AutomateApp, automate_ticket: int,
) -> None:
    """Automate answers 500 twice, then 429 (Retry-After 7) twice: each time the entry waits
    (the 429 exactly as long as asked), nothing is launched, the daemon is restarted in the
    middle, and the launch finally goes out once."""
    faults = automate_state.faults
    faults.only_path = "batch/scriptexecute"
    faults.fail_next = 2
    clock = FixedClock(T0)
    async with daemon(clock) as d:
        ticket_id = await problem_and_recovery(d.runtime)
        (entry,) = await d.entries()
        assert (await d.worker.drain()).by_result == {"retry_later": 1}
        first_wait = await d.due_at(entry["id"]) - clock.now()
        assert timedelta(seconds=5) <= first_wait <= timedelta(seconds=10)
        assert (await d.worker.drain()).handled == 0, "not due yet"
    # The daemon stops and starts again on the same database.
    async with daemon(clock) as d:
        d.later(timedelta(minutes=1))
        assert (await d.worker.drain()).by_result == {"retry_later": 1}
        faults.throttle_next = 2
        faults.retry_after = "7"
        d.later(timedelta(minutes=1))
        assert (await d.worker.drain()).by_result == {"retry_later": 1}
        assert await d.due_at(entry["id"]) - clock.now() == timedelta(seconds=7)
        d.later(timedelta(seconds=7))
        assert (await d.worker.drain()).by_result == {"retry_later": 1}
        assert successful(automate_state) == []
        d.later(timedelta(seconds=7))
        assert (await d.worker.drain()).by_result == {"launched": 1}
        (done,) = await d.entries()
        assert done["state"] == "done"
        assert done["attempts"] == 4
    statuses = [launch.status for launch in automate_state.launches]
    assert statuses == [500, 500, 429, 429, 200]
    assert len(successful(automate_state)) == 1
    assert automate_state.is_finished(AUTOMATE_TICKET)
    assert ticket_id


async def test_a_refused_launch_fails_the_entry_and_shows_on_the_ticket(
    daemon: Callable[..., Any], automate_state: AutomateApp, automate_ticket: int,
) -> None:
    """Automate answers ContainsUnsuccessfulResults: the entry fails at once (no retry), the
    ticket's history carries Automate's reason, and the failure counter moves."""
    automate_state.refused_script_ids = {6402}
    before = OUTBOX_FAILURES.labels("finish_script", "failed")._value.get()
    async with daemon() as d:
        ticket_id = await problem_and_recovery(d.runtime)
        assert (await d.worker.drain()).by_result == {"failed": 1}
        (entry,) = await d.entries()
        assert entry["state"] == "failed"
        assert "Automate did not run it" in entry["last_error"]
        history = (await ticket(d.runtime, ticket_id))["history"]
        failed = [h for h in history if h["kind"] == "finish_failed"]
        assert len(failed) == 1
        assert "Ticket Finish" in failed[0]["detail"] or "6402" in failed[0]["detail"]
        d.later(timedelta(hours=2))
        assert (await d.worker.drain()).handled == 0
    assert len(automate_state.launches) == 1
    assert not automate_state.is_finished(AUTOMATE_TICKET)
    assert OUTBOX_FAILURES.labels("finish_script", "failed")._value.get() == before + 1


async def test_a_lost_answer_is_confirmed_through_script_history_and_never_sent_again(
    daemon: Callable[..., Any], automate_state: AutomateApp, automate_ticket: int,
) -> None:
    """The launch takes effect but its answer never comes (client timeout): the entry is
    verified, ScriptHistory shows the run, and it is done; the launch went out once."""
    automate_state.faults.lose_answer_next = 1
    automate_state.faults.lose_answer_seconds = 3.0
    async with daemon(timeout="300ms") as d:
        await problem_and_recovery(d.runtime)
        assert (await d.worker.drain()).by_result == {"answer_lost": 1}
        (entry,) = await d.entries()
        assert entry["state"] == "verifying"
        d.later(timedelta(minutes=1))
        assert (await d.worker.drain()).by_result == {"verified": 1}
        (entry,) = await d.entries()
        assert entry["state"] == "done"
        d.later(timedelta(hours=1))
        await d.worker.drain()
    launches = automate_state.launches_for(f"alertd-outbox-{entry['id']}")
    assert len(launches) == 1
    assert launches[0].answered is False


async def test_a_lost_answer_that_cannot_be_confirmed_waits_for_an_admin(
    daemon: Callable[..., Any], automate_state: AutomateApp, automate_ticket: int,
) -> None:
    """No run shows up in ScriptHistory (the launch was lost before Automate acted, from
    alertd's point of view indistinguishable): after the configured looks the entry is
    `unconfirmed` and is not launched again until an admin retries it."""
    automate_state.faults.lose_answer_next = 1
    automate_state.faults.lose_answer_seconds = 3.0
    async with daemon(timeout="300ms") as d:
        ticket_id = await problem_and_recovery(d.runtime)
        assert (await d.worker.drain()).by_result == {"answer_lost": 1}
        automate_state.data.script_history.clear()  # as if the run never happened
        for _ in range(3):
            d.later(timedelta(minutes=1))
            await d.worker.drain()
        (entry,) = await d.entries()
        assert entry["state"] == "unconfirmed"
        assert f"alertd outbox retry {entry['id']}" in entry["last_error"]
        history = (await ticket(d.runtime, ticket_id))["history"]
        assert any(h["kind"] == "finish_unconfirmed" for h in history)
        d.later(timedelta(hours=5))
        assert (await d.worker.drain()).handled == 0
        assert len(automate_state.launches) == 1

        await d.runtime.outbox.retry(entry["id"], actor="admin")
        assert (await d.worker.drain()).by_result == {"launched": 1}
    assert len(automate_state.launches) == 2


async def test_a_launch_cut_off_by_a_crash_is_verified_not_repeated(
    daemon: Callable[..., Any], automate_state: AutomateApp, automate_ticket: int,
) -> None:
    """An instance dies after marking an entry `sending`: once its lease passes, another
    worker treats the launch as possibly sent and checks ScriptHistory instead of sending."""
    clock = FixedClock(T0)
    async with daemon(clock) as d:
        await problem_and_recovery(d.runtime)
        (claimed,) = await d.runtime.outbox.claim("dead-instance", limit=5,
                                                  lease=timedelta(minutes=5))
        await d.runtime.outbox.mark_sending(claimed, "dead-instance", script_id=6402,
                                            history_after=0)
        assert (await d.worker.drain()).handled == 0, "the dead instance's lease still runs"
        d.later(timedelta(minutes=6))
        assert (await d.worker.drain()).by_result == {"check_again": 1}
        (entry,) = await d.entries()
        assert entry["state"] == "verifying"
    assert automate_state.launches == []


async def test_script_history_confirms_a_lost_launch_run_by_name(
    daemon: Callable[..., Any], automate_state: AutomateApp, automate_ticket: int,
) -> None:
    """A script configured by name is found through `GET /Scripts`; an unknown name fails
    the entry with a message pointing at `alertd automate scripts`."""
    by_name = {"name": "Ticket Finish With Comment", "target": "ticket",
               "parameters": {"TicketID": "{automate_ticket_id}", "FinishBody": "{resolution}"}}
    unknown = {"name": "No Such Script", "target": "ticket",
               "parameters": {"TicketID": "{automate_ticket_id}"}}
    async with daemon(finish=finish(by_name, unknown)) as d:
        await problem_and_recovery(d.runtime)
        report = await d.worker.drain()
        assert report.by_result == {"launched": 1, "failed": 1}
        first, second = await d.entries()
        assert first["script_id"] == 6402
        assert first["state"] == "done"
        assert second["state"] == "failed"
        assert "alertd automate scripts" in second["last_error"]
    assert [launch.body["ScriptId"] for launch in automate_state.launches] == [6402]


async def test_a_ticket_without_the_needed_automate_id_records_why_nothing_runs(
    daemon: Callable[..., Any], automate_state: AutomateApp,
) -> None:
    """A mail that does not name an Automate ticket resolves its ticket; the ticket-aimed
    script is skipped with a reason on the history, and no entry is queued. A script aimed at
    the computer still runs, on the computer the alert names."""
    on_computer = {"id": 6401, "target": "computer",
                   "parameters": {"TicketID": "{ticket_id}"}}
    async with daemon(finish=finish(FINISH_WITH_COMMENT, on_computer)) as d:
        ticket_id = await problem_and_recovery(d.runtime, ticket_line=False)
        history = (await ticket(d.runtime, ticket_id))["history"]
        skipped = [h["detail"] for h in history if h["kind"] == "finish_skipped"]
        assert skipped == ["script 6402 needs an Automate ticket id; this ticket has none"]
        (entry,) = await d.entries()
        assert (entry["entity_type"], entry["entity_id"]) == ("Computer", COMPUTER)
        assert (await d.worker.drain()).by_result == {"launched": 1}
    (launch,) = automate_state.launches
    assert launch.body["EntityType"] == "Computer"
    assert launch.body["EntityIds"] == [COMPUTER]


async def test_a_followed_run_puts_its_outcome_on_the_ticket(
    daemon: Callable[..., Any], automate_state: AutomateApp, automate_ticket: int,
) -> None:
    """With follow_up, the entry waits for the run's Completed row in ScriptHistory and the
    ticket's history gets its state and message."""
    automate_state.history_delay = 60.0
    automate_state.script_states = {6402: "Failure"}
    followed = {**FINISH_WITH_COMMENT, "follow_up": True}
    async with daemon(finish=finish(followed)) as d:
        ticket_id = await problem_and_recovery(d.runtime)
        assert (await d.worker.drain()).by_result == {"launched": 1}
        (entry,) = await d.entries()
        assert entry["state"] == "following"
        d.later(timedelta(minutes=1))
        assert (await d.worker.drain()).by_result == {"check_again": 1}
        server_time = automate_state.now
        automate_state.now = lambda: server_time() + 120.0  # the run completes in Automate
        d.later(timedelta(minutes=1))
        assert (await d.worker.drain()).by_result == {"followed": 1}
        (entry,) = await d.entries()
        assert entry["state"] == "done"
        assert entry["outcome"].startswith("Failure")
        history = (await ticket(d.runtime, ticket_id))["history"]
        assert any(h["kind"] == "finish_outcome" and "Failure" in h["detail"]
                   for h in history)


async def test_each_tickets_launches_run_in_order(
    daemon: Callable[..., Any], automate_state: AutomateApp, automate_ticket: int,
) -> None:
    """A ticket resolved, reopened and resolved again has two entries; while the first waits
    out an outage the second is held back, and they go out first then second."""
    automate_state.faults.only_path = "batch/scriptexecute"
    automate_state.faults.fail_next = 1
    async with daemon() as d:
        ticket_id = await problem_and_recovery(d.runtime)
        for status, minute in (("FAILED", 10), ("SUCCESS", 15)):
            mail = automate_tagged(status, date=T0 + timedelta(minutes=minute))
            mail = mail.replace(b"Field: C:", f"TicketID: {AUTOMATE_TICKET}\r\nField: C:".encode())
            await deliver(d.runtime, mail)
        await process(d.runtime)
        first, second = await d.entries()
        assert first["ticket_id"] == second["ticket_id"] == ticket_id
        assert (await d.worker.drain()).by_result == {"retry_later": 1}
        assert (await d.entries())[1]["state"] == "pending"
        d.later(timedelta(minutes=5))
        assert (await d.worker.drain()).by_result == {"launched": 2}
    references = [launch.reference for launch in successful(automate_state)]
    assert references == [f"alertd-outbox-{first['id']}", f"alertd-outbox-{second['id']}"]


async def test_resolving_by_hand_queues_the_launch_with_the_technician(
    daemon: Callable[..., Any], automate_state: AutomateApp, automate_ticket: int,
) -> None:
    """A person resolving an open ticket queues the launch in the same transaction; the
    technician and note reach the script's parameters."""
    by_hand = {"id": 6402, "target": "ticket",
               "parameters": {"TicketID": "{automate_ticket_id}",
                              "FinishBody": "{technician}: {resolution}"}}
    async with daemon(finish=finish(by_hand)) as d:
        mail = automate_tagged("FAILED", date=T0).replace(
            b"Field: C:", f"TicketID: {AUTOMATE_TICKET}\r\nField: C:".encode())
        await deliver(d.runtime, mail)
        await process(d.runtime)
        (opened,) = await tickets(d.runtime)
        async with d.runtime.sessions.begin() as session:
            await d.runtime.tickets.resolve(session, opened["id"], note="disk cleaned",
                                            actor="alice")
        assert (await d.worker.drain()).by_result == {"launched": 1}
    (launch,) = automate_state.launches
    assert {"Key": "FinishBody", "Value": "alice: disk cleaned"} in launch.body["Parameters"]


async def test_two_instances_draining_together_launch_each_entry_once(
    daemon: Callable[..., Any], automate_state: AutomateApp, client_for: Callable[..., Any],
) -> None:
    """Two workers (as two instances would) drain twelve resolved tickets at the same time:
    every entry is launched exactly once, whichever worker claims it."""
    on_computer = {"id": 6401, "target": "computer", "parameters": {"TicketID": "{ticket_id}"}}
    async with daemon(finish=finish(on_computer)) as d:
        for number in range(12):
            for status, minute in (("FAILED", 0), ("SUCCESS", 2)):
                await deliver(d.runtime, automate_tagged(
                    status, date=T0 + timedelta(minutes=minute), monitor=f"Check {number}"))
        await process(d.runtime)
        entries = await d.entries()
        assert len(entries) == 12
        settings = d.runtime.settings.automate
        assert settings is not None
        async with client_for(settings) as other_client:
            other = OutboxWorker(store=d.runtime.outbox, client=other_client,
                                 settings=settings.finish, clock=d.clock, worker="other")
            reports = await asyncio.gather(d.worker.drain(), other.drain())
        assert sum(r.handled for r in reports) == 12
        assert {e["state"] for e in await d.entries()} == {"done"}
    references = sorted(launch.reference for launch in automate_state.launches)
    assert references == sorted(f"alertd-outbox-{e['id']}" for e in entries)
