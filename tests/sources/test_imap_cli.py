"""`alertd mailboxes check` as an admin runs it: a real process against the test Dovecot."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.sources.dovecot import Dovecot, MailUser


def alertd(config: Path, *args: str, env: dict[str, str] | None = None,
           ) -> subprocess.CompletedProcess[str]:
    """Run `alertd --config CONFIG ARGS...` in a child process."""
    environment = {k: v for k, v in os.environ.items()
                   if k not in {"ALERTD_CONFIG", "ALERTD_DATABASE_URL"}}
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "alertd", "--config", str(config), *args],
                          capture_output=True, text=True, env=environment, timeout=120,
                          check=False)


def write_config(path: Path, mailboxes: list[dict[str, Any]]) -> Path:
    """An alertd.yaml with these mailboxes (JSON is YAML)."""
    path.write_text(json.dumps({"database": {"url": f"sqlite:///{path.parent}/alertd.db"},
                                "imap": mailboxes}))
    return path


def box(dovecot: Dovecot, user: MailUser, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    """One mailbox entry over TLS, trusting the test CA."""
    secret = tmp_path / f"{user.name}.secret"
    secret.write_text(user.password + "\n")
    return {"name": user.name, "host": "127.0.0.1", "port": dovecot.tls_port,
            "security": "tls", "ca_file": str(dovecot.cert), "user": user.name,
            "password_file": str(secret), **extra}


def test_check_reports_folder_count_and_capabilities(
    dovecot: Dovecot, mail_user: MailUser, tmp_path: Path,
) -> None:
    """A usable mailbox: its folder, message count and IDLE / MOVE / UIDPLUS, and a note that
    the Processed folder will be created; exit 0. Nothing on the server changes."""
    dovecot.drop_mail(mail_user, [b"Subject: one\n\nx\n", b"Subject: two\n\nx\n"])
    config = write_config(tmp_path / "alertd.yaml", [box(dovecot, mail_user, tmp_path)])
    result = alertd(config, "mailboxes", "check", "--format", "json")
    assert result.returncode == 0, result.stderr
    [found] = json.loads(result.stdout)
    assert found["ok"] is True
    assert (found["folder"], found["messages"]) == ("INBOX", 2)
    assert found["capabilities"] == {"IDLE": True, "MOVE": True, "UIDPLUS": True}
    assert found["notes"] == ["move_to 'Processed' does not exist yet; the poller creates it"]
    table = alertd(config, "mailboxes", "check")
    assert table.returncode == 0, table.stderr
    assert mail_user.name in table.stdout
    assert "OK" in table.stdout
    assert not (mail_user.home / "Maildir" / ".Processed").exists()


def test_check_says_plainly_what_is_wrong(
    dovecot: Dovecot, mail_user: MailUser, tmp_path: Path,
) -> None:
    """Wrong password, unknown password variable and missing folder each get a plain problem
    line, the good mailbox still OK; exit 78 (a configuration problem); no password shown."""
    other = dovecot.add_user()
    wrong = box(dovecot, other, tmp_path)
    Path(wrong["password_file"]).write_text("wrong-password\n")
    no_env = {**box(dovecot, dovecot.add_user(), tmp_path), "password_file": None,
              "password_env": "ALERTD_TEST_UNSET_VARIABLE"}
    no_folder = box(dovecot, dovecot.add_user(), tmp_path, folder="Nowhere")
    config = write_config(tmp_path / "alertd.yaml",
                          [box(dovecot, mail_user, tmp_path), wrong, no_env, no_folder])
    result = alertd(config, "mailboxes", "check")
    assert result.returncode == 78, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith(f"{other.name}: problem:") and "credentials are wrong" in line
               for line in lines), result.stdout
    assert any("ALERTD_TEST_UNSET_VARIABLE" in line and "is not set" in line for line in lines)
    assert any("cannot open folder 'Nowhere'" in line for line in lines)
    statuses = re.findall(r"│ (OK|FAILED)\s*│\s*$", result.stdout, flags=re.MULTILINE)
    assert sorted(statuses) == ["FAILED", "FAILED", "FAILED", "OK"]
    assert "wrong-password" not in result.stdout + result.stderr


def test_check_unreachable_server_and_unknown_name(tmp_path: Path) -> None:
    """A server nobody listens on is an outage (exit 75, "refused"); naming a mailbox that is
    not configured is an error (exit 1)."""
    from tests.sources.dovecot import free_port

    secret = tmp_path / "secret"
    secret.write_text("x\n")
    config = write_config(tmp_path / "alertd.yaml", [{
        "name": "gone", "host": "127.0.0.1", "port": free_port(), "security": "tls",
        "user": "u", "password_file": str(secret)}])
    result = alertd(config, "mailboxes", "check", "--format", "json")
    assert result.returncode == 75, result.stderr
    [found] = json.loads(result.stdout)
    assert found["reason"] == "refused"
    unknown = alertd(config, "mailboxes", "check", "nope")
    assert unknown.returncode == 1
    assert "no mailbox named nope" in unknown.stderr
