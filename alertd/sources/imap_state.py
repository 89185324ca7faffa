"""Where each IMAP mailbox's poller is up to: its UIDVALIDITY, highest stored UID, parked UIDs.

One row per mailbox, keyed by the mailbox's identity (`user@host/folder`, the
same string the inbox stores with every mail from it). The row is a cursor,
not the truth: the inbox's unique `(mailbox, uidvalidity, uid)` and
`(Message-ID, content hash)` constraints are what keep a mail from being
stored twice. The cursor only ever trails what the inbox has committed, so
a cursor that is behind (a crash before it was saved) costs a re-fetch that
the inbox reports as duplicates, never a lost or doubled mail.

Every UID at or below `last_uid` (under the same UIDVALIDITY) is stored in
the inbox, except the ones listed in `parked`: mails alertd would not take
in (too large, unreadable) and left on the server. Only the poller that
holds the mailbox's lease writes the row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, String, Text, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from alertd.db.tables import Base


class ImapState(Base):
    """The poller's cursor for one mailbox."""

    __tablename__ = "imap_state"

    mailbox: Mapped[str] = mapped_column(Text, primary_key=True)
    """`user@host/folder`: the identity stored in the inbox with each mail."""
    name: Mapped[str] = mapped_column(String(255))
    """The configured name (`imap:<name>`), for people reading the table."""
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger)
    """Every UID up to this one is in the inbox, or parked."""
    parked: Mapped[list[Any]] = mapped_column(JSON, default=list)
    """UIDs at or below `last_uid` left on the server without being stored."""
    updated_at: Mapped[datetime]


@dataclass
class Cursor:
    """The in-memory copy of a mailbox's row, saved after each group of server actions."""

    mailbox: str
    name: str
    uidvalidity: int = 0
    last_uid: int = 0
    parked: set[int] = field(default_factory=set)
    saved: tuple[int, int, frozenset[int]] | None = None
    """What the database holds, to skip writes that change nothing."""

    @property
    def dirty(self) -> bool:
        """Whether the database is behind this copy."""
        return self.saved != (self.uidvalidity, self.last_uid, frozenset(self.parked))

    def reset(self, uidvalidity: int) -> None:
        """Start over under a new UIDVALIDITY: nothing is known to be stored."""
        self.uidvalidity = uidvalidity
        self.last_uid = 0
        self.parked = set()

    def is_stored(self, uid: int) -> bool:
        """Whether the inbox holds ``uid`` (so the server action may be applied to it)."""
        return uid <= self.last_uid and uid not in self.parked


async def load_cursor(session: AsyncSession, mailbox: str, name: str) -> Cursor:
    """The saved cursor for ``mailbox``, or an empty one."""
    row = (await session.execute(
        select(ImapState.uidvalidity, ImapState.last_uid, ImapState.parked)
        .where(ImapState.mailbox == mailbox)
    )).first()
    cursor = Cursor(mailbox=mailbox, name=name)
    if row is not None:
        cursor.uidvalidity = int(row[0])
        cursor.last_uid = int(row[1])
        cursor.parked = {int(uid) for uid in (row[2] or [])}
        cursor.saved = (cursor.uidvalidity, cursor.last_uid, frozenset(cursor.parked))
    return cursor


async def save_cursor(session: AsyncSession, cursor: Cursor, now: datetime) -> None:
    """Write ``cursor`` in the caller's transaction (insert or update)."""
    module: Any = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    parked = sorted(cursor.parked)
    values = {"mailbox": cursor.mailbox, "name": cursor.name, "uidvalidity": cursor.uidvalidity,
              "last_uid": cursor.last_uid, "parked": parked, "updated_at": now}
    statement = module.insert(ImapState).values(**values)
    await session.execute(statement.on_conflict_do_update(
        index_elements=[ImapState.mailbox],
        set_={key: value for key, value in values.items() if key != "mailbox"},
    ))
    cursor.saved = (cursor.uidvalidity, cursor.last_uid, frozenset(parked))


async def list_cursors(session: AsyncSession) -> Sequence[ImapState]:
    """Every saved cursor, for `alertd mailboxes check`."""
    return (await session.execute(select(ImapState).order_by(ImapState.name))).scalars().all()
