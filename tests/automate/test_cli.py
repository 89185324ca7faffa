"""`alertd automate import` as admins run it: the real command line against the local Automate."""

from __future__ import annotations

import json
from pathlib import Path

from alertd.testing.automate_server import AutomateApp, RunningServer
from tests.automate.conftest import PASSWORD, automate_section
from tests.automate.data import ROUTER_PASSWORD
from tests.automate.test_check import alertd, write_config


async def test_import_all_prints_a_report_per_kind_and_a_dry_run_writes_nothing(
    automate: RunningServer, sqlite_url: str, tmp_path: Path,
) -> None:
    """JSON report per kind; `--dry-run` first (nothing written), then the real import."""
    config = write_config(tmp_path, automate_section(automate.url), database=sqlite_url)
    code, out, err = await alertd(config, "automate", "import", "all", "--dry-run",
                                  "--format", "json")
    assert code == 0, err
    dry = json.loads(out)
    assert dry["dry_run"] is True
    assert {k["kind"]: k["created"] for k in dry["kinds"]} == {
        "clients": 2, "sites": 3, "users": 4, "servers": 2, "workstations": 3, "printers": 3,
        "routers": 2}
    code, out, _ = await alertd(config, "assets", "list", "--format", "json")
    assert (code, json.loads(out)) == (0, [])

    code, out, err = await alertd(config, "automate", "import", "all", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["kinds"][0] == {
        "kind": "clients", "created": 2, "updated": 0, "unchanged": 0, "skipped": 0,
        "failed": 0, "error": None, "notes": ["clients are placed under the top level "
                                              "'Managed Clients'"], "reasons": []}
    code, out, _ = await alertd(config, "assets", "list", "--format", "json")
    assert len(json.loads(out)) == 10


async def test_off_a_terminal_progress_is_plain_lines_and_the_report_a_table(
    automate: RunningServer, sqlite_url: str, tmp_path: Path,
) -> None:
    """No progress bars in a pipe: `automate import: <task>: ...` lines, then the table,
    the reasons and the linked-ticket count; no secret anywhere, even at debug level."""
    section = automate_section(automate.url)
    section["import"] = {**section["import"], "default_site": None}
    config = write_config(tmp_path, section, database=sqlite_url)
    code, out, err = await alertd(config, "--log-level", "debug", "automate", "import", "users")
    assert code == 0, err
    assert "automate import: users: started" in err
    assert "automate import: users: 4 done" in err
    assert "Automate import" in out
    assert "users: 4 skipped: client 27 was not imported" not in out
    assert "users: 2 skipped: client 27 was not imported (import clients first, or set " \
           "automate.import.default_site) (e.g. 301, 302)" in out
    assert "tickets linked to their asset: 0" in out
    for secret in (PASSWORD, ROUTER_PASSWORD):
        assert secret not in out + err


async def test_an_unmapped_kind_exits_78_and_an_outage_75(
    automate: RunningServer, automate_state: AutomateApp, sqlite_url: str, tmp_path: Path,
) -> None:
    """Refusing an unmapped kind is a configuration error; Automate going away is temporary."""
    section = automate_section(automate.url, retries=0)
    section["import"] = {"asset_types": {"servers": "Server"}}
    config = write_config(tmp_path, section, database=sqlite_url)
    code, _, err = await alertd(config, "automate", "import", "assets", "--kind", "routers")
    assert code == 78
    assert "routers have no asset type mapping, so they cannot be imported" in err

    automate_state.faults.fail_next = 10_000
    code, out, _ = await alertd(config, "automate", "import", "all")
    assert code == 75
    assert "import ended early: Automate unavailable: Automate answered 500" in out
