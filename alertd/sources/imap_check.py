"""`alertd mailboxes check`: log into a configured mailbox and say what alertd would find.

It uses the poller's own connection code (`ImapSession`), so a check that
passes means the daemon can connect the same way. It reads the folder with
EXAMINE (read-only: nothing is moved, flagged or created) and reports the
message count, UIDVALIDITY, the capabilities alertd makes use of (IDLE,
MOVE, UIDPLUS), problems (why it cannot work) and notes (how it will work
around what the server lacks). No database is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from alertd.errors import EX_CONFIG, EX_FAILURE, EX_OK, EX_TEMPFAIL
from alertd.settings import ImapMailboxSettings
from alertd.sources.imap_client import WATCHED, ImapSession, ImapUnavailable

CONFIG_REASONS = frozenset({"login_failed", "credentials", "folder_missing", "tls"})
"""Outages that an admin fixes in the settings (or on the server's account)."""
UNAVAILABLE_REASONS = frozenset({"dns", "refused", "unreachable", "timeout", "connection_lost"})
"""Outages that may cure themselves."""


@dataclass
class MailboxCheck:
    """What checking one mailbox found."""

    name: str
    server: str
    security: str
    user: str
    folder: str
    messages: int | None = None
    uidvalidity: int | None = None
    capabilities: dict[str, bool] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reason: str | None = None
    """The first problem's kind (login_failed, dns, ...), None when all is well."""

    @property
    def ok(self) -> bool:
        """Whether alertd can drain this mailbox."""
        return not self.problems

    def exit_code(self) -> int:
        """0, or 78 for a configuration problem, 75 for an outage, 1 for anything else."""
        if self.ok:
            return EX_OK
        if self.reason in CONFIG_REASONS:
            return EX_CONFIG
        if self.reason in UNAVAILABLE_REASONS:
            return EX_TEMPFAIL
        return EX_FAILURE

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "name": self.name, "server": self.server, "security": self.security,
            "user": self.user, "folder": self.folder, "ok": self.ok,
            "messages": self.messages, "uidvalidity": self.uidvalidity,
            "capabilities": self.capabilities, "problems": self.problems,
            "notes": self.notes, "reason": self.reason,
        }


async def check_mailbox(mailbox: ImapMailboxSettings) -> MailboxCheck:
    """Connect, log in, EXAMINE the folder and look for the target folders; never raises
    for a mailbox problem (it is reported instead)."""
    found = MailboxCheck(
        name=mailbox.name, server=f"{mailbox.host}:{mailbox.port_or_default}",
        security=mailbox.security, user=mailbox.user, folder=mailbox.folder,
    )
    try:
        session = await ImapSession.open(mailbox)
    except ImapUnavailable as error:
        found.problems.append(error.message)
        found.reason = error.reason
        return found
    try:
        found.capabilities = {cap: session.has(cap) for cap in WATCHED}
        try:
            selected = await session.select(mailbox.folder, readonly=True)
        except ImapUnavailable as error:
            found.problems.append(error.message)
            found.reason = error.reason
            return found
        found.messages, found.uidvalidity = selected.exists, selected.uidvalidity
        targets = {"failed_folder": mailbox.failed_folder}
        if mailbox.after == "move":
            targets["move_to"] = mailbox.move_to
        for option, folder in targets.items():
            if folder and not await session.folder_exists(folder):
                found.notes.append(
                    f"{option} {folder!r} does not exist yet; the poller creates it")
        found.notes.extend(_workarounds(mailbox, found.capabilities))
    except ImapUnavailable as error:
        found.problems.append(error.message)
        found.reason = error.reason
    finally:
        await session.logout()
    return found


def _workarounds(mailbox: ImapMailboxSettings, capabilities: dict[str, bool]) -> list[str]:
    notes: list[str] = []
    poll = int(mailbox.poll_interval.total_seconds())
    if not capabilities.get("IDLE"):
        notes.append(f"no IDLE: new mail is looked for every {poll}s (poll_interval)")
    elif not mailbox.idle:
        notes.append(f"IDLE is switched off: new mail is looked for every {poll}s")
    deletes = mailbox.after == "delete" or (mailbox.after == "move"
                                            and not capabilities.get("MOVE"))
    if mailbox.after == "move" and not capabilities.get("MOVE"):
        notes.append("no MOVE: mail is moved as COPY, then flagged \\Deleted and expunged")
    if deletes and not capabilities.get("UIDPLUS"):
        notes.append("no UIDPLUS: EXPUNGE also removes mail others flagged \\Deleted "
                     "in this folder")
    return notes
