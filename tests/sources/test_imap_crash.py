"""kill -9 in the middle of draining a mailbox loses nothing, processes nothing twice (R1.1, R1.4).

`alertd run` drains 3,000 alerts from Dovecot; it is killed with SIGKILL
while mail is being fetched, stored and moved, then started again. Every
mail must end up in the inbox exactly once, processed exactly once (the
tickets' occurrences add up to the number of mails), and moved out of the
INBOX: mail stored before the kill but not yet moved is moved after the
restart without being stored again.
"""

from __future__ import annotations

import inspect
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import alertd.daemon.supervisor
from tests.daemon.harness import Daemon, base_config
from tests.helpers import messages, tickets
from tests.mails import automate_tagged
from tests.sources.dovecot import Dovecot, MailUser

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
MAILS = 3000
COMPUTERS = 50


def _mail(number: int) -> bytes:
    return automate_tagged("FAILED", date=T0 + timedelta(seconds=number),
                           computer_id=5000 + number % COMPUTERS, host=f"CR-{number % COMPUTERS}",
                           message_id=f"crash-{number}")


def _message_ids(maildir: Path) -> set[str]:
    """The Message-IDs of the mails in a Maildir folder, read from the files."""
    found: set[str] = set()
    for sub in ("new", "cur"):
        for path in (maildir / sub).iterdir() if (maildir / sub).is_dir() else ():
            match = re.search(rb"^Message-ID: (<[^>]+>)", path.read_bytes(), re.MULTILINE)
            assert match is not None, path
            found.add(match.group(1).decode())
    return found


def _daemon(tmp_path: Path, dovecot: Dovecot, user: MailUser, name: str) -> Daemon:
    directory = tmp_path / name
    directory.mkdir()
    secret = tmp_path / "imap.secret"
    secret.write_text(user.password + "\n")
    config: dict[str, Any] = base_config(directory, f"sqlite:///{tmp_path / 'alertd.db'}", imap=[{
        "name": "alerts", "host": "127.0.0.1", "port": dovecot.tls_port, "security": "tls",
        "ca_file": str(dovecot.cert), "user": user.name, "password_file": str(secret),
        "batch_size": 10, "poll_interval": "200ms",
    }])
    config.pop("http", None)
    return Daemon(config, directory)


def test_kill_9_mid_drain_every_mail_processed_once_and_moved(
    dovecot: Dovecot, mail_user: MailUser, tmp_path: Path,
) -> None:
    """After SIGKILL part-way through a 3,000-mail drain and a restart: 3,000 inbox rows, all
    done, occurrences adding up to 3,000 (nothing doubled), INBOX empty, Processed full."""
    if "imap_components" not in inspect.getsource(alertd.daemon.supervisor):
        pytest.skip("needs the daemon: `alertd run` does not start IMAP pollers yet "
                    "(the supervisor does not call alertd.sources.imap.imap_components)")
    dovecot.drop_mail(mail_user, (_mail(n) for n in range(MAILS)))
    first = _daemon(tmp_path, dovecot, mail_user, "first")
    try:
        first.start()
        deadline = time.monotonic() + 60
        while dovecot.folder_files(mail_user, "Processed") < 300:
            assert time.monotonic() < deadline, "".join(first.raw_output[-30:])
            time.sleep(0.002)
        first.kill()
    finally:
        if first.process is not None and first.process.poll() is None:
            first.process.kill()
    moved_before = _message_ids(mail_user.maildir("Processed"))
    assert 0 < len(moved_before) < MAILS, "the kill did not come mid-drain: nothing was tested"
    stored_before = {row["message_id"] for row in first.read(messages)}
    assert moved_before <= stored_before, "a mail was moved before it was stored"

    second = _daemon(tmp_path, dovecot, mail_user, "second")
    try:
        second.start()
        second.wait_until(lambda: dovecot.folder_files(mail_user, "INBOX") == 0, timeout=120)

        def all_processed() -> bool:
            rows = second.read(messages)
            return len(rows) == MAILS and all(row["state"] == "done" for row in rows)

        second.wait_until(all_processed, timeout=120)
        rows = second.read(messages)
        assert len({row["message_id"] for row in rows}) == MAILS
        opened = second.read(tickets)
        assert len(opened) == COMPUTERS
        assert sum(ticket["occurrences"] for ticket in opened) == MAILS
        assert dovecot.folder_files(mail_user, "Processed") == MAILS
        assert second.stop() == 0
    finally:
        if second.process is not None and second.process.poll() is None:
            second.process.kill()
