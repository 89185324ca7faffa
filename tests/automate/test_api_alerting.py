"""API-based alerting (R5.6) against the local Automate over real HTTP, on SQLite and
PostgreSQL: Automate tickets become local tickets through the same rules, asset resolution
and dedup; resolving one finishes the Automate ticket through the Ticket Finish script; a
poll, a repeat poll and a restart neither lose nor repeat a ticket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import select

from alertd.assets.importer import Importer
from alertd.automate.client import AutomateClient
from alertd.db.tables import Ticket
from alertd.outbox.worker import OutboxWorker
from alertd.runtime import Runtime, open_runtime
from alertd.settings import Settings
from alertd.sources.automate_tickets import AutomateTicketPoller, automate_ticket_poller
from alertd.testing import automate_data as build
from alertd.testing.automate_server import AutomateApp
from tests.helpers import message_count, process, ticket, tickets

FINISH = {"scripts": [{"id": 6402, "target": "ticket",
                       "parameters": {"TicketID": "{automate_ticket_id}",
                                      "FinishBody": "Resolved in alertd by {technician}: "
                                                    "{resolution}"}}]}


def add_ticket(state: AutomateApp, ticket_id: int, *, computer_id: int = 1042,
               computer_name: str = "CON-DC01", status: tuple[int, str] = (1, "New"),
               subject: str | None = None) -> None:
    """An Automate ticket on a Contoso computer, as a monitor makes one."""
    state.data.add_ticket(build.ticket(
        ticket_id, subject or f"FAILED - Disk - Free Space C: - Contoso Ltd\\{computer_name}",
        client_id=27, client_name="Contoso Ltd", location_id=41, location_name="Bristol HQ",
        computer_id=computer_id, computer_name=computer_name, status_id=status[0],
        status_name=status[1], comments=("Disk - Free Space C: FAILED on Contoso Ltd\\"
                                         f"{computer_name} for C: result 4.1 GB free (3%).",)))


class Alerting:
    """The poller, the outbox worker and alertd's services on this test's database."""

    def __init__(self, runtime: Runtime, poller: AutomateTicketPoller, outbox: OutboxWorker,
                 client: AutomateClient) -> None:
        self.runtime = runtime
        self.poller = poller
        self.outbox = outbox
        self.client = client

    async def automate_ticket_ids(self) -> dict[int, int | None]:
        """Local ticket id -> the Automate ticket it stands for."""
        async with self.runtime.readers() as session:
            rows = await session.execute(select(Ticket.id, Ticket.automate_ticket_id))
        return dict(rows.all())  # type: ignore[arg-type]


@pytest.fixture
def alerting(import_settings: Callable[..., Settings],
             client_for: Callable[..., AutomateClient]) -> Callable[..., Any]:
    """Opens (and, called again, restarts) API alerting on this test's database."""

    @asynccontextmanager
    async def start(**automate: Any) -> AsyncIterator[Alerting]:
        settings = import_settings(**{"finish": FINISH,
                                      "api_alerting": {"enabled": True}, **automate})
        assert settings.automate is not None
        async with open_runtime(settings) as runtime, client_for(settings.automate) as client:
            poller = automate_ticket_poller(runtime, client)
            assert poller is not None
            outbox = OutboxWorker(store=runtime.outbox, client=client,
                                  settings=settings.automate.finish, clock=runtime.clock)
            yield Alerting(runtime, poller, outbox, client)

    return start


async def test_an_automate_ticket_becomes_a_linked_ticket_and_resolving_it_finishes_it(
    alerting: Callable[..., Any], automate_state: AutomateApp,
) -> None:
    """A polled Automate ticket goes through the bundled rules, finds its imported computer
    by Automate id, and keeps the Automate ticket id; resolving it locally launches the
    Ticket Finish script against that ticket, and Automate shows it finished."""
    add_ticket(automate_state, 88231)
    async with alerting() as a:
        await Importer(a.runtime, a.client).run("all")
        assert await a.poller.poll_once() == 1
        await process(a.runtime)
        (local,) = await tickets(a.runtime)
        assert local["alert_type"] == "automate-api-ticket"
        assert local["asset"]["name"] == "CON-DC01"
        assert local["matched_by"] == "computer_id"
        assert local["client"] == "Contoso Ltd"
        assert await a.automate_ticket_ids() == {local["id"]: 88231}

        async with a.runtime.sessions.begin() as session:
            await a.runtime.tickets.resolve(session, local["id"], note="freed 20 GB",
                                            actor="alice")
        assert (await a.outbox.drain()).by_result == {"launched": 1}
    (launch,) = automate_state.launches
    assert launch.body["EntityType"] == "Ticket"
    assert launch.body["EntityIds"] == [88231]
    assert {"Key": "FinishBody", "Value": "Resolved in alertd by alice: freed 20 GB"} in \
        launch.body["Parameters"]
    assert automate_state.is_finished(88231)


async def test_polls_and_restarts_neither_lose_nor_repeat_tickets(
    alerting: Callable[..., Any], automate_state: AutomateApp,
) -> None:
    """Polling again stores nothing new; an update to the Automate ticket is one more
    occurrence on the same local ticket; a finished Automate ticket is not polled; after a
    restart the saved cursor carries on, and a ticket that appears meanwhile arrives."""
    add_ticket(automate_state, 88231)
    add_ticket(automate_state, 88232, computer_id=1187, computer_name="CON-WS-014")
    add_ticket(automate_state, 88233, status=(4, "Resolved"))
    async with alerting() as a:
        assert await a.poller.poll_once() == 2
        assert await a.poller.poll_once() == 0
        await process(a.runtime)
        assert len(await tickets(a.runtime)) == 2

        automate_state.update_ticket(88231, comment="Still failing: 3.9 GB free (3%).")
        assert await a.poller.poll_once() == 1
        await process(a.runtime)
        first = next(t for t in await tickets(a.runtime) if t["summary"].endswith("CON-DC01"))
        assert (await ticket(a.runtime, first["id"]))["occurrences"] == 2
        stored = await message_count(a.runtime)
    add_ticket(automate_state, 88240, computer_id=1203, computer_name="CON-LT-022")
    automate_state.update_ticket(88240, comment="Opened while alertd was down.")  # now
    async with alerting() as a:
        assert await a.poller.poll_once() == 1
        assert await message_count(a.runtime) == stored + 1
        await process(a.runtime)
        assert sorted((await a.automate_ticket_ids()).values()) == [88231, 88232, 88240]


async def test_many_tickets_are_read_page_by_page_without_gaps(
    alerting: Callable[..., Any], automate_state: AutomateApp,
) -> None:
    """More open tickets than one page holds: the keyset walk by ticket id stores each once."""
    for number in range(30):
        add_ticket(automate_state, 90000 + number)
    async with alerting(page_size=7) as a:
        assert await a.poller.poll_once() == 30
        assert await a.poller.poll_once() == 0
        await process(a.runtime)
        assert len(await tickets(a.runtime)) == 30
