"""`/metrics` and database outages: counts by status and state, counters where work happens.

SPEC R6.5 (metrics) and R6.7 (the API answers 503, never 500, while the database is down).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from alertd.daemon.reloader import RulesReloader
from alertd.daemon.systemd import SystemdNotifier
from alertd.rules.holder import RulesHolder
from alertd.runtime import Runtime
from alertd.settings import bundled_rules_dir
from tests.helpers import deliver_and_process
from tests.mails import automate_tagged
from tests.web.conftest import T0, TOKEN, ApiServer, api_settings

UNREACHABLE_PG = "postgresql://postgres@127.0.0.1:9/alertd"


async def scrape(http: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples /metrics serves, by name and labels."""
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def sample(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """A key into `scrape`'s result."""
    return (name, tuple(sorted(labels.items())))


async def test_metrics_count_tickets_by_status_and_messages_processed(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """Every status and outbox state is present (zero when absent); processing counts messages."""
    before = await scrape(client)
    processed = sample("alertd_messages_total", source="smtp:web-test", state="done")
    for computer in (1, 2, 3):
        await deliver_and_process(runtime, automate_tagged("FAILED", date=T0, computer_id=computer),
                                  source="smtp:web-test")
    resolve = await client.post("/tickets/1/resolve")
    assert resolve.status_code == 200

    after = await scrape(client)
    assert after[sample("alertd_tickets", status="open")] == 2
    assert after[sample("alertd_tickets", status="resolved")] == 1
    assert after[sample("alertd_tickets", status="closed")] == 0
    for state in ("pending", "sending", "verifying", "unconfirmed", "following", "done",
                  "failed"):
        assert sample("alertd_outbox_entries", state=state) in after
    assert after[processed] - before.get(processed, 0) == 3
    histogram = sample("alertd_message_processing_seconds_count")
    assert after[histogram] - before.get(histogram, 0) >= 3


async def test_rule_reloads_are_counted_and_a_refused_one_sets_the_gauge_to_0(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """A good reload counts a success (gauge 1); broken rules count a failure (gauge 0)."""
    rules = tmp_path / "rules"
    shutil.copytree(bundled_rules_dir(), rules)
    reloader = RulesReloader(RulesHolder.load(rules), asyncio.Event(), SystemdNotifier(None))
    start = await scrape(client)
    assert start[sample("alertd_rules_last_reload_success")] == 1

    await reloader.reload()
    good = await scrape(client)
    success = sample("alertd_rule_reloads_total", result="success")
    assert good[success] - start[success] == 1
    assert good[sample("alertd_rules_last_reload_success")] == 1

    (rules / "30-broken.yaml").write_text("senders: [\n")
    await reloader.reload()
    broken = await scrape(client)
    failure = sample("alertd_rule_reloads_total", result="failure")
    assert broken[failure] - start[failure] == 1
    assert broken[sample("alertd_rules_last_reload_success")] == 0


async def test_a_database_outage_is_503_and_metrics_still_render(
    serve: Callable[..., ApiServer], token_file: Path
) -> None:
    """With the database unreachable, API routes say so (503) and /metrics leaves out the counts."""
    server = serve(api_settings(UNREACHABLE_PG, token_file), check_schema=False)
    async with httpx.AsyncClient(base_url=server.url, timeout=60,
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        for method, path in [("GET", "/tickets"), ("GET", "/tickets/1"),
                             ("POST", "/tickets/1/resolve"), ("GET", "/assets/1"),
                             ("GET", "/messages"), ("POST", "/messages/1/retry")]:
            response = await http.request(method, path)
            assert response.status_code == 503, (path, response.text)
            assert response.json()["detail"].startswith("database unavailable: ")
            assert response.json()["detail"].endswith("; try again later")
        samples = await scrape(http)
        assert not any(name == "alertd_tickets" for name, _ in samples)
        assert sample("alertd_rules_last_reload_success") in samples
