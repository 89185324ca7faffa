"""kill -9 in the middle of a mail storm loses nothing and counts nothing twice (R1.4, R4.3).

Eight SMTP clients send 5,000 alerts; the daemon is killed with SIGKILL part
way through; clients hold on to what was not acknowledged, as an MTA does,
and send it again after the restart. Every mail that got 250 must be in the
database exactly once, every mail must be processed exactly once (the
occurrence counts add up), and there must be one ticket per alert key.
"""

from __future__ import annotations

import smtplib
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tests.daemon.harness import Daemon
from tests.helpers import messages, tickets
from tests.mails import automate_tagged

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
MAILS = 5_000
CLIENTS = 8
COMPUTERS = 50


def _mail(number: int) -> bytes:
    return automate_tagged("FAILED", date=T0 + timedelta(seconds=number),
                           computer_id=1000 + number % COMPUTERS, message_id=f"storm-{number}")


class Storm:
    """CLIENTS threads sending their share; each keeps what is still unacknowledged."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.pending = {n: list(range(n, MAILS, CLIENTS)) for n in range(CLIENTS)}
        self.acknowledged: dict[int, int] = {}
        self.lock = threading.Lock()

    def send_all(self) -> None:
        threads = [threading.Thread(target=self._client, args=(n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)

    def _client(self, client: int) -> None:
        queue = self.pending[client]
        try:
            with smtplib.SMTP("127.0.0.1", self.daemon.smtp_port, timeout=30) as smtp:
                smtp.ehlo("mta.example.net")
                while queue:
                    number = queue[0]
                    smtp.mail("automate@example.invalid")
                    smtp.rcpt("alerts@helpdesk.example.net")
                    code, reply = smtp.data(_mail(number))
                    if code != 250:
                        return
                    with self.lock:
                        self.acknowledged[number] = int(reply.decode().rsplit(" ", 1)[1])
                    queue.pop(0)
        except (smtplib.SMTPException, OSError):
            return  # the daemon died: what is left in the queue is sent again later


def test_kill_9_mid_storm_loses_and_doubles_nothing(
    start_daemon: Callable[..., Daemon], sqlite_url: str
) -> None:
    """After SIGKILL and restart: all 5,000 stored once, processed once, one ticket per key."""
    daemon = start_daemon(sqlite_url)
    storm = Storm(daemon)
    sender = threading.Thread(target=storm.send_all)
    sender.start()
    daemon.wait_until(lambda: len(storm.acknowledged) >= 2_000, timeout=120)
    daemon.kill()
    sender.join(120)
    acknowledged_before = dict(storm.acknowledged)
    assert len(acknowledged_before) < MAILS

    daemon.start()
    storm.send_all()
    assert len(storm.acknowledged) == MAILS
    for number, inbox_id in acknowledged_before.items():
        assert storm.acknowledged[number] == inbox_id

    def all_processed() -> bool:
        rows = daemon.read(messages)
        return len(rows) == MAILS and all(row["state"] == "done" for row in rows)

    daemon.wait_until(all_processed, timeout=180)
    rows = daemon.read(messages)
    assert {row["id"] for row in rows} == set(storm.acknowledged.values())
    assert len({row["message_id"] for row in rows}) == MAILS
    opened = daemon.read(tickets)
    assert len(opened) == COMPUTERS
    assert sum(ticket["occurrences"] for ticket in opened) == MAILS
    assert sum(1 for row in rows if row["action"] == "new_ticket") == COMPUTERS
    assert daemon.stop() == 0
