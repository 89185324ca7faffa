"""The `alertd` command line as admins and MTAs use it: run as a real process (R1.3, R3.5, R4.4)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from alertd.assets.store import add_asset, add_client
from alertd.db.engine import create_engine, session_factory
from alertd.settings import bundled_rules_dir

EXAMPLES = bundled_rules_dir() / "examples"
BAD_RULES = Path(__file__).resolve().parents[1] / "data" / "rules" / "bad"
TICKET_KEYS = {"id", "type", "status", "summary", "priority", "alert_type", "dedup_key",
               "occurrences", "asset", "client", "site", "matched_by", "automate_ticket_id",
               "first_seen", "last_seen"}
MESSAGE_KEYS = {"id", "source", "message_id", "state", "action", "reason", "ticket_id"}
ASSET_KEYS = {"id", "name", "kind", "automate_id", "asset_tag", "client", "site", "parent_id"}


def alertd(*args: str, url: str, stdin: bytes | None = None, env: dict[str, str] | None = None,
           cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run the real command line in a child process."""
    environment = {**os.environ, "ALERTD_DATABASE_URL": url, **(env or {})}
    environment.pop("ALERTD_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "alertd", *args], input=stdin,
                          capture_output=True, env=environment, timeout=120, check=False,
                          cwd=cwd)


def json_of(result: subprocess.CompletedProcess[bytes]) -> Any:
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)


def test_ingest_prints_ids_stores_once_and_reads_stdin(sqlite_url: str) -> None:
    """Each file's inbox id is printed; a repeat prints the same id; `-` reads standard input."""
    first = alertd("ingest", str(EXAMPLES / "automate-tagged-failed.eml"), url=sqlite_url)
    again = alertd("ingest", "-", url=sqlite_url,
                   stdin=(EXAMPLES / "automate-tagged-failed.eml").read_bytes())
    other = alertd("ingest", str(EXAMPLES / "automate-tagged-success.eml"), url=sqlite_url)
    assert (first.returncode, again.returncode, other.returncode) == (0, 0, 0)
    assert first.stdout == again.stdout == b"1\n"
    assert b"already stored as message 1" in again.stderr
    assert other.stdout == b"2\n"


@pytest.mark.parametrize("url", [
    "postgresql://postgres@127.0.0.1:9/unreachable",
    "sqlite:////proc/alertd-cannot-write-here/alertd.db",
])
def test_ingest_exits_75_when_the_mail_cannot_be_stored(url: str) -> None:
    """EX_TEMPFAIL tells the MTA to keep the mail and try again later."""
    result = alertd("ingest", str(EXAMPLES / "automate-tagged-failed.eml"), url=url)
    assert result.returncode == 75
    assert result.stdout == b""
    assert b"alertd:" in result.stderr


def test_ingest_exits_75_on_a_broken_settings_file(sqlite_url: str, tmp_path: Path) -> None:
    """A configuration mistake defers mail (75) rather than bouncing it."""
    config = tmp_path / "alertd.yaml"
    config.write_text("databse: {}\n")
    result = alertd("--config", str(config), "ingest", str(EXAMPLES / "automate-tagged-failed.eml"),
                    url=sqlite_url)
    assert result.returncode == 75
    assert b"unknown key 'databse'" in result.stderr


def test_the_lifecycle_through_the_command_line(sqlite_url: str) -> None:
    """ingest --process, list, show, resolve and close, with the JSON shapes other tools read."""
    for name in ("automate-tagged-failed.eml", "automate-tagged-failed-again.eml"):
        assert alertd("ingest", "--process", str(EXAMPLES / name), url=sqlite_url).returncode == 0
    [listed] = json_of(alertd("tickets", "list", "--format", "json", url=sqlite_url))
    assert set(listed) == TICKET_KEYS
    assert (listed["status"], listed["occurrences"], listed["asset"]) == ("open", 2, None)
    shown = json_of(alertd("tickets", "show", str(listed["id"]), "--format", "json",
                           url=sqlite_url))
    assert [h["kind"] for h in shown["history"]] == ["opened", "occurrence"]

    messages = json_of(alertd("messages", "list", "--format", "json", url=sqlite_url))
    assert all(set(m) >= MESSAGE_KEYS for m in messages)
    assert [m["action"] for m in messages] == ["occurrence", "new_ticket"]
    detail = json_of(alertd("messages", "show", str(messages[0]["id"]), "--format", "json",
                            url=sqlite_url))
    assert detail["alert_type"] == "automate-tagged"
    assert any(step["stage"] == "ticket" for step in detail["trace"])

    resolved = alertd("tickets", "resolve", str(listed["id"]), "--note", "freed space",
                      url=sqlite_url)
    assert resolved.returncode == 0
    assert json_of(alertd("tickets", "list", "--status", "open", "--format", "json",
                          url=sqlite_url)) == []
    assert alertd("tickets", "close", str(listed["id"]), url=sqlite_url).returncode == 0
    refused = alertd("tickets", "resolve", str(listed["id"]), url=sqlite_url)
    assert refused.returncode == 1
    assert b"ticket 1 is closed; only open tickets can be resolved" in refused.stderr
    missing = alertd("tickets", "show", "99", url=sqlite_url)
    assert (missing.returncode, missing.stderr.strip()) == (1, b"alertd: no ticket 99")


def test_messages_process_and_retry(sqlite_url: str, tmp_path: Path) -> None:
    """A mail that fails waits for `messages retry`; `messages process` drains the inbox."""
    broken = tmp_path / "empty.eml"
    broken.write_bytes(b"\r\n")
    assert alertd("ingest", str(broken), url=sqlite_url).returncode == 0
    processed = alertd("messages", "process", url=sqlite_url)
    assert processed.stdout == b"processed 1: failed 1\n"
    [row] = json_of(alertd("messages", "list", "--state", "failed", "--format", "json",
                           url=sqlite_url))
    assert row["reason"] == "parse: empty message"
    retried = alertd("messages", "retry", "--failed", url=sqlite_url)
    assert retried.stdout == b"queued 1 message(s) for processing: 1\n"


def test_assets_list_shape(sqlite_url: str) -> None:
    """Assets (inserted through the service layer, as an import would) list with their client."""

    async def seed() -> None:
        engine = create_engine(sqlite_url)
        now = datetime.now(UTC)
        async with session_factory(engine).begin() as session:
            client = await add_client(session, "Northwind Traders", now=now)
            await add_asset(session, "NW-FS01", kind="Server", now=now, automate_kind="computer",
                            automate_id="2201", client_id=client, asset_tag="SN-1")
        await engine.dispose()

    asyncio.run(seed())
    [asset] = json_of(alertd("assets", "list", "--format", "json", url=sqlite_url))
    assert set(asset) == ASSET_KEYS
    assert (asset["name"], asset["automate_id"], asset["client"]) == (
        "NW-FS01", "2201", "Northwind Traders")


def test_rules_check_passes_good_rules_and_lists_every_problem_of_bad_ones(
    sqlite_url: str,
) -> None:
    """Exit 0 with SUCCESS per file, or 78 with `file:line: where: message` lines."""
    good = alertd("rules", "check", url=sqlite_url)
    assert good.returncode == 0
    assert b"10-automate.yaml  SUCCESS" in good.stdout
    bad = alertd("rules", "check", str(BAD_RULES / "many-problems"), url=sqlite_url)
    assert bad.returncode == 78
    out = bad.stdout.decode()
    assert "20-rules.yaml  FAILED" in out
    assert "20-rules.yaml:4: senders[0].ticket_type: unknown ticket type 'Incident'" in out
    assert out.rstrip().endswith("Found 7 problem(s) in 2 of 3 file(s).")


def test_rules_test_explains_one_mail_and_writes_nothing(sqlite_url: str) -> None:
    """The trace shows which rules hit and what would happen; the database is unchanged."""
    result = alertd("rules", "test", str(EXAMPLES / "automate-tagged-failed.eml"), "--format",
                    "json", url=sqlite_url)
    shown = json_of(result)
    assert shown["decision"]["alert type"] == "automate-tagged"
    assert shown["fields"]["computer_id"] == "2201"
    assert shown["action"] == "new_ticket"
    assert {"stage": "sender", "name": "automate", "hit": True,
            "detail": "automate@example.invalid"} in shown["trace"]
    assert json_of(alertd("messages", "list", "--format", "json", url=sqlite_url)) == []
    assert json_of(alertd("tickets", "list", "--format", "json", url=sqlite_url)) == []
    table = alertd("rules", "test", str(EXAMPLES / "automate-monitor-failed.eml"), url=sqlite_url)
    assert table.returncode == 0
    assert b"automate-monitor" in table.stdout


def test_rules_test_runs_cases_and_fails_on_a_wrong_expectation(
    sqlite_url: str, tmp_path: Path
) -> None:
    """PASS/FAIL per case; any failure exits 1 and says what differed."""
    passing = alertd("rules", "test", "--cases", str(EXAMPLES / "cases.yaml"), url=sqlite_url)
    assert passing.returncode == 0
    assert passing.stdout.decode().splitlines()[-1] == "6 passed, 0 failed"
    cases = tmp_path / "cases.yaml"
    cases.write_text(
        f"cases:\n  - name: wrong guess\n    mail: {EXAMPLES / 'automate-tagged-failed.eml'}\n"
        "    expect: {alert_type: automate-monitor, action: new_ticket}\n")
    failing = alertd("rules", "test", "--cases", str(cases), url=sqlite_url)
    assert failing.returncode == 1
    assert failing.stdout.decode().splitlines() == [
        "FAIL  wrong guess",
        "      alert_type: expected 'automate-monitor', got 'automate-tagged'",
        "0 passed, 1 failed",
    ]


def test_database_commands_and_a_broken_config(sqlite_url: str, tmp_path: Path) -> None:
    """`db upgrade` / `db current` report the schema; a broken config exits 78 for commands."""
    assert alertd("db", "upgrade", url=sqlite_url).stdout.startswith(b"schema already at ")
    assert b"up to date" in alertd("db", "current", url=sqlite_url).stdout
    config = tmp_path / "alertd.yaml"
    config.write_text("rules:\n  reopen_window: soon\n")
    broken = alertd("--config", str(config), "tickets", "list", url=sqlite_url)
    assert broken.returncode == 78
    assert b"alertd.yaml:2: rules.reopen_window: not a duration" in broken.stderr


def test_a_fresh_directory_works_with_no_configuration(tmp_path: Path) -> None:
    """Zero configuration: a SQLite file appears in the working directory, migrated."""
    environment = {k: v for k, v in os.environ.items()
                   if k not in {"ALERTD_DATABASE_URL", "ALERTD_CONFIG", "ALERTD_RULES_DIR"}}
    run = subprocess.run(
        [sys.executable, "-m", "alertd", "ingest", "--process",
         str(EXAMPLES / "automate-monitor-failed.eml")],
        cwd=tmp_path, env=environment, capture_output=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr.decode()
    assert (tmp_path / "alertd.db").exists()
    listed = subprocess.run([sys.executable, "-m", "alertd", "tickets", "list"], cwd=tmp_path,
                            env=environment, capture_output=True, timeout=120, check=False)
    assert b"Service - Print Spooler FAILED on NW-WS17" in listed.stdout


def test_smtp_hash_password_makes_a_users_file_line(sqlite_url: str, tmp_path: Path) -> None:
    """The printed line is accepted by the listener's users file and matches the password."""
    from alertd.sources.smtp_auth import load_users, verify_password

    result = alertd("smtp", "hash-password", "mta", url=sqlite_url, stdin=b"pa55-word\n")
    assert result.returncode == 0, result.stderr
    users_file = tmp_path / "users"
    users_file.write_bytes(result.stdout)
    users = load_users(users_file)
    assert verify_password(b"pa55-word", users["mta"])
    assert not verify_password(b"wrong", users["mta"])
