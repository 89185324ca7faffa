"""The IMAP source's pure parts: settings checks, folder names, UID sets, FETCH parsing and
reading, backoff."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import aioimaplib
import pytest
from pydantic import ValidationError

from alertd.settings import ImapMailboxSettings
from alertd.sources.imap import ImapPoller, Outage
from alertd.sources.imap_client import (
    ImapLoginRefused,
    ImapUnavailable,
    _line_reader,
    _LinearFetch,
    folder_argument,
    parse_fetch,
    read_password,
    uid_set,
)


def settings(**values: Any) -> ImapMailboxSettings:
    """A mailbox with the required keys filled in."""
    base: dict[str, Any] = {"name": "alerts", "host": "imap.example.net", "user": "alerts",
                            "password_env": "ALERTD_IMAP_PASSWORD"}
    return ImapMailboxSettings.model_validate({**base, **values})


def test_defaults_follow_the_security_mode() -> None:
    """Port 993 for implicit TLS, 143 for STARTTLS and plain; move to Processed by default."""
    assert settings().port_or_default == 993
    assert settings(security="starttls").port_or_default == 143
    assert settings(security="plain", host="127.0.0.1").port_or_default == 143
    assert settings(port=1993).port_or_default == 1993
    assert (settings().after, settings().move_to) == ("move", "Processed")
    assert settings().idle_renew == timedelta(minutes=25)


@pytest.mark.parametrize(("values", "message"), [
    ({"security": "plain"}, "security: plain sends the password unencrypted"),
    ({"password_file": "/run/secret"}, "exactly one of password_file or password_env"),
    ({"password_env": None}, "exactly one of password_file or password_env"),
    ({"after": "move", "move_to": None}, "after: move needs move_to"),
    ({"move_to": "inbox"}, "move_to must differ from the folder drained"),
    ({"failed_folder": "INBOX"}, "failed_folder must differ from the folder drained"),
    ({"idle_renew": "30m"}, "idle_renew must be above 0 and at most 29m"),
    ({"poll_interval": 0}, "poll_interval must be above 0"),
    ({"reconnect_backoff": "10s", "reconnect_backoff_max": "1s"}, "reconnect_backoff_max"),
    ({"batch_size": 500}, "less than or equal to 200"),
    ({"tls": True}, "Extra inputs are not permitted"),
])
def test_settings_mistakes_are_refused_plainly(values: dict[str, Any], message: str) -> None:
    """Unsafe or inconsistent mailbox settings are errors that say what to change."""
    with pytest.raises(ValidationError, match=message):
        settings(**values)


def test_plain_is_allowed_on_loopback_or_when_explicitly_allowed() -> None:
    """`security: plain` needs `allow_plain: true` unless the server is on loopback."""
    assert settings(security="plain", allow_plain=True).security == "plain"
    assert settings(security="plain", host="localhost").security == "plain"


def test_password_comes_from_file_or_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The password is read at login from the file (trailing newline dropped) or the variable;
    a missing source is a login problem that names the file or variable, not the password."""
    secret = tmp_path / "imap"
    secret.write_text("s3cret\n")
    assert read_password(settings(password_env=None, password_file=secret)) == "s3cret"
    monkeypatch.setenv("ALERTD_IMAP_PASSWORD", "from-env")
    assert read_password(settings()) == "from-env"
    monkeypatch.delenv("ALERTD_IMAP_PASSWORD")
    with pytest.raises(ImapLoginRefused, match=r"ALERTD_IMAP_PASSWORD .* is not set"):
        read_password(settings())
    with pytest.raises(ImapLoginRefused, match="cannot read the password file"):
        read_password(settings(password_env=None, password_file=tmp_path / "missing"))


def test_folder_names_are_quoted_in_modified_utf7() -> None:
    """Folder names go on the wire quoted, non-ASCII in modified UTF-7 (RFC 3501 5.1.3)."""
    assert folder_argument("INBOX") == '"INBOX"'
    assert folder_argument("Alerts/Done") == '"Alerts/Done"'
    assert folder_argument("Erledigt & Geprüft") == '"Erledigt &- Gepr&APw-ft"'
    assert folder_argument("日本語") == '"&ZeVnLIqe-"'
    assert folder_argument('say "hi"\\') == '"say \\"hi\\"\\\\"'


def test_uid_sets_name_exactly_the_uids_given() -> None:
    """Consecutive UIDs become ranges; a gap is never bridged (it may hold mail not stored)."""
    assert uid_set([5]) == "5"
    assert uid_set([3, 1, 2, 7, 8, 10]) == "1:3,7:8,10"
    assert uid_set(range(1, 251)) == "1:250"


def test_fetch_answers_are_read_whichever_order_the_items_come_in() -> None:
    """The literal after `n FETCH (UID u BODY[] {size}` is mail u; the UID may also follow the
    literal; unsolicited FLAGS updates and the closing line are skipped."""
    lines = [
        b"1 FETCH (UID 11 BODY[] {5}", bytearray(b"first"), b")",
        b"2 FETCH (FLAGS (\\Seen))",
        b"3 FETCH (BODY[] {6}", bytearray(b"second"), b" UID 13)",
        b"Fetch completed (0.001 + 0.000 secs).",
    ]
    assert parse_fetch(lines) == {11: b"first", 13: b"second"}


def _fetch_answer(tag: str, mails: dict[int, bytes], *, news: int = 0) -> bytes:
    """A `UID FETCH (UID BODY.PEEK[])` answer as the server sends it, after ``news`` EXPUNGEs."""
    out = b"".join(b"* 1 EXPUNGE\r\n" for _ in range(news))
    for number, (uid, body) in enumerate(mails.items(), start=1):
        out += b"* %d FETCH (UID %d BODY[] {%d}\r\n%s)\r\n" % (number, uid, len(body), body)
    return out + tag.encode() + b" OK Fetch completed.\r\n"


async def _read(data: bytes, piece: int) -> dict[int, bytes]:
    """Feed ``data`` in pieces of ``piece`` bytes to a protocol with alertd's reader."""
    loop = asyncio.get_running_loop()
    protocol = aioimaplib.IMAP4ClientProtocol(loop)
    protocol.state = aioimaplib.SELECTED
    protocol._handle_responses = _line_reader(protocol)
    command = _LinearFetch("A1", "1:3", "(UID BODY.PEEK[])", prefix="UID", loop=loop)
    protocol.pending_async_commands["FETCH"] = command
    for start in range(0, len(data), piece):
        protocol.data_received(data[start:start + piece])
    await asyncio.wait_for(command.wait(), timeout=1)
    assert command.response.result == "OK"
    return parse_fetch(command.response.lines)


async def test_received_data_is_read_the_same_however_it_arrives() -> None:
    """The loop that reads received data in place of aioimaplib's recursive reader hands the
    FETCH its mails whether the answer comes whole or a byte at a time, and reads one piece of
    5,000 lines to the end (aioimaplib's own dies past about 1,000)."""
    mails = {7: b"Subject: a\r\n\r\n(one)\r\n", 8: b"", 9: b"x" * 3000 + b"\r\n"}
    answer = _fetch_answer("A1", mails)
    assert await _read(answer, len(answer)) == mails
    assert await _read(answer, 1) == mails
    assert await _read(answer, 37) == mails
    flood = _fetch_answer("A1", mails, news=5000)
    assert await _read(flood, len(flood)) == mails


def test_backoff_is_capped_jittered_and_long_after_a_refused_login() -> None:
    """Reconnection waits double from `reconnect_backoff` up to `reconnect_backoff_max`, with
    jitter below the cap; a refused login waits about `login_backoff`."""
    mailbox = settings(reconnect_backoff="1s", reconnect_backoff_max="60s",
                       login_backoff="15m")
    poller = ImapPoller.__new__(ImapPoller)
    poller.mailbox = mailbox
    poller.rng = random.Random(7)
    down = ImapUnavailable("refused", "x")
    delays = [poller._delay(Outage("refused", "x", 0.0, attempts=n), down)
              for n in range(1, 12)]
    assert all(0.5 * min(60, 2 ** (n - 1)) <= d <= min(60, 2 ** (n - 1))
               for n, d in enumerate(delays, start=1))
    assert max(delays) <= 60
    assert len({round(d, 6) for d in delays[-4:]}) == 4, "capped waits still differ (jitter)"
    refused = poller._delay(Outage("login_failed", "x", 0.0), ImapLoginRefused("login_failed",
                                                                                "x"))
    assert 0.8 * 900 <= refused <= 900
