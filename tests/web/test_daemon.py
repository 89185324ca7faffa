"""The API as `alertd run` serves it: wired to the daemon's database, token and settings."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from alertd.assets.store import add_asset, add_client
from alertd.runtime import open_runtime
from alertd.settings import Settings
from tests.daemon.harness import Daemon, base_config, running
from tests.mails import automate_tagged
from tests.web.conftest import T0, TOKEN


def call(daemon: Daemon, method: str, path: str, token: str | None = TOKEN) -> tuple[int, Any]:
    """One request to the daemon's HTTP endpoint: status and body (JSON, or text)."""
    request = urllib.request.Request(f"http://127.0.0.1:{daemon.http_port}{path}", method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


def add_server(database_url: str) -> int:
    """An Automate computer the test mail names, so its ticket gets links."""

    async def go() -> int:
        settings = Settings.model_validate({"database": {"url": database_url}})
        async with (open_runtime(settings, with_rules=False) as runtime,
                    runtime.sessions.begin() as session):
            client = await add_client(session, "Northwind Traders", automate_id="41", now=T0)
            return await add_asset(session, "NW-FS01", kind="Server", now=T0,
                                   automate_kind="computer", automate_id="2201",
                                   client_id=client)

    return asyncio.run(go())


def test_the_daemon_serves_the_api_with_its_token_links_and_metrics(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A mail sent over SMTP becomes a ticket the API shows with its links; the API resolves
    it; /metrics counts it; the token never appears in the daemon's logs."""
    asset_id = add_server(sqlite_url)
    token_file = tmp_path / "api-token"
    token_file.write_text(TOKEN + "\n")
    config = base_config(tmp_path, sqlite_url, links=[
        {"name": "Device in Automate",
         "url": "https://rmm.example.net/automate/computer/{automate_id}"},
        {"name": "CMDB", "url": "https://cmdb.example.net/assets/{asset_id}"},
    ])
    config["http"]["token_file"] = str(token_file)
    daemon = Daemon(config, tmp_path)
    with running([daemon]):
        daemon.start()
        daemon.send(automate_tagged("FAILED", date=T0))
        daemon.wait_until(lambda: call(daemon, "GET", "/tickets")[1] != [])

        status, [listed] = call(daemon, "GET", "/tickets")
        assert status == 200
        status, shown = call(daemon, "GET", f"/tickets/{listed['id']}")
        assert status == 200
        assert shown["links"] == [
            {"name": "Device in Automate",
             "url": "https://rmm.example.net/automate/computer/2201"},
            {"name": "CMDB", "url": f"https://cmdb.example.net/assets/{asset_id}"},
        ]
        status, resolved = call(daemon, "POST", f"/tickets/{listed['id']}/resolve")
        assert (status, resolved["status"]) == (200, "resolved")
        assert resolved["history"][-1]["actor"] == "api"
        assert call(daemon, "GET", "/tickets", token="wrong")[0] == 401
        assert call(daemon, "GET", "/tickets", token=None)[0] == 401

        status, metrics = call(daemon, "GET", "/metrics", token=None)
        assert status == 200
        lines = set(metrics.splitlines())
        assert 'alertd_messages_total{source="smtp:main",state="done"} 1.0' in lines
        assert 'alertd_tickets{status="resolved"} 1.0' in lines
        assert "alertd_rules_last_reload_success 1.0" in lines
        assert daemon.stop() == 0
    assert TOKEN not in "".join(daemon.raw_output)


def test_a_token_file_that_cannot_be_read_is_a_configuration_error(
    sqlite_url: str, tmp_path: Path
) -> None:
    """`http.token_file` naming a missing file stops start-up with exit 78 and says which."""
    config = base_config(tmp_path, sqlite_url)
    config["http"]["token_file"] = str(tmp_path / "absent-token")
    daemon = Daemon(config, tmp_path)
    with running([daemon]):
        daemon.start(wait=False)
        assert daemon.process is not None
        assert daemon.process.wait(60) == 78
    assert "http.token_file" in "".join(daemon.raw_output)
    assert "absent-token cannot be read" in "".join(daemon.raw_output)
