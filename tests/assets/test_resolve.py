"""Finding an alert's asset in the order SPEC R4.1 gives, and linking tickets when assets arrive."""

from __future__ import annotations

from datetime import UTC, datetime

from alertd.assets.resolve import AssetResolver
from alertd.assets.store import add_asset, add_client, add_site
from alertd.runtime import Runtime
from tests.helpers import deliver_and_process, ticket, tickets
from tests.mails import automate_monitor, automate_tagged

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


async def seed(runtime: Runtime) -> dict[str, int]:
    """Two clients that both have a machine called FS01, and a few others."""
    async with runtime.sessions.begin() as session:
        north = await add_client(session, "Northwind Traders", automate_id="41", now=T0)
        contoso = await add_client(session, "Contoso Ltd", automate_id="27", now=T0)
        office = await add_site(session, north, "Head Office", now=T0)
        return {
            "north-fs01": await add_asset(session, "FS01.northwind.local", kind="Server",
                                          now=T0, automate_kind="computer", automate_id="2201",
                                          client_id=north, site_id=office, serial="SN-111"),
            "contoso-fs01": await add_asset(session, "FS01", kind="Server", now=T0,
                                            automate_kind="computer", automate_id="1042",
                                            client_id=contoso),
            "ws17": await add_asset(session, "NW-WS17", kind="Workstation", now=T0,
                                    automate_kind="computer", automate_id="3001",
                                    client_id=north, site_id=office),
            "printer": await add_asset(session, "HP-4000", kind="Printer", now=T0,
                                       serial="CNB-9Z 88", client_id=contoso),
        }


async def test_the_computer_id_wins(runtime: Runtime) -> None:
    """An Automate computer id names the asset, whatever the mail says of its name."""
    ids = await seed(runtime)
    row = await deliver_and_process(runtime, automate_tagged(
        "FAILED", date=T0, computer_id=1042, host="SOMETHING-ELSE", client="Nobody"))
    found = await ticket(runtime, row["ticket_id"])
    assert found["asset"] == {"id": ids["contoso-fs01"], "name": "FS01", "automate_id": "1042"}
    assert found["matched_by"] == "computer_id"
    assert found["client"] == "Contoso Ltd"


async def test_a_host_name_is_looked_up_within_the_alerts_client(runtime: Runtime) -> None:
    """Default Automate text: FS01 of Northwind, not Contoso's FS01; short name, any case."""
    ids = await seed(runtime)
    row = await deliver_and_process(runtime, automate_monitor(
        "FAILED", date=T0, host="fs01", client="northwind traders"))
    found = await ticket(runtime, row["ticket_id"])
    assert found["asset"]["id"] == ids["north-fs01"]
    assert found["matched_by"] == "hostname_in_client"
    assert (found["client"], found["site"]) == ("Northwind Traders", "Head Office")


async def test_a_unique_host_name_matches_without_a_client(runtime: Runtime) -> None:
    """A host name that only one asset has matches even when the client is unknown."""
    ids = await seed(runtime)
    row = await deliver_and_process(runtime, automate_monitor(
        "FAILED", date=T0, host="NW-WS17.corp.example", client="Unknown Client"))
    found = await ticket(runtime, row["ticket_id"])
    assert (found["asset"]["id"], found["matched_by"]) == (ids["ws17"], "hostname")


async def test_an_ambiguous_host_name_matches_nothing(runtime: Runtime) -> None:
    """Two FS01s and no client to choose between them: the ticket is flagged unmatched."""
    await seed(runtime)
    row = await deliver_and_process(runtime, automate_monitor(
        "FAILED", date=T0, host="FS01", client="Unknown Client"))
    found = await ticket(runtime, row["ticket_id"])
    assert (found["asset"], found["matched_by"]) == (None, "unmatched")
    assert found["client"] == "Unknown Client"


async def test_a_serial_number_matches_last(runtime: Runtime) -> None:
    """Serial numbers and asset tags compare without case or spaces."""
    ids = await seed(runtime)
    async with runtime.sessions() as session:
        match = await AssetResolver().resolve(session, {"serial": "cnb-9z88"})
    assert (match.asset_id, match.matched_by) == (ids["printer"], "serial")


async def test_unmatched_tickets_are_linked_when_their_asset_arrives(runtime: Runtime) -> None:
    """A ticket opened before the import is linked later, and the next alert joins it."""
    first = await deliver_and_process(runtime, automate_tagged("FAILED", date=T0))
    assert (await ticket(runtime, first["ticket_id"]))["matched_by"] == "unmatched"

    ids = await seed(runtime)
    async with runtime.sessions.begin() as session:
        assert await runtime.tickets.link_unmatched(session, runtime.resolver) == 1
    linked = await ticket(runtime, first["ticket_id"])
    assert linked["asset"]["id"] == ids["north-fs01"]
    assert linked["matched_by"] == "computer_id"
    assert linked["history"][-1]["kind"] == "linked"

    again = await deliver_and_process(runtime, automate_tagged("FAILED", date=T0.replace(hour=10)))
    assert (again["action"], again["ticket_id"]) == ("occurrence", first["ticket_id"])
    assert len(await tickets(runtime)) == 1
