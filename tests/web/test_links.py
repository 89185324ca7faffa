"""Links ("custom buttons", R4.4): templates checked when settings load, filled per asset,
left out when the asset cannot fill them, and shown by `alertd tickets show`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from alertd.errors import SettingsInvalid
from alertd.runtime import Runtime
from alertd.settings import LinkSettings, Settings, load_settings
from alertd.tickets.links import Link, Links, LinkTarget
from tests.helpers import deliver_and_process
from tests.mails import automate_tagged
from tests.web.conftest import AUTOMATE_URL, T0

AUTOMATE = {"url": AUTOMATE_URL, "client_id": "alertd-tests", "username": "alertd",
            "password_env": "ALERTD_TEST_AUTOMATE_PASSWORD_UNUSED"}
COMPUTER = LinkTarget(asset_id=7, asset_name="NW-FS01", automate_kind="computer",
                      automate_id="2201", client="Northwind & Sons", site="Head Office")


def settings(**data: Any) -> Settings:
    """Settings from a mapping, as alertd.yaml would give them."""
    return Settings.model_validate(data)


def test_with_automate_and_no_links_the_guides_two_buttons_are_offered() -> None:
    """Device in Automate and Device in Control, on the configured Automate server."""
    links = Links.from_settings(settings(automate=AUTOMATE))
    assert links.render(COMPUTER) == [
        Link("Device in Automate", f"{AUTOMATE_URL}/automate/computer/2201"),
        Link("Device in Control", f"{AUTOMATE_URL}/extensions/"
             "4da1ae45-1be1-4683-b71e-fed1bfc01788/launchproxy.html?i=2201"),
    ]
    assert Links.from_settings(settings()).render(COMPUTER) == []


def test_values_are_url_quoted_and_links_that_cannot_be_filled_are_left_out() -> None:
    """A router, a printer or no asset fills no {automate_id}; a missing client drops its link."""
    links = Links.from_settings(settings(automate=AUTOMATE, links=[
        {"name": "Device", "url": "{automate_url}/automate/computer/{automate_id}"},
        {"name": "Client", "url": "https://psa.example.net/clients?name={client}&site={site}"},
        {"name": "Asset", "url": "https://cmdb.example.net/a/{asset_id}/{asset_name}"
                                 "?back={automate_url}"},
    ]))
    assert [(link.name, link.url) for link in links.render(COMPUTER)] == [
        ("Device", f"{AUTOMATE_URL}/automate/computer/2201"),
        ("Client", "https://psa.example.net/clients?name=Northwind%20%26%20Sons"
                   "&site=Head%20Office"),
        ("Asset", "https://cmdb.example.net/a/7/NW-FS01?back=https%3A%2F%2Frmm.example.net"),
    ]
    router = LinkTarget(asset_id=8, asset_name="NW-GW", automate_kind="router",
                        automate_id="12", client="Northwind & Sons")
    assert [link.name for link in links.render(router)] == ["Asset"]
    assert links.render(LinkTarget(client="Contoso")) == []
    assert links.render(None) == []
    without_automate = Links(
        [LinkSettings(name="Device", url="{automate_url}/automate/computer/{automate_id}")])
    assert without_automate.render(COMPUTER) == []


@pytest.mark.parametrize(("url", "message"), [
    ("https://rmm.example.net/computer/{computer_id}", "unknown placeholder {computer_id}"),
    ("https://rmm.example.net/{automate_id!r}", "takes no format or conversion"),
    ("https://rmm.example.net/{asset_id:>5}", "takes no format or conversion"),
    ("https://rmm.example.net/{}", "is not a field name"),
    ("https://rmm.example.net/{automate_id", "bad template"),
    ("javascript:alert(1)", "must start with http://, https:// or {automate_url}"),
    ("ftp://rmm.example.net/{automate_id}", "must start with http://, https://"),
    ("rmm.example.net/{automate_id}", "must start with http://, https://"),
    ("https:///{automate_id}", "must start with http://, https://"),
])
def test_templates_are_checked_when_settings_load(
    tmp_path: Path, url: str, message: str
) -> None:
    """Unknown placeholders and URLs that are not http(s) are refused with file and line."""
    config = tmp_path / "alertd.yaml"
    config.write_text(json.dumps({"links": [{"name": "Button", "url": url}]}))
    with pytest.raises(SettingsInvalid) as refused:
        load_settings(config, environ={})
    assert message in str(refused.value)
    assert "alertd.yaml" in str(refused.value)


def test_good_templates_load() -> None:
    """Every documented placeholder, literal braces, and http or https in any case."""
    loaded = settings(links=[
        {"name": "All", "url": " HTTPS://x.example/{automate_id}/{asset_id}/{asset_name}/"
                               "{client}/{site}?u={automate_url}&q={{literal}} "},
        {"name": "Plain", "url": "http://127.0.0.1:8080/"},
    ])
    assert loaded.links[0].url.startswith("HTTPS://x.example/")  # stripped, kept as written


def alertd(*args: str, config: Path) -> subprocess.CompletedProcess[bytes]:
    """The real command line, in a child process."""
    environment = {k: v for k, v in os.environ.items()
                   if k not in {"ALERTD_DATABASE_URL", "ALERTD_CONFIG", "ALERTD_RULES_DIR"}}
    return subprocess.run([sys.executable, "-m", "alertd", "--config", str(config), *args],
                          capture_output=True, env=environment, timeout=120, check=False)


async def test_tickets_show_prints_the_links(
    runtime: Runtime, fleet: dict[str, int], database_url: str, tmp_path: Path
) -> None:
    """`alertd tickets show ID` lists the configured links, as text and in --format json."""
    row = await deliver_and_process(runtime, automate_tagged("FAILED", date=T0))
    config = tmp_path / "alertd.yaml"
    config.write_text(json.dumps({
        "database": {"url": database_url},
        "automate": AUTOMATE,
        "links": [
            {"name": "Device in Automate", "url": "{automate_url}/automate/computer/{automate_id}"},
            {"name": "Site map", "url": "https://maps.example.net/?site={site}"},
        ],
    }))
    shown = alertd("tickets", "show", str(row["ticket_id"]), "--format", "json", config=config)
    assert shown.returncode == 0, shown.stderr.decode()
    assert json.loads(shown.stdout)["links"] == [
        {"name": "Device in Automate", "url": f"{AUTOMATE_URL}/automate/computer/2201"},
        {"name": "Site map", "url": "https://maps.example.net/?site=Head%20Office"},
    ]
    text = alertd("tickets", "show", str(row["ticket_id"]), config=config)
    assert text.returncode == 0, text.stderr.decode()
    lines = text.stdout.decode().splitlines()
    assert any(line.split() == ["link:", "Device", "in", "Automate",
                                f"{AUTOMATE_URL}/automate/computer/2201"] for line in lines)
    assert any(line.split() == ["link:", "Site", "map",
                                "https://maps.example.net/?site=Head%20Office"] for line in lines)
