"""The closed loop in the real daemon: alert mail over SMTP, Ticket Finish launches through the
local Automate over HTTP, an outage across a restart of `alertd run`, and a refused launch
visible on the ticket, in the HTTP API and in `/metrics` (R5.5, R6.5, R6.7).
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from alertd.testing import automate_data as build
from alertd.testing.automate_server import AutomateApp, AutomateUser, serve
from tests.automate.conftest import PASSWORD, PASSWORD_ENV, automate_section
from tests.automate.data import small
from tests.daemon.harness import Daemon, free_port
from tests.mails import automate_tagged

T0 = datetime(2026, 11, 4, 7, 30, tzinfo=UTC)
TOKEN = "test-api-token-6f1d2c"
TOKEN_ENV = "ALERTD_TEST_API_TOKEN"
FINISH = {
    "scripts": [{"id": 6402, "target": "ticket",
                 "parameters": {"TicketID": "{automate_ticket_id}",
                                "FinishBody": "Resolved: {resolution}"}}],
    "retry_backoff": "200ms", "retry_backoff_max": "2s", "poll_interval": "200ms",
}


@contextmanager
def automate_in_thread(state: AutomateApp) -> Iterator[str]:
    """The local Automate on its own thread and event loop (the daemon runs as a child)."""
    started = threading.Event()
    stop = threading.Event()
    url: list[str] = []

    async def main() -> None:
        async with serve(state) as running:
            url.append(running.url)
            started.set()
            await asyncio.to_thread(stop.wait)

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    assert started.wait(30), "the local Automate did not start"
    try:
        yield url[0]
    finally:
        stop.set()
        thread.join(30)


def alert(status: str, minute: int, *, automate_ticket: int, monitor: str) -> bytes:
    """A tagged alert on NW-FS01 that names its Automate ticket."""
    mail = automate_tagged(status, date=T0 + timedelta(minutes=minute), monitor=monitor)
    return mail.replace(b"Field: C:", f"TicketID: {automate_ticket}\r\nField: C:".encode())


def get(daemon: Daemon, path: str, *, token: str | None = TOKEN) -> tuple[int, str]:
    """GET a path of the daemon's HTTP endpoint."""
    request = urllib.request.Request(f"http://127.0.0.1:{daemon.http_port}{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def metric(text: str, name: str, **labels: str) -> float | None:
    """One sample of a Prometheus text exposition."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        metric_name, _, rest = sample.partition("{")
        found = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if metric_name == name and found == wanted:
            return float(value)
    return None


def test_a_launch_delayed_by_an_outage_survives_a_restart_and_a_refusal_is_visible(
    start_daemon: Callable[..., Daemon], sqlite_url: str,
) -> None:
    """Automate refuses launches with 500s while the daemon resolves a ticket: the launch
    waits; the daemon is stopped and started again; Automate answers 429 (Retry-After) and
    then takes it: one launch, the Automate ticket finished. Then a refused launch shows on
    the ticket through the API and in /metrics."""
    state = AutomateApp(data=small(), users=[AutomateUser("alertd-integrator", PASSWORD)])
    for ticket_id in (88231, 88232):
        state.data.add_ticket(build.ticket(
            ticket_id, f"FAILED - ticket {ticket_id}", client_id=41,
            client_name="Northwind Traders", location_id=51, location_name="Head Office",
            computer_id=2201, computer_name="NW-FS01"))
    state.faults.only_path = "batch/scriptexecute"
    state.faults.fail_next = 1_000_000
    with automate_in_thread(state) as url:
        automate: dict[str, Any] = automate_section(url, finish=FINISH)
        automate.pop("import")
        daemon = start_daemon(
            sqlite_url, env={PASSWORD_ENV: PASSWORD, TOKEN_ENV: TOKEN}, automate=automate,
            http={"listen": f"127.0.0.1:{free_port()}", "token_env": TOKEN_ENV})
        daemon.send(alert("FAILED", 0, automate_ticket=88231, monitor="Disk C:"))
        daemon.send(alert("SUCCESS", 4, automate_ticket=88231, monitor="Disk C:"))
        daemon.wait_for("outbox.retry_later")
        assert daemon.stop() == 0
        assert [launch.status for launch in state.launches if launch.status == 200] == []

        state.faults.fail_next = 0
        state.faults.throttle_next = 2
        state.faults.retry_after = "1"
        daemon.start()
        daemon.wait_for("outbox.launched", timeout=30)
        statuses = [launch.status for launch in state.launches]
        assert statuses[-3:] == [429, 429, 200]
        assert statuses.count(200) == 1
        assert state.is_finished(88231)

        state.refused_script_ids = {6402}
        daemon.send(alert("FAILED", 10, automate_ticket=88232, monitor="CPU"))
        daemon.send(alert("SUCCESS", 12, automate_ticket=88232, monitor="CPU"))
        daemon.wait_for("outbox.failed", timeout=30)
        code, text = get(daemon, "/metrics", token=None)
        assert code == 200
        assert metric(text, "alertd_outbox_failures_total", action="finish_script",
                      state="failed") == 1.0
        assert metric(text, "alertd_outbox_entries", state="failed") == 1.0
        assert metric(text, "alertd_outbox_entries", state="done") == 1.0

        code, body = get(daemon, "/tickets?status=resolved")
        assert code == 200, body
        listed = json.loads(body)
        refused = next(t for t in (listed if isinstance(listed, list) else listed["items"])
                       if "CPU" in t["summary"])
        code, body = get(daemon, f"/tickets/{refused['id']}")
        assert code == 200, body
        shown = json.loads(body)
        assert [entry["state"] for entry in shown["outbox"]] == ["failed"]
        assert any(event["kind"] == "finish_failed" for event in shown["history"])
        assert daemon.stop() == 0
    assert sum(1 for launch in state.launches if launch.status == 200) == 2
