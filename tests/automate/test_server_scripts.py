"""The local Automate's tickets, scripts, script history and launches, over real HTTP.

What a Ticket Finish runner and a ticket poller are built against: the
routes keep the published contract, a launch body is checked as the real
server would check it, a launch has its effects (history row, ticket
finished) and its faults (refused, failed, throttled, answer lost), and
ticket conditions compare time stamps by time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from alertd.testing import automate_data as build
from alertd.testing import automate_server
from alertd.testing.automate_scripts import ENTITY_TYPES, REASON_REFUSED, parse_launch
from alertd.testing.automate_server import (
    DEFAULT_CLIENT_ID,
    REFERENCE_HEADER,
    AutomateApp,
    AutomateUser,
    RunningServer,
)
from tests.automate.conftest import PASSWORD
from tests.automate.contract import check_all, schema_errors

LAUNCH = "/Batch/ScriptExecute"
NOW = "2025-06-02T11:00:00"
EXAMPLE_LAUNCH: dict[str, Any] = {
    "EntityType": "Ticket",
    "EntityIds": [88231],
    "ScriptId": 6402,
    "Parameters": [
        {"Key": "TicketID", "Value": "88231"},
        {"Key": "FinishBody", "Value": "Closed from PSA ticket 4711 by the alert daemon."},
    ],
    "UseAgentTime": False,
    "StartDate": "2025-06-02T11:02:00+01:00",
    "OfflineActionFlags": {"SkipsOfflineAgents": False},
    "Priority": 12,
}
"""The launch request of automate-api.md §6.8, verbatim."""


class Clock:
    """The server's injectable time: epoch seconds that tests move forward by hand."""

    def __init__(self, stamp: str) -> None:
        self.value = datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.value

    def advance(self, seconds: float) -> None:
        """Move server time on without waiting."""
        self.value += seconds


def contoso_ticket(ticket_id: int, computer_id: int, computer_name: str, **extra: Any
                   ) -> dict[str, Any]:
    """A ticket on one of Contoso's Bristol computers."""
    return build.ticket(ticket_id, f"FAILED - Disk - Free Space C: - Contoso Ltd\\{computer_name}"
                                   f" [CWA:{computer_id}]",
                        client_id=27, client_name="Contoso Ltd", location_id=41,
                        location_name="Bristol HQ", computer_id=computer_id,
                        computer_name=computer_name, **extra)


@pytest.fixture
def clock() -> Clock:
    """Server time, fixed at 2025-06-02 11:00:00 until a test moves it."""
    return Clock(NOW)


@pytest.fixture
def automate_state(automate_state: AutomateApp, clock: Clock) -> AutomateApp:
    """The small data set plus four tickets, a user without script rights, and a fixed clock.

    Update stamps are whole, fractional (one digit) and seven-digit, so
    that only a chronological comparison orders them right.
    """
    data = automate_state.data
    data.add_ticket(contoso_ticket(
        88231, 1042, "CON-DC01", update_date="2025-06-02T10:15:31", monitor_id=7741,
        category=(112, "Disk"),
        comments=["Disk - Free Space C: FAILED on Contoso Ltd\\CON-DC01 at Bristol HQ."]))
    data.add_ticket(contoso_ticket(88232, 1187, "CON-WS-014", status_id=2, status_name="Open",
                                   update_date="2025-06-02T10:15:31.5"))
    data.add_ticket(build.ticket(
        88233, "FAILED - Service - Spooler - Northwind Traders\\NW-FS01 [CWA:2201]",
        client_id=41, client_name="Northwind Traders", location_id=51,
        location_name="Head Office", computer_id=2201, computer_name="NW-FS01", status_id=3,
        status_name="Stalled", update_date="2025-06-02T10:20:00.1234567"))
    data.add_ticket(contoso_ticket(88100, 1203, "CON-LT-022", status_id=4,
                                   status_name="Resolved", update_date="2025-06-01T09:00:00"))
    automate_state.users.append(
        AutomateUser("no-scripts", PASSWORD, denied=frozenset({"batch", "scripts", "tickets"})))
    automate_state.now = clock
    return automate_state


@asynccontextmanager
async def logged_in(automate: RunningServer, username: str = "alertd-integrator"
                    ) -> AsyncIterator[httpx.AsyncClient]:
    """A bare HTTP client logged in to the local Automate as ``username``."""
    async with httpx.AsyncClient(base_url=f"{automate.url}/cwa/api/v1",
                                 headers={"ClientId": DEFAULT_CLIENT_ID}) as client:
        login = await client.post("/apitoken", json={"UserName": username,
                                                     "Password": PASSWORD})
        client.headers["Authorization"] = f"Bearer {login.json()['AccessToken']}"
        yield client


@pytest.fixture
async def http(automate: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    """A bare HTTP client logged in as the integrator (ClientId and Bearer set)."""
    async with logged_in(automate) as client:
        yield client


async def listed(http: httpx.AsyncClient, path: str, key: str = "Id", **params: Any
                 ) -> list[Any]:
    """The ids (under ``key``) a list route answers with."""
    response = await http.get(path, params={"pageSize": 1000, **params})
    assert response.status_code == 200, response.text
    return [record[key] for record in response.json()]


async def launch(http: httpx.AsyncClient, body: Any, reference: str | None = None,
                 **kwargs: Any) -> httpx.Response:
    """POST a launch body, with the idempotency reference header when given."""
    headers = {REFERENCE_HEADER: reference} if reference is not None else {}
    return await http.post(LAUNCH, json=body, headers=headers, **kwargs)


def finish(ticket_id: int, *, script_id: int = 6401, entity: str = "Ticket",
           entity_id: int | None = None, **parameters: str) -> dict[str, Any]:
    """A launch body running a Ticket Finish script for ``ticket_id``."""
    pairs = {"TicketID": str(ticket_id), **parameters}
    return {"EntityType": entity, "EntityIds": [entity_id or ticket_id], "ScriptId": script_id,
            "Parameters": [{"Key": k, "Value": v} for k, v in pairs.items()]}


# -- contract ---------------------------------------------------------------------


async def test_every_new_route_answers_within_the_published_contract(
    http: httpx.AsyncClient, automate_state: AutomateApp,
) -> None:
    """Tickets, one ticket, scripts, a launch and the history it leaves all fit the subset."""
    assert (await http.get("/Tickets")).status_code == 200
    assert (await http.get("/Tickets/88231")).status_code == 200
    assert (await http.get("/Scripts")).status_code == 200
    assert (await launch(http, finish(88231, script_id=6402, FinishBody="Done"))).status_code == 200
    assert (await launch(http, finish(88232, entity="Computer", entity_id=1187))).status_code == 200
    assert (await http.get("/Computers/1042/ScriptHistory")).status_code == 200
    assert (await http.get("/Computers/1187/ScriptHistory")).status_code == 200
    assert (await http.get("/Tickets/88231")).json()["Status"]["Id"] == 4
    assert check_all(automate_state.exchanges) == 9


def test_every_built_record_fits_its_schema() -> None:
    """Tickets (generated and hand-made), scripts and history rows validate against the subset."""
    data = build.generate(computers=12, tickets=9)
    data.tickets.append(contoso_ticket(1, 1042, "CON-DC01", category=(112, "Disk"),
                                       comments=["first", build.ticket_comment(2, "second",
                                                                               user="tech")]))
    for record in data.tickets:
        assert schema_errors("LabTech.Models.Ticket", record) == []
    for record in data.scripts:
        assert schema_errors("LabTech.Models.Script", record) == []
    row = build.script_history_entry(1, 6401, 1042, "Ticket Finish", status="Running",
                                     state="Information")
    assert schema_errors("LabTech.Models.ComputerScriptHistory", row) == []


async def test_the_example_launch_of_the_facts_page_fits_the_contract_and_is_accepted(
    http: httpx.AsyncClient, automate_state: AutomateApp,
) -> None:
    """§6.8's body fits ScheduleScriptBatchRequest; the server runs it and answers as §6.8."""
    assert schema_errors("Automate.Api.Domain.Contracts.BatchScripts.ScheduleScriptBatchRequest",
                         EXAMPLE_LAUNCH) == []
    response = await launch(http, EXAMPLE_LAUNCH)
    assert response.status_code == 200
    assert response.json() == {
        "ScriptResults": [{"EntityId": 88231, "ResultDetails": {
            "ResultStatus": 0, "ReasonCode": 0, "Message": ""}}],
        "ContainsUnsuccessfulResults": False,
    }
    assert schema_errors("Automate.Api.Domain.Contracts.BatchScripts.ScheduleScriptBatchResponse",
                         response.json()) == []
    assert check_all(automate_state.exchanges) == 2
    assert automate_state.is_finished(88231)


def test_generated_tickets_are_deterministic_and_open() -> None:
    """generate(tickets=N) gives the same N open tickets on generated computers every time."""
    first, second = build.generate(computers=10, tickets=6), build.generate(computers=10,
                                                                             tickets=6)
    assert first.tickets == second.tickets
    assert [t["TicketId"] for t in first.tickets] == list(range(10001, 10007))
    computers = {c["Id"] for c in first.computers}
    assert all(t["Computer"]["Id"] in computers for t in first.tickets)
    assert {t["Status"]["Id"] for t in first.tickets} <= {1, 2, 3}
    assert first.ticket(10003)["TicketId"] == 10003
    with pytest.raises(KeyError):
        first.ticket(99)
    with pytest.raises(ValueError, match="computers"):
        build.generate(computers=0, tickets=1)


def test_the_default_scripts_include_both_ticket_finish_scripts() -> None:
    """6401 and 6402 as in §6.8, in Maintenance\\Tickets, next to ordinary computer scripts."""
    scripts = {s["Id"]: s for s in build.AutomateData().scripts}
    assert scripts["6401"]["Name"] == "Ticket Finish"
    assert scripts["6401"]["Parameters"] == ["TicketID"]
    assert scripts["6402"]["Name"] == "Ticket Finish With Comment"
    assert scripts["6402"]["Parameters"] == ["TicketID", "FinishBody"]
    assert {scripts[i]["FullFolderPath"] for i in ("6401", "6402")} == {"Maintenance\\Tickets"}
    ordinary = [s["Name"] for s in scripts.values() if s["IsComputerScript"]]
    assert "Restart Spooler" in ordinary
    assert "Disk Cleanup" in ordinary


# -- tickets and scripts ----------------------------------------------------------


async def test_one_ticket_by_id_and_404_when_absent(http: httpx.AsyncClient) -> None:
    """GET Tickets/{id} answers the ticket (projection honoured) or 404 with a Message."""
    found = await http.get("/Tickets/88231")
    assert found.json()["Subject"].startswith("FAILED - Disk")
    assert found.json()["Computer"] == {"Id": "1042", "ComputerName": "CON-DC01"}
    projected = await http.get("/tickets/88231", params={"includeFields": "TicketId,Status"})
    assert projected.json() == {"TicketId": 88231, "Status": {"Id": 1, "Name": "New"}}
    missing = await http.get("/Tickets/5")
    assert missing.status_code == 404
    assert missing.json() == {"Message": "Ticket 5 was not found."}


async def test_tickets_page_and_order(http: httpx.AsyncClient) -> None:
    """pageSize/page walk the list by TicketId; orderBy sorts stamps by time."""
    first = await http.get("/Tickets", params={"pageSize": 3, "page": 1})
    second = await http.get("/Tickets", params={"pageSize": 3, "page": 2})
    assert [t["TicketId"] for t in first.json()] == [88100, 88231, 88232]
    assert [t["TicketId"] for t in second.json()] == [88233]
    newest = await listed(http, "/Tickets", "TicketId", orderBy="UpdateDate desc")
    assert newest == [88233, 88232, 88231, 88100]


@pytest.mark.parametrize(("condition", "expected"), [
    ("UpdateDate > 2025-06-02T10:15:31", [88232, 88233]),
    ("UpdateDate > '2025-06-02T10:15:31'", [88232, 88233]),
    ("UpdateDate >= 2025-06-02T10:15:31", [88231, 88232, 88233]),
    ("UpdateDate >= '2025-06-02T10:15:31.000'", [88231, 88232, 88233]),
    ("UpdateDate = 2025-06-02T10:15:31.50", [88232]),
    ("UpdateDate > 2025-06-02T10:20:00.12345", [88233]),
    ("UpdateDate < 2025-06-02T11:15:31+01:00", [88100]),
    ("UpdateDate > 2025-06-02T10:15:31.4999 and Status.Id in (1,2,3)", [88232, 88233]),
    ("UpdateDate > 2025-06-01T00:00:00 and Status.Id in (1, 2, 3)", [88231, 88232, 88233]),
    ("TicketId > 88200", [88231, 88232, 88233]),
    ("TicketId > 88231 and Status.Id in (1,2,3)", [88232, 88233]),
    ("Status.Id not in (1,2,3)", [88100]),
    ("Computer.Id = 1042", [88231]),
])
async def test_ticket_conditions_a_poller_sends(
    http: httpx.AsyncClient, condition: str, expected: list[int],
) -> None:
    """Dates compare by time (quoted or not, with or without fractions or a zone), with status."""
    assert await listed(http, "/Tickets", "TicketId", condition=condition) == expected


async def test_ticket_conditions_on_an_empty_list_still_know_the_fields(
    http: httpx.AsyncClient, automate_state: AutomateApp,
) -> None:
    """With no tickets at all a date condition answers [] rather than "Invalid field"."""
    automate_state.data.tickets.clear()
    automate_state.data.changed()
    assert await listed(http, "/Tickets", condition="UpdateDate > 2025-06-02T10:15:31") == []
    bad = await http.get("/Tickets", params={"condition": "Colour = 'red'"})
    assert (bad.status_code, bad.json()) == (400, {"Message": "Invalid field: Colour"})


async def test_an_updated_ticket_is_seen_by_the_next_poll(
    http: httpx.AsyncClient, automate_state: AutomateApp, clock: Clock,
) -> None:
    """update_ticket() changes status, subject and comments and bumps UpdateDate to now."""
    cursor = "2025-06-02T10:20:00.1234567"
    assert await listed(http, "/Tickets", "TicketId", condition=f"UpdateDate > {cursor}") == []
    clock.advance(0.25)
    automate_state.update_ticket(88231, comment="Still failing", status=(2, "Open"),
                                 subject="FAILED again")
    polled = (await http.get("/Tickets", params={"condition": f"UpdateDate > {cursor}"})).json()
    assert [t["TicketId"] for t in polled] == [88231]
    assert polled[0]["UpdateDate"] == "2025-06-02T11:00:00.25"
    assert polled[0]["Status"] == {"Id": 2, "Name": "Open"}
    assert polled[0]["Subject"] == "FAILED again"
    assert polled[0]["Comments"][-1]["Body"] == "Still failing"
    with pytest.raises(KeyError):
        automate_state.update_ticket(5, comment="nobody")


async def test_scripts_filter_by_name(http: httpx.AsyncClient) -> None:
    """`Name like '%Ticket Finish%'` finds exactly the two Ticket Finish scripts."""
    assert await listed(http, "/Scripts", condition="Name like '%Ticket Finish%'") == [
        "6401", "6402"]
    everything = await listed(http, "/Scripts")
    assert len(everything) == 5
    assert await listed(http, "/Scripts", condition="IsComputerScript = true and "
                                                      "Name = 'Disk Cleanup'") == ["5102"]


async def test_new_routes_need_their_permissions(automate: RunningServer) -> None:
    """Without rights to batch, scripts or tickets (or computers, for history) the answer is 403."""
    async with logged_in(automate, "no-scripts") as denied:
        statuses = [(await denied.get("/Tickets")).status_code,
                    (await denied.get("/Tickets/88231")).status_code,
                    (await denied.get("/Scripts")).status_code,
                    (await launch(denied, finish(88231))).status_code,
                    (await denied.get("/Computers/1042/ScriptHistory")).status_code]
    async with logged_in(automate, "limited") as limited:
        history = await limited.get("/Computers/1042/ScriptHistory")
    assert statuses == [403, 403, 403, 403, 200]
    assert history.status_code == 403


# -- script history ----------------------------------------------------------------


async def test_script_history_is_empty_for_a_quiet_computer_and_404_for_an_unknown_one(
    http: httpx.AsyncClient,
) -> None:
    """A known computer without runs answers []; an unknown computer answers 404."""
    assert await listed(http, "/Computers/1203/ScriptHistory",
                        condition="ScriptId = 6401") == []
    unknown = await http.get("/Computers/999/ScriptHistory")
    assert unknown.status_code == 404
    assert unknown.json() == {"Message": "Computer 999 was not found."}


async def test_script_history_pages_filters_and_orders(
    http: httpx.AsyncClient, clock: Clock,
) -> None:
    """Rows get rising ids; page, condition and orderBy work as on every list."""
    for script_id in (5101, 5102, 6401, 5101):
        body = {"EntityType": "Computer", "EntityIds": [1187], "ScriptId": script_id,
                "Parameters": [{"Key": "TicketID", "Value": "88232"}]}
        assert (await launch(http, body)).status_code == 200
        clock.advance(1)
    path = "/Computers/1187/ScriptHistory"
    ids = await listed(http, path)
    assert ids == sorted(ids)
    assert len(ids) == 4
    spooler = await listed(http, path, "ScriptId", condition="Name = 'Restart Spooler'")
    assert spooler == [5101, 5101]
    newest = await http.get(path, params={"orderBy": "HistoryDate desc", "pageSize": 2})
    assert [r["HistoryDate"] for r in newest.json()] == ["2025-06-02T11:00:03",
                                                         "2025-06-02T11:00:02"]
    later = await listed(http, path, "ScriptId",
                         condition="HistoryDate >= 2025-06-02T11:00:02 and ScriptId = 5101")
    assert later == [5101]


# -- launches: validation ----------------------------------------------------------


@pytest.mark.parametrize(("body", "message"), [
    ("not json", "The request body must be a JSON object."),
    ([1, 2], "The request body must be a JSON object."),
    ({"EntityType": "Printer", "EntityIds": [1042], "ScriptId": 5101}, "EntityType 'Printer'"),
    ({"EntityType": 99, "EntityIds": [1042], "ScriptId": 5101}, "EntityType 99"),
    ({"EntityType": True, "EntityIds": [1042], "ScriptId": 5101}, "EntityType True"),
    ({"EntityType": "Computer", "ScriptId": 5101}, "EntityIds must be"),
    ({"EntityType": "Computer", "EntityIds": [], "ScriptId": 5101}, "EntityIds must be"),
    ({"EntityType": "Computer", "EntityIds": ["1042"], "ScriptId": 5101}, "EntityIds must be"),
    ({"EntityType": "Computer", "EntityIds": [1042]}, "Exactly one of ScriptId"),
    ({"EntityType": "Computer", "EntityIds": [1042], "ScriptId": 5101,
      "ScriptGuid": "a3c4e1f2-5b6d-4e7f-8a9b-0c1d2e3f4a5b"}, "Exactly one of ScriptId"),
    ({"EntityType": "Computer", "EntityIds": [1042], "ScriptId": "5101"},
     "ScriptId must be an integer."),
    ({"EntityType": "Computer", "EntityIds": [1042], "ScriptGuid": 5}, "ScriptGuid must be"),
    ({"EntityType": "Computer", "EntityIds": [1042], "ScriptId": 5101,
      "Parameters": {"TicketID": "1"}}, "Parameters must be"),
    ({"EntityType": "Computer", "EntityIds": [1042], "ScriptId": 5101,
      "Parameters": [{"Key": "TicketID", "Value": 88231}]}, "Parameters must be"),
    ({"EntityType": "Computer", "EntityIds": [1042], "ScriptId": 5101,
      "Parameters": ["TicketID=1"]}, "Parameters must be"),
    ({"EntityType": "Computer", "EntityIds": [1042], "ScriptId": 5101, "Priority": "high"},
     "Priority must be an integer."),
    ({"EntityType": "Computer", "EntityIds": [1042], "ScriptId": 5101, "UseAgentTime": "no"},
     "UseAgentTime must be true or false."),
    ({"EntityType": "Computer", "EntityIds": [1042], "ScriptId": 5101,
      "OfflineActionFlags": True}, "OfflineActionFlags must be an object."),
    ({"EntityType": "Computer", "EntityIds": [1042], "ScriptId": 5101, "StartDate": 12},
     "StartDate must be a date and time."),
])
async def test_malformed_launch_bodies_are_refused_with_400_and_launch_nothing(
    http: httpx.AsyncClient, automate_state: AutomateApp, body: Any, message: str,
) -> None:
    """Each broken body answers 400 with a Message, is recorded, and leaves no history row."""
    if isinstance(body, str):
        response = await http.post(LAUNCH, content=body.encode(),
                                   headers={"Content-Type": "application/json"})
    else:
        response = await launch(http, body, reference="outbox-7")
    assert response.status_code == 400
    assert response.json()["Message"].startswith(message)
    assert automate_state.data.script_history == {}
    assert [launch.status for launch in automate_state.launches] == [400]
    assert not automate_state.launches[0].accepted


async def test_launch_bodies_bind_as_the_real_server_binds_them(
    http: httpx.AsyncClient, automate_state: AutomateApp,
) -> None:
    """Keys match without case, unknown keys are ignored, an EntityType index and a GUID work."""
    by_index = {"entitytype": ENTITY_TYPES.index("Computer"), "entityIds": [1042],
                "scriptId": 5101, "Whatever": {"ignored": True}}
    by_guid = {"EntityType": "ticket", "EntityIds": [88232],
               "ScriptGuid": "A3C4E1F2-5B6D-4E7F-8A9B-0C1D2E3F4A5B", "Parameters": None}
    assert ENTITY_TYPES.index("Computer") == 1
    assert (await launch(http, by_index)).json()["ContainsUnsuccessfulResults"] is False
    assert (await launch(http, by_guid)).json()["ContainsUnsuccessfulResults"] is False
    assert [r["Name"] for r in automate_state.script_history(1042)] == ["Restart Spooler"]
    assert automate_state.is_finished(88232)
    assert parse_launch(by_guid).script_guid == by_guid["ScriptGuid"]


# -- launches: results and effects -------------------------------------------------


async def test_a_ticket_launch_finishes_the_ticket_and_writes_history(
    http: httpx.AsyncClient, automate_state: AutomateApp,
) -> None:
    """EntityType Ticket: status becomes Resolved, UpdateDate now, FinishBody the comment."""
    response = await launch(http, finish(88231, script_id=6402, FinishBody="Fixed by PSA 4711"),
                            reference="outbox-1")
    assert response.json()["ContainsUnsuccessfulResults"] is False
    ticket = (await http.get("/Tickets/88231")).json()
    assert ticket["Status"] == {"Id": 4, "Name": "Resolved"}
    assert ticket["UpdateDate"] == NOW
    assert ticket["Comments"][-1] == {"Id": "2", "Body": "Fixed by PSA 4711",
                                      "CreatedDate": NOW, "From": "alertd-integrator"}
    history = (await http.get("/Computers/1042/ScriptHistory")).json()
    assert len(history) == 1
    row = history[0]
    assert (row["ScriptId"], row["ComputerId"], row["Name"], row["User"]) == (
        6402, 1042, "Ticket Finish With Comment", "alertd-integrator")
    assert (row["Status"], row["State"], row["HistoryDate"]) == ("Completed", "Success", NOW)
    assert row["DiagnosticMessage"] == "Ticket 88231 finished."
    assert automate_state.is_finished(88231)
    assert not automate_state.is_finished(88232)
    assert await listed(http, "/Tickets", "TicketId", condition="Status.Id in (1,2,3)") == [
        88232, 88233]


async def test_a_computer_launch_finishes_the_ticket_named_by_its_parameter(
    http: httpx.AsyncClient, automate_state: AutomateApp,
) -> None:
    """EntityType Computer: the `ticketid` parameter (any case) names the ticket; default body."""
    body = {"EntityType": "Computer", "EntityIds": [2201], "ScriptId": 6401,
            "Parameters": [{"Key": "ticketid", "Value": "88233"}]}
    assert (await launch(http, body)).json()["ContainsUnsuccessfulResults"] is False
    assert automate_state.is_finished(88233)
    ticket = automate_state.data.ticket(88233)
    assert ticket["Comments"][-1]["Body"] == "Finished by script Ticket Finish"
    assert [r["ScriptId"] for r in automate_state.script_history(2201)] == [6401]


async def test_ordinary_scripts_finish_no_ticket(
    http: httpx.AsyncClient, automate_state: AutomateApp,
) -> None:
    """A script outside finish_script_ids only leaves a history row, even with a TicketID."""
    body = {"EntityType": "Computer", "EntityIds": [1042], "ScriptId": 5101,
            "Parameters": [{"Key": "TicketID", "Value": "88231"}]}
    assert (await launch(http, body)).json()["ContainsUnsuccessfulResults"] is False
    assert not automate_state.is_finished(88231)
    assert automate_state.script_history(1042)[0]["DiagnosticMessage"] == (
        "Script Restart Spooler completed.")


async def test_a_computer_launch_without_a_usable_ticket_id_is_accepted_and_fails_later(
    http: httpx.AsyncClient, automate_state: AutomateApp,
) -> None:
    """The launch cannot know: 200 and no unsuccessful result, then a Failure history row."""
    for value in (None, "abc", "5"):
        parameters = [] if value is None else [{"Key": "TicketID", "Value": value}]
        body = {"EntityType": "Computer", "EntityIds": [1042], "ScriptId": 6401,
                "Parameters": parameters}
        assert (await launch(http, body)).json()["ContainsUnsuccessfulResults"] is False
    rows = automate_state.script_history(1042)
    assert [r["State"] for r in rows] == ["Failure"] * 3
    assert [r["DiagnosticMessage"] for r in rows] == [
        "No TicketID parameter: no ticket to finish.", "TicketID 'abc' is not a ticket number.",
        "Ticket 5 was not found."]


async def test_a_failing_script_finishes_nothing(
    http: httpx.AsyncClient, automate_state: AutomateApp,
) -> None:
    """script_states[6401] = Failure: accepted launch, Failure row, ticket still open."""
    automate_state.script_states[6401] = "Failure"
    assert (await launch(http, finish(88231))).json()["ContainsUnsuccessfulResults"] is False
    assert not automate_state.is_finished(88231)
    assert automate_state.script_history(1042)[0]["State"] == "Failure"


@pytest.mark.parametrize(("body", "refused", "reason"), [
    ({"EntityType": "Ticket", "EntityIds": [88231], "ScriptId": 9999}, [88231],
     "Script 9999 was not found."),
    ({"EntityType": "Ticket", "EntityIds": [88231],
      "ScriptGuid": "00000000-0000-0000-0000-000000000000"}, [88231],
     "Script with GUID 00000000-0000-0000-0000-000000000000 was not found."),
    ({"EntityType": "Ticket", "EntityIds": [5, 88232], "ScriptId": 6401}, [5],
     "Ticket 5 was not found."),
    ({"EntityType": "Computer", "EntityIds": [1187, 999], "ScriptId": 5101}, [999],
     "Computer 999 was not found."),
    ({"EntityType": "Site", "EntityIds": [41], "ScriptId": 5101}, [41],
     "EntityType Site is not served here: only Computer and Ticket."),
])
async def test_unknown_scripts_and_entities_give_unsuccessful_results(
    http: httpx.AsyncClient, automate_state: AutomateApp, body: dict[str, Any],
    refused: list[int], reason: str,
) -> None:
    """200 with ContainsUnsuccessfulResults; the refused entities carry a Message, others run."""
    response = await launch(http, body)
    answer = response.json()
    assert response.status_code == 200
    assert answer["ContainsUnsuccessfulResults"] is True
    assert [r["EntityId"] for r in answer["ScriptResults"]] == body["EntityIds"]
    failed = [r for r in answer["ScriptResults"] if r["ResultDetails"]["ResultStatus"] != 0]
    assert [r["EntityId"] for r in failed] == refused
    assert {r["ResultDetails"]["Message"] for r in failed} == {reason}
    assert all(r["ResultDetails"]["ReasonCode"] != 0 for r in failed)
    ran = [e for e in body["EntityIds"] if e not in refused]
    rows = [row for rows in automate_state.data.script_history.values() for row in rows]
    assert len(rows) == len(ran)
    assert schema_errors("Automate.Api.Domain.Contracts.BatchScripts.ScheduleScriptBatchResponse",
                         answer) == []


async def test_a_refused_script_launches_nothing(
    http: httpx.AsyncClient, automate_state: AutomateApp,
) -> None:
    """A script id in refused_script_ids: every entity refused, no row, no ticket finished."""
    automate_state.refused_script_ids.add(6401)
    answer = (await launch(http, finish(88231))).json()
    details = answer["ScriptResults"][0]["ResultDetails"]
    assert answer["ContainsUnsuccessfulResults"] is True
    assert (details["ResultStatus"], details["ReasonCode"]) == (1, REASON_REFUSED)
    assert "may not be run by alertd-integrator" in details["Message"]
    assert automate_state.data.script_history == {}
    assert not automate_state.is_finished(88231)


async def test_history_rows_run_for_the_configured_delay(
    http: httpx.AsyncClient, automate_state: AutomateApp, clock: Clock,
) -> None:
    """With history_delay the row shows Running until that much server time has passed."""
    automate_state.history_delay = 30.0
    await launch(http, finish(88231))
    running = (await http.get("/Computers/1042/ScriptHistory")).json()
    assert [(r["Status"], r["State"]) for r in running] == [("Running", "Information")]
    clock.advance(29.5)
    assert (await http.get("/Computers/1042/ScriptHistory")).json()[0]["Status"] == "Running"
    clock.advance(0.5)
    done = (await http.get("/Computers/1042/ScriptHistory")).json()
    assert [(r["Status"], r["State"]) for r in done] == [("Completed", "Success")]
    assert done[0]["HistoryDate"] == NOW
    assert automate_state.is_finished(88231)


# -- launches: recording and faults ------------------------------------------------


async def test_every_launch_is_recorded_with_its_reference(
    http: httpx.AsyncClient, automate_state: AutomateApp,
) -> None:
    """launches keeps body, X-Alertd-Reference, status, answered and server time."""
    await launch(http, finish(88231), reference="outbox-1")
    await launch(http, finish(88232), reference="outbox-2")
    await launch(http, {"EntityType": "Computer"}, reference="outbox-3")
    await launch(http, finish(88233))
    [first] = automate_state.launches_for("outbox-1")
    assert first.body == finish(88231)
    assert (first.status, first.answered, first.accepted) == (200, True, True)
    assert first.at == datetime.fromisoformat(NOW).replace(tzinfo=UTC).timestamp()
    assert [(x.reference, x.status) for x in automate_state.launches] == [
        ("outbox-1", 200), ("outbox-2", 200), ("outbox-3", 400), (None, 200)]
    assert automate_state.launches_for("outbox-9") == []


async def test_500_and_429_on_launches_launch_nothing(
    http: httpx.AsyncClient, automate_state: AutomateApp,
) -> None:
    """fail_next / throttle_next on batch/scriptexecute answer before any effect; reads go on."""
    faults = automate_state.faults
    faults.only_path = "batch/scriptexecute"
    faults.fail_next, faults.throttle_next, faults.retry_after = 1, 1, "7"
    failed = await launch(http, finish(88231), reference="outbox-1")
    assert (await http.get("/Tickets/88231")).status_code == 200
    throttled = await launch(http, finish(88231), reference="outbox-1")
    assert (failed.status_code, throttled.status_code) == (500, 429)
    assert throttled.headers["Retry-After"] == "7"
    assert automate_state.data.script_history == {}
    assert not automate_state.is_finished(88231)
    retried = await launch(http, finish(88231), reference="outbox-1")
    assert retried.status_code == 200
    attempts = automate_state.launches_for("outbox-1")
    assert [a.status for a in attempts] == [500, 429, 200]
    assert [a.accepted for a in attempts].count(True) == 1


async def test_a_lost_answer_launches_but_the_client_cannot_know(
    http: httpx.AsyncClient, automate_state: AutomateApp,
) -> None:
    """lose_answer_next: full effect, recorded answered=False; a patient client still gets 200.

    The first answer is held for the default 30 s; the server lets it go
    when it stops, so the test does not wait for it.
    """
    automate_state.faults.lose_answer_next = 2
    assert automate_state.faults.lose_answer_seconds == 30.0
    with pytest.raises(httpx.ReadTimeout):
        await launch(http, finish(88231), reference="outbox-1", timeout=0.05)
    assert automate_state.is_finished(88231)
    assert [r["ScriptId"] for r in automate_state.script_history(1042)] == [6401]
    [lost] = automate_state.launches_for("outbox-1")
    assert (lost.status, lost.answered, lost.accepted) == (200, False, True)

    automate_state.faults.lose_answer_seconds = 0.01
    patient = await launch(http, finish(88232), reference="outbox-2", timeout=5)
    assert patient.status_code == 200
    assert patient.json()["ContainsUnsuccessfulResults"] is False
    assert [x.answered for x in automate_state.launches_for("outbox-2")] == [False]
    answered = await launch(http, finish(88233), reference="outbox-3")
    assert answered.status_code == 200
    assert [x.answered for x in automate_state.launches_for("outbox-3")] == [True]
    assert automate_state.faults.lose_answer_next == 0


def test_the_demo_entry_point_takes_a_ticket_count(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """`python -m alertd.testing.automate_server --tickets N` serves N open tickets."""
    served: list[Any] = []
    monkeypatch.setattr(automate_server.uvicorn, "run", lambda app, **_: served.append(app))
    automate_server.main(["--tickets", "4", "--computers", "3", "--port", "1"])
    out = capsys.readouterr().out
    assert len(served) == 1
    assert "3 computers" in out
    assert "4 tickets, 5 scripts" in out
