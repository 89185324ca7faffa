"""`alertd run` as a real child process, driven over SMTP like an MTA drives it (SPEC R1.2, R6.1).

Each test starts the daemon on free loopback ports, sends mail with
smtplib, and reads the outcome from the daemon's own database and logs.
"""

from __future__ import annotations

import signal
import smtplib
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from alertd.settings import bundled_rules_dir
from alertd.sources.smtp import (
    REPLY_DECLARED_TOO_BIG,
    REPLY_NOT_STORED,
    REPLY_RELAY_DENIED,
    REPLY_STARTTLS_FIRST,
    REPLY_TOO_BIG,
)
from alertd.sources.smtp_auth import hash_password
from tests.daemon.harness import Daemon, free_port
from tests.daemon.proxy import TcpProxy
from tests.helpers import messages, tickets
from tests.mails import automate_tagged

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
StartDaemon = Callable[..., Daemon]


def test_the_automate_lifecycle_over_smtp_ends_in_one_resolved_ticket(
    start_daemon: StartDaemon, database_url: str
) -> None:
    """FAILED, FAILED, SUCCESS sent over SMTP: one ticket, two occurrences, resolved."""
    daemon = start_daemon(database_url)
    replies = [
        daemon.send(automate_tagged("FAILED", date=T0)),
        daemon.send(automate_tagged("FAILED", date=T0 + timedelta(minutes=10))),
        daemon.send(automate_tagged("SUCCESS", date=T0 + timedelta(minutes=20))),
    ]
    assert [r.split(" as ")[0] for r in replies] == ["2.0.0 OK: queued"] * 3

    def resolved() -> bool:
        rows = daemon.read(tickets)
        return len(rows) == 1 and rows[0]["status"] == "resolved"

    daemon.wait_until(resolved)
    [ticket] = daemon.read(tickets)
    assert ticket["occurrences"] == 2
    ids = [int(r.rsplit(" ", 1)[1]) for r in replies]
    rows = {m["id"]: m for m in daemon.read(messages)}
    assert [rows[i]["action"] for i in ids] == ["new_ticket", "occurrence", "resolved"]
    assert all(rows[i]["source"] == "smtp:main" for i in ids)
    assert daemon.stop() == 0


def test_a_foreign_recipient_gets_550_and_never_an_open_relay(
    start_daemon: StartDaemon, sqlite_url: str
) -> None:
    """Only configured addresses and @domains are accepted; anything else is refused at RCPT."""
    daemon = start_daemon(sqlite_url)
    with daemon.smtp() as client:
        client.mail("automate@example.invalid")
        code, reply = client.rcpt("someone@elsewhere.example.com")
        assert (code, reply.decode()) == (550, REPLY_RELAY_DENIED.format(
            address="someone@elsewhere.example.com")[4:])
        assert client.rcpt("noc@alerts.example.net")[0] == 250
    assert daemon.stop() == 0


def test_an_oversized_mail_gets_552(start_daemon: StartDaemon, sqlite_url: str) -> None:
    """The limit is advertised with SIZE, and a mail over it is refused with 552 5.3.4."""
    daemon = start_daemon(sqlite_url, smtp=[{
        "name": "main", "listen": f"127.0.0.1:{free_port()}", "max_size": "20KB",
        "recipients": ["alerts@helpdesk.example.net"]}])
    with daemon.smtp() as client:
        assert client.has_extn("size")
        assert client.esmtp_features["size"] == "20000"
        client.mail("automate@example.invalid")
        client.rcpt("alerts@helpdesk.example.net")
        code, reply = client.data(automate_tagged("FAILED", date=T0) + (b"x" * 70 + b"\r\n") * 400)
        assert (code, reply.decode()) == (552, REPLY_TOO_BIG.format(limit=20000)[4:])
        code, reply = client.mail("automate@example.invalid", ["SIZE=50000"])
        assert (code, reply.decode()) == (552, REPLY_DECLARED_TOO_BIG.format(limit=20000)[4:])
    assert daemon.read(messages) == []
    assert daemon.stop() == 0


def test_451_while_the_database_is_locked_and_the_same_mail_is_taken_after(
    start_daemon: StartDaemon, sqlite_url: str
) -> None:
    """A locked database answers 451 (the MTA keeps the mail); once free, it is stored once."""
    daemon = start_daemon(sqlite_url, database={"url": sqlite_url, "busy_timeout": "500ms"})
    data = automate_tagged("FAILED", date=T0, message_id="retry-me")
    blocker = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with daemon.smtp() as client:
            client.mail("automate@example.invalid")
            client.rcpt("alerts@helpdesk.example.net")
            code, reply = client.data(data)
        assert (code, reply.decode()) == (451, REPLY_NOT_STORED[4:])
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    reply = daemon.send(data)
    again = daemon.send(data)
    assert reply == again
    daemon.wait_until(lambda: [m["state"] for m in daemon.read(messages)] == ["done"])
    assert daemon.events("smtp.not_stored")
    assert daemon.stop() == 0


def test_auth_is_refused_without_tls_and_works_after_starttls(
    start_daemon: StartDaemon, sqlite_url: str, certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    """AUTH is neither offered nor accepted in clear text; after STARTTLS it is, and the
    password never appears in the logs."""
    cert, key = certificate
    users = tmp_path / "users"
    password = "s3cret-Pass-123"
    users.write_text(f"mta:{hash_password(password)}\n")
    daemon = start_daemon(sqlite_url, smtp=[{
        "name": "main", "listen": f"127.0.0.1:{free_port()}",
        "recipients": ["alerts@helpdesk.example.net"],
        "tls": {"cert_file": str(cert), "key_file": str(key)},
        "auth": {"users_file": str(users)}}], logging={"level": "debug", "format": "json"})
    with daemon.smtp() as client:
        assert not client.has_extn("auth")
        code, reply = client.docmd("AUTH", "PLAIN AG10YQBzM2NyZXQtUGFzcy0xMjM=")
        assert (code, reply.decode()) == (530, REPLY_STARTTLS_FIRST[4:])
        assert client.mail("automate@example.invalid")[0] == 530
    with daemon.smtp() as client:
        client.starttls()
        client.ehlo("test.example.net")
        assert client.has_extn("auth")
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("mta", "wrong")
        client.login("mta", password)
        client.sendmail("automate@example.invalid", ["alerts@helpdesk.example.net"],
                        automate_tagged("FAILED", date=T0))
    assert daemon.stop() == 0
    output = "".join(daemon.raw_output)
    assert password not in output
    assert "AG10YQBzM2NyZXQtUGFzcy0xMjM=" not in output


def test_sighup_with_broken_rules_keeps_the_old_rules(
    start_daemon: StartDaemon, sqlite_url: str, tmp_path: Path
) -> None:
    """A reload that fails validation is refused with every problem logged; mail keeps
    being handled by the old rules, and a fixed directory reloads."""
    rules = tmp_path / "rules"
    rules.mkdir()
    for name in ("00-ticket-types.yaml", "10-automate.yaml"):
        (rules / name).write_text((bundled_rules_dir() / name).read_text())
    daemon = start_daemon(sqlite_url, rules={"dir": str(rules)})
    version = daemon.health()[1]["rules_version"]

    (rules / "20-broken.yaml").write_text("alert_types:\n  - name: x\n    colour: red\n")
    daemon.signal(signal.SIGHUP)
    refused = daemon.wait_for("rules.reload_refused")
    assert refused["kept_version"] == version
    problem = daemon.wait_for("rules.problem")
    assert problem["problem"].endswith("20-broken.yaml:3: alert_types[0].colour: unknown key "
                                       "'colour'")
    _, health = daemon.health()
    assert (health["rules_version"], health["rules_last_reload_ok"]) == (version, False)

    daemon.send(automate_tagged("FAILED", date=T0))
    daemon.wait_until(lambda: len(daemon.read(tickets)) == 1)

    (rules / "20-broken.yaml").unlink()
    (rules / "30-comment.yaml").write_text("# nothing yet\n")
    daemon.signal(signal.SIGHUP)
    reloaded = daemon.wait_for("rules.reloaded")
    assert reloaded["version"] != version
    assert daemon.health()[1]["rules_last_reload_ok"] is True
    assert daemon.stop() == 0


def test_sigterm_during_a_stream_exits_0_and_keeps_every_acknowledged_mail(
    start_daemon: StartDaemon, sqlite_url: str
) -> None:
    """Mail that got 250 before the stop is in the database; the exit status is 0."""
    daemon = start_daemon(sqlite_url)
    acknowledged: list[int] = []
    lock = threading.Lock()
    stop_sending = threading.Event()

    def sender(worker: int) -> None:
        count = 0
        try:
            with daemon.smtp() as client:
                while not stop_sending.is_set():
                    data = automate_tagged("FAILED", date=T0, computer_id=worker * 10_000 + count,
                                           message_id=f"stream-{worker}-{count}")
                    client.mail("automate@example.invalid")
                    client.rcpt("alerts@helpdesk.example.net")
                    code, reply = client.data(data)
                    if code == 250:
                        with lock:
                            acknowledged.append(int(reply.decode().rsplit(" ", 1)[1]))
                    count += 1
        except (smtplib.SMTPException, OSError):
            return  # the server went away: mail not acknowledged will be retried by an MTA

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    daemon.wait_until(lambda: len(acknowledged) >= 200)
    assert daemon.stop() == 0
    stop_sending.set()
    for thread in threads:
        thread.join(30)

    stored = {m["id"]: m for m in daemon.read(messages)}
    assert set(acknowledged) <= set(stored)
    assert len(set(acknowledged)) == len(acknowledged)
    assert daemon.events("daemon.stopped")[-1]["clean"] is True


def test_log_lines_about_a_message_carry_its_ids(start_daemon: StartDaemon, sqlite_url: str
                                                 ) -> None:
    """JSON lines; the SMTP accept (debug) and the summary line name inbox id and Message-ID."""
    daemon = start_daemon(sqlite_url, logging={"level": "debug", "format": "json"})
    reply = daemon.send(automate_tagged("FAILED", date=T0, message_id="log-check"))
    inbox_id = int(reply.rsplit(" ", 1)[1])
    accepted = daemon.wait_for("smtp.accepted")
    processed = daemon.wait_for("message.processed")
    for line in (accepted, processed):
        assert line["message_id"] == inbox_id
        assert line["mail_message_id"] == "<log-check@rmm.example.invalid>"
    assert processed["action"] == "new_ticket"
    assert processed["component"] == "inbox-worker-0"
    assert daemon.stop() == 0


def test_health_reports_components_and_refuses_when_not_ready(
    start_daemon: StartDaemon, sqlite_url: str
) -> None:
    """`/healthz` is 200 with every component running and the rules version."""
    daemon = start_daemon(sqlite_url)
    status, body = daemon.health()
    assert status == 200
    assert body["ready"] is True
    assert set(body["components"]) == {"smtp:main", "inbox-worker-0", "rules-reloader",
                                       "watchdog", "sqlite-checkpoint", "http"}
    assert set(body["components"].values()) == {"running"}
    assert daemon.stop() == 0


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"rules": {"dir": "/nonexistent/rules"}}, "rules directory does not exist"),
        ({"smtp": [{"name": "public", "listen": "0.0.0.0:2525"}]}, "needs a recipients list"),
        ({"databse": {}}, "unknown key 'databse'"),
    ],
)
def test_configuration_errors_exit_78(
    start_daemon: StartDaemon, sqlite_url: str, config: dict[str, Any], message: str
) -> None:
    """Broken settings or rules stop start-up with EX_CONFIG, so systemd does not restart-loop."""
    daemon = start_daemon(sqlite_url, wait=False, **config)
    assert daemon.process is not None
    assert daemon.process.wait(60) == 78
    assert message in "".join(daemon.raw_output)


@pytest.mark.postgres
def test_451_while_postgresql_is_unreachable_and_accepted_when_it_is_back(
    start_daemon: StartDaemon, pg_url: str
) -> None:
    """PostgreSQL cut off mid-run: mail gets 451 and is kept by the sender; once the
    database is back the same mail is stored and processed."""
    url = make_url(pg_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    try:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(
            hide_password=False)
        daemon = start_daemon(proxied)
        daemon.send(automate_tagged("FAILED", date=T0, message_id="before"))
        proxy.cut()
        data = automate_tagged("FAILED", date=T0 + timedelta(minutes=1), message_id="during")
        with daemon.smtp() as client:
            client.mail("automate@example.invalid")
            client.rcpt("alerts@helpdesk.example.net")
            code, reply = client.data(data)
        assert (code, reply.decode()) == (451, REPLY_NOT_STORED[4:])
        proxy.restore()
        daemon.send(data)
        daemon.wait_until(lambda: [m["state"] for m in daemon.read(messages)] == ["done", "done"])
        [ticket] = daemon.read(tickets)
        assert ticket["occurrences"] == 2
        assert daemon.stop() == 0
    finally:
        proxy.close()


def test_a_taken_port_fails_start_up_with_a_plain_message(
    start_daemon: StartDaemon, sqlite_url: str
) -> None:
    """Another process on the SMTP port: exit 1 and the address named, no traceback."""
    first = start_daemon(sqlite_url)
    second = start_daemon(sqlite_url, wait=False, smtp=first.config["smtp"],
                          http={"listen": f"127.0.0.1:{free_port()}"})
    assert second.process is not None
    assert second.process.wait(60) == 1
    output = "".join(second.raw_output)
    assert f"smtp:main: cannot listen on {first.config['smtp'][0]['listen']}" in output
    assert "Traceback" not in output
    assert first.stop() == 0
