"""The inbox worker: every message ends in a named state, and one bad message holds up no other."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from alertd.domain import ParsedMail
from alertd.errors import ParseError, StorageUnavailable
from alertd.inbox.pipeline import Incoming, Pipeline, Processed
from alertd.inbox.worker import INLINE_PARSE_BYTES, parse_batch
from alertd.rules.engine import RuleSet
from alertd.runtime import Runtime
from tests.helpers import deliver, deliver_and_process, message, messages, process, tickets
from tests.mails import automate_tagged

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


async def test_an_unparseable_mail_is_failed_with_its_reason_and_can_be_retried(
    runtime: Runtime,
) -> None:
    """An empty message fails with `parse: …`; it waits for an admin, then goes through again."""
    row = await deliver_and_process(runtime, b"\r\n\r\n")
    assert (row["state"], row["reason"]) == ("failed", "parse: empty message")
    assert await runtime.store.retry([row["id"]]) == [row["id"]]
    await process(runtime)
    assert (await message(runtime, row["id"]))["state"] == "failed"


async def test_unknown_senders_are_recorded_as_ignored(runtime: Runtime) -> None:
    """A mail from nobody the rules know is kept, marked ignored, and makes no ticket."""
    row = await deliver_and_process(runtime, automate_tagged(
        "FAILED", date=T0, sender="someone@example.com"))
    assert (row["state"], row["action"]) == ("ignored", "none")
    assert row["reason"] == "unknown sender someone@example.com"
    assert await tickets(runtime) == []


async def test_a_mail_the_batch_cannot_write_is_failed_alone(runtime: Runtime) -> None:
    """When a batch fails to write, its messages are retried one by one: the others complete."""
    poison = await deliver(runtime, automate_tagged("FAILED", date=T0, monitor="POISON"))
    for index in range(5):
        await deliver(runtime, automate_tagged("FAILED", date=T0, computer_id=index))

    class Refusing(Pipeline):
        """Fails any batch that holds the poison mail, as a database refusal would."""

        async def process(
            self, session: AsyncSession, items: Sequence[Incoming], rules: RuleSet
        ) -> list[Processed]:
            if any(item.message_id == poison for item in items):
                raise ValueError("value refused by the database")
            return await super().process(session, items, rules)

    worker = runtime.worker()
    worker.pipeline = Refusing(resolver=runtime.resolver, tickets=runtime.tickets,
                               future_skew=runtime.settings.rules.future_skew)
    report = await worker.drain()

    assert report.by_state == {"done": 5, "failed": 1}
    rows = {row["id"]: row for row in await messages(runtime)}
    assert rows[poison]["reason"] == "error: ValueError: value refused by the database"
    assert len(await tickets(runtime)) == 5


async def test_a_database_failure_hands_back_the_batch_claimed_ahead(runtime: Runtime) -> None:
    """The worker claims the next batch while writing one; if the database fails, the batch
    in hand is marked for retry and the one claimed ahead goes straight back to received."""
    ids = [await deliver(runtime, automate_tagged("FAILED", date=T0, computer_id=n))
           for n in range(4)]

    class Unavailable(Pipeline):
        """The database goes away on the first batch."""

        async def process(
            self, session: AsyncSession, items: Sequence[Incoming], rules: RuleSet
        ) -> list[Processed]:
            raise StorageUnavailable("database unavailable: connection refused")

    worker = runtime.worker()
    worker.settings = worker.settings.model_copy(update={"batch_size": 2, "busy_batch_size": 2})
    worker.pipeline = Unavailable(resolver=runtime.resolver, tickets=runtime.tickets,
                                  future_skew=runtime.settings.rules.future_skew)
    with pytest.raises(StorageUnavailable):
        await worker.drain()
    states = {row["id"]: row["state"] for row in await messages(runtime)}
    assert [states[i] for i in ids] == ["failed", "failed", "received", "received"]


async def test_a_batch_parses_in_order_with_failures_and_big_mail_in_place() -> None:
    """Parsing on the event loop keeps the batch's order; an empty mail is a ParseError in
    its place, and a mail too big to parse inline comes out as the others do."""
    small = automate_tagged("FAILED", date=T0)
    big = automate_tagged("FAILED", date=T0, result="x" * (INLINE_PARSE_BYTES + 1))
    parsed = await parse_batch([small, b"\r\n", big, small])
    assert isinstance(parsed[1], ParseError)
    mails = [p for p in parsed if isinstance(p, ParsedMail)]
    assert len(mails) == 3
    assert mails[0] == mails[2]
    assert "x" * 1000 in mails[1].text
