"""IMAP sessions against a real Dovecot, below the poller: what one session hears of another's.

The poller drains a folder over one connection and acts on the stored mail
over a second one; these tests drive `ImapSession` directly, the way the
poller does, and check what the first session is told of the second's work.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from alertd.sources.imap_client import ImapSession
from tests.mails import automate_tagged
from tests.sources.conftest import MailboxFactory
from tests.sources.dovecot import Dovecot, MailUser

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def alert(number: int) -> bytes:
    """An Automate alert, unique by ``number``."""
    return automate_tagged("FAILED", date=T0 + timedelta(minutes=number), computer_id=2201,
                           host="NW-2201", message_id=f"session-{number}")


async def test_news_of_thousands_of_mails_moved_by_another_session_is_read(
    dovecot: Dovecot, mail_user: MailUser, make_mailbox: MailboxFactory,
) -> None:
    """A session whose folder another session emptied of 3,000 mails is told of all their
    EXPUNGEs at once when it next waits in IDLE, more lines in one read than aioimaplib's own
    reader survives, and goes on working."""
    dovecot.drop_mail(mail_user, (alert(n) for n in range(3000)))
    mailbox = make_mailbox()
    watcher = await ImapSession.open(mailbox)
    mover = await ImapSession.open(mailbox)
    try:
        await watcher.select(mailbox.folder)
        await mover.select(mailbox.folder)
        await mover.ensure_folder("Processed")
        await mover.move(await mover.search("ALL"), "Processed")
        watcher.new_mail.clear()  # the EXISTS of the SELECT
        assert await watcher.idle(asyncio.Event(), renew=0.2) == "renew"
        assert await watcher.search("ALL") == []
        assert not watcher.lost.is_set()
    finally:
        await watcher.logout()
        await mover.logout()
