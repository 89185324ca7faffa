"""A real Postfix relays alert mail to alertd: what an MTA relay transport does in production."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.daemon.harness import Daemon, free_port
from tests.daemon.postfix import DOMAIN, postfix_relaying_to
from tests.helpers import messages, raw, tickets
from tests.mails import automate_tagged

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def test_mail_sent_to_postfix_arrives_as_a_ticket(
    start_daemon: Callable[..., Daemon], sqlite_url: str, tmp_path: Path
) -> None:
    """swaks → Postfix (relay for the test domain) → alertd's listener → a ticket."""
    if shutil.which("swaks") is None:
        pytest.skip("swaks is not installed (scripts/install-test-services adds it)")
    daemon = start_daemon(sqlite_url, smtp=[{
        "name": "main", "listen": f"127.0.0.1:{free_port()}", "recipients": [f"@{DOMAIN}"]}])
    mail = tmp_path / "alert.eml"
    mail.write_bytes(automate_tagged("FAILED", date=T0, message_id="via-postfix"))
    with postfix_relaying_to(daemon.smtp_port) as postfix:
        sent = subprocess.run(
            ["swaks", "--server", f"127.0.0.1:{postfix.port}", "--from",
             "automate@example.invalid", "--to", f"noc@{DOMAIN}", "--data", str(mail)],
            capture_output=True, text=True, check=False)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert "250 2.0.0 Ok: queued as" in sent.stdout

        def arrived() -> bool:
            postfix.flush()
            return [t["status"] for t in daemon.read(tickets)] == ["open"]

        daemon.wait_until(arrived, timeout=60)
    [row] = daemon.read(messages)
    assert row["source"] == "smtp:main"
    assert row["message_id"] == "<via-postfix@rmm.example.invalid>"
    assert b"Received: from" in daemon.read(lambda runtime: raw(runtime, row["id"]))
    assert daemon.stop() == 0
