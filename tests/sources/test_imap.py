"""IMAP mailboxes against a real Dovecot: mail becomes tickets, then leaves the folder (R1.1).

Every test drives the real poller component (`ImapPoller.run` with a
`stopping` event) against Dovecot over TLS, with a fresh account per test,
and reads outcomes back: inbox rows, tickets, the cursor, and what the
server's folders hold. Waits are bounded polls, never sleeps or timing
assertions, except the one the issue asks for ("within a second").
Behaviour that stores mail runs on SQLite and PostgreSQL (`runtime`); the
rest on SQLite only (`sqlite_runtime`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from structlog.testing import capture_logs

from alertd.db.tables import Message
from alertd.inbox.store import content_hash
from alertd.runtime import Runtime, open_runtime
from alertd.settings import Settings, bundled_rules_dir
from alertd.sources.imap import imap_components, mailbox_identity
from alertd.sources.imap_state import ImapState
from tests.helpers import messages, process, raw, tickets
from tests.mails import automate_monitor, automate_tagged
from tests.sources.conftest import (
    MailboxFactory,
    MailClient,
    mailbox_settings,
    running,
    start_dovecot,
    wait_until,
)
from tests.sources.dovecot import Dovecot, MailUser, free_port

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def alert(number: int, *, computer: int = 2201) -> bytes:
    """An Automate alert in the tagged template, unique by ``number``."""
    return automate_tagged("FAILED", date=T0 + timedelta(minutes=number), computer_id=computer,
                           host=f"NW-{computer}", message_id=f"imap-{number}-{computer}")


def huge_alert(number: int) -> bytes:
    """An alert of about 5 KB."""
    return alert(number).replace(b"Result: 3.2", b"Result: " + b"x" * 5000 + b" 3.2")


async def stored(runtime: Runtime) -> int:
    """Rows in the inbox."""
    return len(await messages(runtime))


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """Captured log events called ``name``."""
    return [entry for entry in logs if entry.get("event") == name]


def total(logs: list[dict[str, Any]], key: str) -> int:
    """The sum of ``key`` over every `imap.drained` line."""
    return sum(int(entry[key]) for entry in events(logs, "imap.drained"))


async def all_seen(imap: MailClient, folder: str, count: int) -> bool:
    """Whether ``folder`` holds ``count`` mails, all flagged \\Seen."""
    flags = await imap.flags(folder)
    return len(flags) == count and all("\\Seen" in entry for entry in flags)


# -- after: move / flag / delete ------------------------------------------------------


async def test_appended_mail_becomes_tickets_and_is_moved(
    runtime: Runtime, make_mailbox: MailboxFactory, imap: MailClient,
) -> None:
    """Appended alerts are stored with their mailbox identity, UIDVALIDITY and UID, moved to
    Processed (created for the purpose; still unread, as BODY.PEEK leaves them), and
    processed into deduplicated tickets."""
    await imap.append([alert(1, computer=2201), alert(2, computer=2202),
                       alert(3, computer=2201)])
    mailbox = make_mailbox()
    assert not await imap.exists("Processed")
    with capture_logs() as logs:
        async with running(runtime, mailbox):
            # Not asked about until the poller made it: Dovecot's Maildir STATUS of a missing
            # folder can leave its directory behind, and the poller's CREATE then finds it.
            await wait_until(lambda: events(logs, "imap.connected"), what="connected")
            await wait_until(lambda: imap.count("Processed"), equals=3, what="all moved")
    assert await imap.exists("Processed")
    assert await imap.count("INBOX") == 0
    assert all("\\Seen" not in flags for flags in await imap.flags("Processed"))
    async with runtime.sessions() as session:
        rows = (await session.execute(
            select(Message.source, Message.mailbox, Message.uidvalidity, Message.uid)
            .order_by(Message.uid))).all()
        validity = (await session.execute(select(ImapState.uidvalidity))).scalar_one()
    assert [tuple(row) for row in rows] == [
        ("imap:alerts", mailbox_identity(mailbox), validity, uid) for uid in (1, 2, 3)]
    assert events(logs, "imap.folder_created")[0]["folder"] == "Processed"
    connected = events(logs, "imap.connected")[0]
    assert (connected["idle"], connected["move"], connected["uidplus"]) == (True, True, True)
    await process(runtime)
    assert sorted(ticket["occurrences"] for ticket in await tickets(runtime)) == [1, 2]


async def test_flag_mode_marks_seen_and_reads_each_mail_once(
    sqlite_runtime: Runtime, make_mailbox: MailboxFactory, imap: MailClient,
) -> None:
    """With `after: flag` mail stays in the folder, flagged \\Seen, and is read once: a later
    mail is the only one fetched on the next pass."""
    runtime = sqlite_runtime
    await imap.append([alert(1), alert(2)])
    with capture_logs() as logs:
        async with running(runtime, make_mailbox(after="flag")):
            await wait_until(lambda: all_seen(imap, "INBOX", 2), what="both flagged")
            await imap.append([alert(3)])
            await wait_until(lambda: all_seen(imap, "INBOX", 3), what="third flagged")
    assert await stored(runtime) == 3
    assert not await imap.exists("Processed")
    assert (total(logs, "stored"), total(logs, "duplicates")) == (3, 0)
    assert not events(logs, "imap.leftovers_finished"), "flagged mail is left alone"


async def test_delete_mode_expunges_stored_mail(
    sqlite_runtime: Runtime, make_mailbox: MailboxFactory, imap: MailClient,
) -> None:
    """With `after: delete` stored mail is deleted and expunged; no folder is created."""
    runtime = sqlite_runtime
    await imap.append([alert(1), alert(2), alert(3)])
    async with running(runtime, make_mailbox(after="delete")):
        await wait_until(lambda: stored(runtime), equals=3, what="all stored")
        await wait_until(lambda: imap.count("INBOX"), equals=0, what="all expunged")
    assert not await imap.exists("Processed")
    await process(runtime)
    assert [ticket["occurrences"] for ticket in await tickets(runtime)] == [3]


# -- waiting for mail -----------------------------------------------------------------


async def test_mail_arriving_during_idle_is_processed_within_a_second(
    sqlite_runtime: Runtime, make_mailbox: MailboxFactory, imap: MailClient,
) -> None:
    """While the poller waits in IDLE (its poll is an hour away), a new mail is stored, moved
    and ticketed by a running inbox worker within a second of its APPEND."""
    runtime = sqlite_runtime
    worker_stopping = asyncio.Event()
    worker = asyncio.create_task(runtime.worker().run(worker_stopping))
    try:
        async with running(runtime, make_mailbox(poll_interval=timedelta(hours=1))) as poller:
            await wait_until(lambda: poller.poller.state == "idle", what="idle")
            await asyncio.sleep(0.1)  # the IDLE command is on the wire by now
            await imap.append([alert(1)])
            await wait_until(lambda: tickets(runtime), within=1.0, step=0.01,
                             what="a ticket within a second of the APPEND")
            await wait_until(lambda: imap.count("Processed"), equals=1, what="moved")
    finally:
        worker_stopping.set()
        await worker


async def test_idle_is_renewed_and_still_hears_new_mail(
    sqlite_runtime: Runtime, make_mailbox: MailboxFactory, imap: MailClient,
) -> None:
    """IDLE is ended and issued again every `idle_renew` (here 0.2 s; by default 25 minutes,
    under the servers' 29-minute limit); mail arriving after several renewals is taken in."""
    mailbox = make_mailbox(poll_interval=timedelta(hours=1),
                           idle_renew=timedelta(milliseconds=200))
    with capture_logs() as logs:
        async with running(sqlite_runtime, mailbox):
            await wait_until(lambda: len(events(logs, "imap.idle_renewed")) >= 3,
                             what="three renewals")
            await imap.append([alert(1)])
            await wait_until(lambda: imap.count("Processed"), equals=1, what="moved")
    assert await stored(sqlite_runtime) == 1


# -- identity and recovery ------------------------------------------------------------


async def test_uidvalidity_change_creates_no_duplicates(
    runtime: Runtime, make_mailbox: MailboxFactory, imap: MailClient,
) -> None:
    """The folder deleted and recreated with the same mails (a new UIDVALIDITY) is read again
    from the start, and the inbox recognises every mail: no new row, no new occurrence."""
    mails = [alert(1, computer=2201), alert(2, computer=2202), alert(3, computer=2201)]
    await imap.create("Alerts")
    await imap.append(mails, folder="Alerts")
    mailbox = make_mailbox(folder="Alerts", after="flag")
    async with running(runtime, mailbox):
        await wait_until(lambda: all_seen(imap, "Alerts", 3), what="stored and flagged")
    await process(runtime)
    before = await tickets(runtime)
    async with runtime.sessions() as session:
        first_validity = (await session.execute(select(ImapState.uidvalidity))).scalar_one()

    await imap.delete("Alerts")
    await imap.create("Alerts")
    await imap.append(mails, folder="Alerts")
    with capture_logs() as logs:
        async with running(runtime, mailbox):
            await wait_until(lambda: all_seen(imap, "Alerts", 3), what="flagged again")
    [changed] = events(logs, "imap.uidvalidity_changed")
    assert changed["old"] == first_validity
    assert changed["new"] != first_validity
    assert (total(logs, "stored"), total(logs, "duplicates")) == (0, 3)
    assert await stored(runtime) == 3
    await process(runtime)
    assert await tickets(runtime) == before


async def test_mail_stored_before_a_crash_is_only_acted_upon(
    runtime: Runtime, make_mailbox: MailboxFactory, imap: MailClient,
) -> None:
    """Mail the inbox already holds but that is still waiting in the folder (as when the process
    died between commit and move) is moved without being fetched or stored again."""
    await imap.append([alert(1), alert(2), alert(3)])
    async with running(runtime, make_mailbox(after="flag")):
        await wait_until(lambda: all_seen(imap, "INBOX", 3), what="stored and flagged")
    await imap.unflag_seen("INBOX")   # as if the process had died before acting
    with capture_logs() as logs:
        async with running(runtime, make_mailbox(after="move")):
            await wait_until(lambda: imap.count("Processed"), equals=3, what="moved")
    [finished] = events(logs, "imap.leftovers_finished")
    assert finished["count"] == 3
    assert (total(logs, "stored"), total(logs, "duplicates")) == (0, 0)
    assert await stored(runtime) == 3


async def test_thousands_of_mails_drain_in_bounded_commands(
    runtime: Runtime, dovecot: Dovecot, mail_user: MailUser, make_mailbox: MailboxFactory,
    imap: MailClient,
) -> None:
    """3,000 mails (far more than one aioimaplib read survives) drain in bounded FETCH and
    MOVE commands: every one stored once and moved."""
    count = 3000
    dovecot.drop_mail(mail_user, (alert(n, computer=1000 + n % 40) for n in range(count)))
    async with running(runtime, make_mailbox(batch_size=100)):
        await wait_until(lambda: imap.count("Processed"), equals=count, what="all moved")
    assert await imap.count("INBOX") == 0
    assert await stored(runtime) == count


async def test_stopping_finishes_the_batch_in_hand_and_logs_out(
    runtime: Runtime, dovecot: Dovecot, mail_user: MailUser, make_mailbox: MailboxFactory,
    imap: MailClient,
) -> None:
    """Stopped in the middle of a drain, the poller moves what it stored (and nothing it did
    not), logs out, and the next run takes in the rest."""
    count = 1500
    dovecot.drop_mail(mail_user, (alert(n, computer=1000 + n % 40) for n in range(count)))
    mailbox = make_mailbox(batch_size=20)
    async with running(runtime, mailbox) as poller:
        await wait_until(lambda: stored(runtime), step=0.001, what="a first batch")
        await poller.stop()
    in_inbox, moved = await stored(runtime), await imap.count("Processed")
    assert moved == in_inbox
    assert moved + await imap.count("INBOX") == count
    assert moved < count, "the drain was stopped before the end"
    logged_out = re.compile(rf"imap\({mail_user.name}\).*Disconnected: Logged out")
    await wait_until(lambda: logged_out.search(dovecot.read_log()), what="LOGOUT")
    async with running(runtime, mailbox):
        await wait_until(lambda: imap.count("Processed"), equals=count, what="the rest")
    assert await stored(runtime) == count


async def test_a_server_allowing_one_connection_still_gets_a_long_drain(
    sqlite_runtime: Runtime, tmp_path: Path,
) -> None:
    """A long drain acts over a second connection; a server that refuses it ([LIMIT], one
    connection per user) gets the moves over the drain's own connection instead, and the
    refusal is reported as what it is, not as wrong credentials."""
    server = start_dovecot(extra_config="protocol imap {\n  mail_max_userip_connections = 1\n}")
    try:
        user = server.add_user()
        count = 1200
        server.drop_mail(user, (alert(n, computer=1000 + n % 40) for n in range(count)))
        with capture_logs() as logs:
            async with running(sqlite_runtime, mailbox_settings(server, user, tmp_path)):
                await wait_until(lambda: server.folder_files(user, "Processed") == count,
                                 what="all moved")
        assert server.folder_files(user) == 0
        assert await stored(sqlite_runtime) == count
        [refused] = events(logs, "imap.action_session_refused")
        assert refused["reason"] == "connection_limit"
        assert not events(logs, "imap.down")
    finally:
        server.close()


async def test_mail_over_a_megabyte_is_fetched_alone_and_stored_whole(
    sqlite_runtime: Runtime, make_mailbox: MailboxFactory, imap: MailClient,
) -> None:
    """A batch FETCH reads no more than the first megabyte of each mail; a longer mail (under
    `max_size`) is fetched again on its own and stored whole, between its neighbours."""
    big = alert(2).replace(b"Result: 3.2", b"Result: " + b"x" * 76 * 16_000 + b" 3.2")
    big = big.replace(b"x" * 76, b"x" * 74 + b"\r\n")
    assert len(big) > 1_100_000
    await imap.append([alert(1), big, alert(3)])
    async with running(sqlite_runtime, make_mailbox()):
        await wait_until(lambda: imap.count("Processed"), equals=3, what="all moved")
    stored_hashes = [content_hash(await raw(sqlite_runtime, row["id"]))
                     for row in await messages(sqlite_runtime)]
    assert stored_hashes == [content_hash(mail) for mail in (alert(1), big, alert(3))]


# -- mail alertd will not take in ----------------------------------------------------


async def test_a_mail_the_server_cannot_return_is_never_passed_over(
    sqlite_runtime: Runtime, dovecot: Dovecot, mail_user: MailUser,
    make_mailbox: MailboxFactory, imap: MailClient,
) -> None:
    """In one batch, a mail the server cannot read (Dovecot drops the connection over it) and
    a later one the database refuses: the drain finds the broken mail by fetching the batch
    one by one, gives up on it after three tries instead of reconnecting forever, and with
    `after: delete` neither mail is deleted unstored: both are set aside where they are, and
    the others are stored and deleted."""
    runtime = sqlite_runtime
    mails = [alert(number) for number in range(1, 6)]
    dovecot.drop_mail(mail_user, mails)
    [unreadable] = [path for path in (mail_user.maildir() / "new").iterdir()
                    if path.read_bytes() == mails[1].replace(b"\r\n", b"\n")]
    unreadable.chmod(0)
    async with runtime.engine.begin() as connection:
        await connection.exec_driver_sql(
            "CREATE TRIGGER refuse_fourth BEFORE INSERT ON messages "
            "WHEN NEW.message_id = '<imap-4-2201@rmm.example.invalid>' "
            "BEGIN SELECT RAISE(ABORT, 'refused for the test'); END")
    mailbox = make_mailbox(after="delete", idle=False, poll_interval=timedelta(seconds=0.1))
    with capture_logs() as logs:
        async with running(runtime, mailbox):
            await wait_until(lambda: len(events(logs, "imap.mail_set_aside")), equals=2,
                             what="both set aside")
            await wait_until(lambda: imap.count("INBOX"), equals=2, what="the rest deleted")
    async with runtime.sessions() as session:
        stored_uids = (await session.execute(select(Message.uid).order_by(Message.uid))).all()
    assert [uid for (uid,) in stored_uids] == [1, 3, 5]
    reasons = {event["uid"]: event["reason"] for event in events(logs, "imap.mail_set_aside")}
    assert "failed to return it 3 times" in reasons[2]
    assert "database refused" in reasons[4]
    assert await imap.count("INBOX") == 2


async def test_oversized_mail_goes_to_the_failed_folder(
    sqlite_runtime: Runtime, make_mailbox: MailboxFactory, imap: MailClient,
) -> None:
    """A mail over `max_size` is not fetched: it is moved to `failed_folder` (created when
    missing) with an error in the log, and the mail around it is stored as usual."""
    await imap.append([alert(1), huge_alert(2), alert(3)])
    mailbox = make_mailbox(max_size=3000, failed_folder="Failed")
    with capture_logs() as logs:
        async with running(sqlite_runtime, mailbox):
            await wait_until(lambda: imap.count("Failed"), equals=1, what="set aside")
            await wait_until(lambda: imap.count("Processed"), equals=2, what="moved")
    assert await stored(sqlite_runtime) == 2
    [aside] = events(logs, "imap.mail_set_aside")
    assert "larger than max_size" in aside["reason"]
    assert aside["log_level"] == "error"
    [kept] = await imap.bodies("Failed")
    assert kept.replace(b"\r\n", b"\n") == huge_alert(2).replace(b"\r\n", b"\n")


async def test_oversized_mail_without_failed_folder_stays_untouched(
    sqlite_runtime: Runtime, make_mailbox: MailboxFactory, imap: MailClient,
) -> None:
    """Without `failed_folder` an oversized mail stays in the folder, is never moved with the
    processed mail, and is reported once, not on every pass."""
    await imap.append([alert(1), huge_alert(2)])
    with capture_logs() as logs:
        async with running(sqlite_runtime, make_mailbox(max_size=3000)):
            await wait_until(lambda: imap.count("Processed"), equals=1, what="moved")
            await imap.append([alert(3)])
            await wait_until(lambda: imap.count("Processed"), equals=2, what="moved again")
    assert await imap.count("INBOX") == 1
    assert len(events(logs, "imap.mail_set_aside")) == 1
    assert await stored(sqlite_runtime) == 2


# -- connections ----------------------------------------------------------------------


async def test_plain_and_starttls_connections(
    sqlite_runtime: Runtime, dovecot: Dovecot, make_mailbox: MailboxFactory, imap: MailClient,
) -> None:
    """STARTTLS on the plain port, and plain IMAP (allowed on loopback), both drain mail."""
    await imap.append([alert(1)])
    starttls = make_mailbox(security="starttls", port=dovecot.plain_port)
    async with running(sqlite_runtime, starttls):
        await wait_until(lambda: imap.count("Processed"), equals=1, what="moved (STARTTLS)")
    await imap.append([alert(2)])
    plain = make_mailbox(security="plain", port=dovecot.plain_port)
    async with running(sqlite_runtime, plain):
        await wait_until(lambda: imap.count("Processed"), equals=2, what="moved (plain)")
    assert await stored(sqlite_runtime) == 2


async def test_wrong_password_is_reported_clearly_and_retried_with_backoff(
    sqlite_runtime: Runtime, dovecot: Dovecot, mail_user: MailUser,
    make_mailbox: MailboxFactory, imap: MailClient,
) -> None:
    """A refused login is logged once, as an error saying the credentials are wrong, retried
    after `login_backoff` (the server sees the attempts), and the mailbox recovers once the
    password file is fixed; the password never appears in the logs."""
    await imap.append([alert(1)])
    mailbox = make_mailbox()
    assert mailbox.password_file is not None
    mailbox.password_file.write_text("not-the-password\n")
    refusals = len(re.findall(rf"passwd-file\({mail_user.name},.*Password mismatch",
                              dovecot.read_log()))
    with capture_logs() as logs:
        async with running(sqlite_runtime, mailbox):
            await wait_until(
                lambda: len(re.findall(rf"passwd-file\({mail_user.name},.*Password mismatch",
                                       dovecot.read_log())) >= refusals + 2,
                what="two refused logins")
            mailbox.password_file.write_text(mail_user.password + "\n")
            await wait_until(lambda: imap.count("Processed"), equals=1, what="moved")
    [down] = events(logs, "imap.down")
    assert (down["reason"], down["log_level"]) == ("login_failed", "error")
    assert "the credentials are wrong" in down["error"]
    assert down["retry_in_s"] >= 0.8 * mailbox.login_backoff.total_seconds() - 0.01
    [up] = events(logs, "imap.up")
    assert up["was"] == "login_failed"
    assert up["attempts"] >= 2
    assert mail_user.password not in repr(logs)
    assert "not-the-password" not in repr(logs)


async def test_outages_are_named_and_logged_once(
    sqlite_runtime: Runtime, make_mailbox: MailboxFactory,
) -> None:
    """Each outage names its cause in one `imap.down` line however often it is retried:
    refused (nothing listening), tls (certificate not trusted), dns (no such host)."""
    cases = {
        "refused": make_mailbox(port=free_port()),
        "tls": make_mailbox(ca_file=None),
        "dns": make_mailbox(host="imap.does-not-exist.invalid"),
    }
    for reason, mailbox in cases.items():
        with capture_logs() as logs:
            async with running(sqlite_runtime, mailbox):
                await wait_until(lambda: len(events(logs, "imap.retrying")) >= 2,
                                 what=f"{reason}: retries")
        [down] = events(logs, "imap.down")
        assert down["reason"] == reason, down
        if reason == "tls":
            assert "certificate" in down["error"]
            assert "set ca_file" in down["error"]


async def test_server_stopped_and_started_again_polling_resumes(
    sqlite_runtime: Runtime, own_dovecot: Dovecot, tmp_path: Path,
) -> None:
    """Dovecot stopped under a connected poller: one `imap.down`; started again: one `imap.up`,
    and mail appended afterwards is drained without anyone restarting alertd."""
    user = own_dovecot.add_user()
    mailbox = mailbox_settings(own_dovecot, user, tmp_path)
    with capture_logs() as logs:
        async with running(sqlite_runtime, mailbox) as poller:
            await wait_until(lambda: poller.poller.state == "idle", what="connected")
            await asyncio.to_thread(own_dovecot.stop)
            await wait_until(lambda: events(logs, "imap.down"), what="down")
            await asyncio.to_thread(own_dovecot.start)
            await wait_until(lambda: events(logs, "imap.up"), what="up")
            client = await MailClient.login(own_dovecot, user)
            try:
                await client.append([alert(1)])
                await wait_until(lambda: client.count("Processed"), equals=1, what="moved")
            finally:
                await client.logout()
    [down] = events(logs, "imap.down")
    assert down["reason"] in {"connection_lost", "refused"}
    assert len(events(logs, "imap.up")) == 1
    assert await stored(sqlite_runtime) == 1


# -- the daemon's view ----------------------------------------------------------------


async def test_one_component_per_mailbox_draining_side_by_side(
    sqlite_runtime: Runtime, dovecot: Dovecot, tmp_path: Path,
) -> None:
    """`imap_components` makes one `imap:<name>` component per configured mailbox; two drain
    side by side into one inbox, each mail under its own source."""
    runtime = sqlite_runtime
    first, second = dovecot.add_user(), dovecot.add_user()
    boxes = (mailbox_settings(dovecot, first, tmp_path, name="one"),
             mailbox_settings(dovecot, second, tmp_path, name="two"))
    runtime.settings = Settings.model_validate({**runtime.settings.model_dump(), "imap": boxes})
    components = imap_components(runtime)
    assert [component.name for component in components] == ["imap:one", "imap:two"]
    clients = [await MailClient.login(dovecot, user) for user in (first, second)]
    stopping = asyncio.Event()
    tasks = [asyncio.create_task(component.run(stopping)) for component in components]
    try:
        await clients[0].append([alert(1)])
        await clients[1].append([automate_monitor("FAILED", date=T0)])
        await wait_until(lambda: stored(runtime), equals=2, what="both stored")
        for client in clients:
            await wait_until(lambda c=client: c.count("Processed"), equals=1, what="moved")
    finally:
        stopping.set()
        await asyncio.gather(*tasks)
        for client in clients:
            await client.logout()
    assert sorted(row["source"] for row in await messages(runtime)) == ["imap:one", "imap:two"]


async def test_two_mailboxes_with_one_name_are_refused(
    sqlite_runtime: Runtime, make_mailbox: MailboxFactory,
) -> None:
    """Two mailboxes configured under one name are a configuration error."""
    from alertd.errors import ConfigError

    runtime = sqlite_runtime
    runtime.settings = Settings.model_validate(
        {**runtime.settings.model_dump(), "imap": (make_mailbox(), make_mailbox())})
    with pytest.raises(ConfigError, match="must be unique: alerts"):
        imap_components(runtime)


@pytest.mark.postgres
async def test_one_poller_per_mailbox_across_instances(
    pg_url: str, make_mailbox: MailboxFactory, imap: MailClient,
) -> None:
    """On PostgreSQL two pollers for one mailbox (as on two instances) take turns through the
    advisory-lock lease: one drains, the other stands by and takes over when the first stops."""
    settings = Settings.model_validate({"database": {"url": pg_url},
                                        "rules": {"dir": bundled_rules_dir()}})
    mailbox = make_mailbox()
    async with open_runtime(settings) as one, open_runtime(settings) as two:
        with capture_logs() as logs:
            async with running(one, mailbox) as first, running(two, mailbox) as second:
                await wait_until(lambda: {first.poller.state, second.poller.state}
                                 == {"idle", "standby"}, what="one active, one standby")
                active, standby = ((first, second) if first.poller.state == "idle"
                                   else (second, first))
                await imap.append([alert(1)])
                await wait_until(lambda: imap.count("Processed"), equals=1, what="moved")
                await active.stop()
                await wait_until(lambda: standby.poller.state == "idle", what="took over")
                await imap.append([alert(2)])
                await wait_until(lambda: imap.count("Processed"), equals=2, what="moved again")
        assert [entry["reason"] for entry in events(logs, "lease.waiting")] == [
            "held by another instance"]
        assert len(await messages(one)) == 2


@pytest.fixture(scope="module")
def plain_dovecot() -> Iterator[Dovecot]:
    """A Dovecot that advertises no IDLE, MOVE or UIDPLUS after login."""
    server = start_dovecot(
        extra_config="protocol imap {\n  imap_capability = IMAP4rev1 LITERAL+\n}")
    yield server
    server.close()


async def test_server_without_idle_move_or_uidplus(
    sqlite_runtime: Runtime, plain_dovecot: Dovecot, tmp_path: Path,
) -> None:
    """Without IDLE the poller polls every `poll_interval`; without MOVE a move is COPY, then
    \\Deleted and EXPUNGE; both are found in the capabilities sent after login (the pre-login
    list still offers IDLE)."""
    user = plain_dovecot.add_user()
    mailbox = mailbox_settings(plain_dovecot, user, tmp_path)
    client = await MailClient.login(plain_dovecot, user)
    try:
        await client.append([alert(1), alert(2)])
        with capture_logs() as logs:
            async with running(sqlite_runtime, mailbox) as poller:
                await wait_until(lambda: client.count("Processed"), equals=2, what="moved")
                assert poller.poller.state in {"polling", "draining"}
                await client.append([alert(3)])
                await wait_until(lambda: client.count("Processed"), equals=3, what="polled")
        assert await client.count("INBOX") == 0
    finally:
        await client.logout()
    [connected] = events(logs, "imap.connected")
    assert (connected["idle"], connected["move"], connected["uidplus"]) == (False, False, False)
    assert await stored(sqlite_runtime) == 3


async def test_awkward_password_logs_in_and_never_reaches_any_log(
    sqlite_runtime: Runtime, dovecot: Dovecot, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A password with quotes, backslashes and spaces logs in, and it appears in no log line,
    not even aioimaplib's own wire dump at debug level (which is dropped: it holds mail too)."""
    password = 'a "quoted" \\back\\slashed pass'
    user = dovecot.add_user(password=password)
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logs:
        async with running(sqlite_runtime, mailbox_settings(dovecot, user, tmp_path)) as poller:
            await wait_until(poller.poller.waiting.is_set, what="logged in and drained")
    assert events(logs, "imap.connected")
    assert not events(logs, "imap.down")
    assert "slashed" not in caplog.text  # in any quoting or escaping
    assert "slashed" not in repr(logs)
