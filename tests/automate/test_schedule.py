"""The in-daemon import (`automate.import.schedule`) as a supervisor component (R5.4, R6.1)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from alertd.automate.client import AutomateClient
from alertd.daemon.import_schedule import ImportScheduler, import_scheduler
from alertd.runtime import Runtime, open_runtime
from alertd.settings import Settings
from alertd.testing.automate_server import AutomateApp
from tests.automate.conftest import ENVIRON, Sleeps
from tests.automate.data import IMPORT
from tests.helpers import deliver_and_process, ticket
from tests.mails import automate_tagged

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


async def until(condition: Callable[[], bool], *, steps: int = 500) -> None:
    """Yield to the loop in short steps until ``condition`` holds (bounded)."""
    for _ in range(steps):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_no_schedule_means_no_component(automate_runtime: Runtime) -> None:
    """Without `schedule` the supervisor gets None; with it, a component named automate-import."""
    assert automate_runtime.settings.automate is not None
    async with AutomateClient(automate_runtime.settings.automate, environ=ENVIRON) as client:
        assert import_scheduler(automate_runtime, client) is None


async def test_the_component_imports_every_interval_links_tickets_and_stops_on_request(
    import_settings: Callable[..., Settings], automate_state: AutomateApp, sleeps: Sleeps,
) -> None:
    """It imports at once and again after the interval, links an unmatched ticket, and
    returns when `stopping` is set."""
    settings = import_settings(**{"import": {**IMPORT, "schedule": "50ms"}})
    assert settings.automate is not None
    async with open_runtime(settings) as runtime, \
            AutomateClient(settings.automate, sleep=sleeps, environ=ENVIRON) as client:
        row = await deliver_and_process(runtime, automate_tagged(
            "FAILED", date=T0, computer_id=2201, host="NW-FS01"))
        component = import_scheduler(runtime, client)
        assert isinstance(component, ImportScheduler)
        assert component.name == "automate-import"
        stopping = asyncio.Event()
        with structlog.testing.capture_logs() as events:
            task = asyncio.create_task(component.run(stopping))
            await until(lambda: component.runs >= 2)
            stopping.set()
            await asyncio.wait_for(task, timeout=10)
        linked = await ticket(runtime, row["ticket_id"])
    assert automate_state.calls["GET clients"] >= 2
    assert linked["matched_by"] == "computer_id"
    reports = [e for e in events if e["event"] == "automate.import.report"]
    assert reports
    assert reports[0]["workstations"] == "3c/0u/0=/0s/0f"


async def test_an_outage_is_logged_once_retried_with_backoff_and_its_end_logged(
    import_settings: Callable[..., Settings], automate_state: AutomateApp, sleeps: Sleeps,
) -> None:
    """While Automate answers 500, one `unavailable` line however many retries; one
    `recovered` line when an import works again."""
    settings = import_settings(retries=0, **{"import": {**IMPORT, "schedule": "1h"}})
    assert settings.automate is not None
    automate_state.faults.fail_next = 10_000
    async with open_runtime(settings) as runtime, \
            AutomateClient(settings.automate, sleep=sleeps, environ=ENVIRON) as client:
        component = ImportScheduler(runtime, client, interval=3600, retry_first=0.01,
                                    retry_max=0.02)
        stopping = asyncio.Event()
        with structlog.testing.capture_logs() as events:
            task = asyncio.create_task(component.run(stopping))
            await until(lambda: component.runs >= 3)
            automate_state.faults.fail_next = 0
            await until(lambda: any(e["event"] == "automate.import.recovered" for e in events))
            stopping.set()
            await asyncio.wait_for(task, timeout=10)
    names = [e["event"] for e in events if e["event"].startswith("automate.import.") and
             e["event"] not in ("automate.import.started", "automate.import.finished")]
    assert names.count("automate.import.unavailable") == 1
    assert names[-2:] == ["automate.import.recovered", "automate.import.report"]


async def test_a_configuration_problem_is_an_error_and_waits_the_long_back_off(
    import_settings: Callable[..., Settings], automate_state: AutomateApp, sleeps: Sleeps,
) -> None:
    """A refused password is logged as an error, not retried in a loop; stopping still works."""
    settings = import_settings(**{"import": {**IMPORT, "schedule": "50ms"}})
    assert settings.automate is not None
    async with open_runtime(settings) as runtime, \
            AutomateClient(settings.automate, sleep=sleeps,
                           environ={"ALERTD_TEST_AUTOMATE_PASSWORD": "wrong"}) as client:
        component = ImportScheduler(runtime, client, interval=0.05)
        stopping = asyncio.Event()
        with structlog.testing.capture_logs() as events:
            task = asyncio.create_task(component.run(stopping))
            await until(lambda: component.runs >= 1)
            for _ in range(10):
                await asyncio.sleep(0.01)
            stopping.set()
            await asyncio.wait_for(task, timeout=10)
    errors = [e for e in events if e["event"] == "automate.import.misconfigured"]
    assert len(errors) == 1
    assert errors[0]["log_level"] == "error"
    assert errors[0]["retry_in"] == 3600
    assert automate_state.logins == 1
