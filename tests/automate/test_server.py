"""The local Automate behaves as automate-api.md says a real one does, and keeps the contract."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from alertd.testing.automate_server import DEFAULT_CLIENT_ID, AutomateApp, RunningServer
from tests.automate.conftest import PASSWORD
from tests.automate.contract import check_all


@pytest.fixture
async def http(automate: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    """A bare HTTP client logged in to the local Automate (ClientId and Bearer set)."""
    async with httpx.AsyncClient(base_url=f"{automate.url}/cwa/api/v1",
                                 headers={"ClientId": DEFAULT_CLIENT_ID}) as client:
        login = await client.post("/apitoken", json={"UserName": "alertd-integrator",
                                                     "password": PASSWORD})
        client.headers["Authorization"] = f"Bearer {login.json()['AccessToken']}"
        yield client


async def ids(http: httpx.AsyncClient, path: str, **params: Any) -> list[str]:
    """The ids a list route answers with."""
    response = await http.get(path, params={"pageSize": 1000, **params})
    assert response.status_code == 200, response.text
    return [str(record.get("Id", record.get("ContactId"))) for record in response.json()]


async def test_every_route_serves_records_that_fit_the_published_contract(
    http: httpx.AsyncClient, automate: RunningServer, automate_state: AutomateApp,
) -> None:
    """Clients, locations, contacts (v1 and v2), computers, printers, routers, network devices."""
    for path in ("/Clients", "/Locations", "/Contacts", "/Computers", "/routers",
                 "/NetworkDevices", "/Computers/1187/Printers", "/PatchInformation",
                 "/Clients/27", "/apitoken"):
        assert (await http.get(path)).status_code == 200
    v2 = await http.get(f"{automate.url}/cwa/api/v2/Contacts", params={"pageSize": 10})
    assert len(v2.json()) == 4
    assert check_all(automate_state.exchanges) == 12


async def test_data_calls_need_the_client_id_and_a_bearer_token(
    http: httpx.AsyncClient, automate: RunningServer,
) -> None:
    """Without ClientId, or without a valid token, Automate answers 401."""
    token = http.headers["Authorization"]
    async with httpx.AsyncClient(base_url=f"{automate.url}/cwa/api/v1") as bare:
        no_client_id = await bare.get("/Clients", headers={"Authorization": token})
        wrong_client_id = await bare.get("/Clients", headers={"Authorization": token,
                                                              "ClientId": "other"})
        no_token = await bare.get("/Clients", headers={"ClientId": DEFAULT_CLIENT_ID})
        bad_token = await bare.get("/Clients", headers={"ClientId": DEFAULT_CLIENT_ID,
                                                        "Authorization": "Bearer nope"})
    assert [r.status_code for r in (no_client_id, wrong_client_id, no_token, bad_token)] == [
        401] * 4


async def test_logins_answer_as_automate_does(automate: RunningServer) -> None:
    """Wrong password 401; MFA user 200 with an empty token; keys matched without case."""
    async with httpx.AsyncClient(base_url=f"{automate.url}/cwa/api/v1") as bare:
        wrong = await bare.post("/APIToken", json={"Username": "alertd-integrator",
                                                   "Password": "nope"})
        mfa = await bare.post("/apitoken", json={"username": "mfa-user", "password": PASSWORD})
    assert wrong.status_code == 401
    assert mfa.status_code == 200
    assert (mfa.json()["AccessToken"], mfa.json()["IsTwoFactorRequired"]) == ("", True)


async def test_page_sizes_are_enforced(http: httpx.AsyncClient) -> None:
    """pageSize 1..1000; without it a small default page (the real default is unknown)."""
    too_big = await http.get("/Computers", params={"pageSize": 1001})
    zero = await http.get("/Computers", params={"pageSize": 0})
    assert (too_big.status_code, zero.status_code) == (400, 400)
    assert too_big.json() == {"Message": "pageSize must be between 1 and 1000"}
    page_two = await http.get("/Computers", params={"pageSize": 2, "page": 2})
    assert [c["Id"] for c in page_two.json()] == ["1203", "2201"]


@pytest.mark.parametrize(("condition", "expected"), [
    ("Type = 'Server'", ["1042", "2201"]),
    ("Type != 'Workstation'", ["1042", "2201"]),
    ("Client.Id = 41", ["2201", "2305"]),
    ("Id in (1042, 2305)", ["1042", "2305"]),
    ("ComputerName like 'CON-%'", ["1042", "1187", "1203"]),
    ("Type = 'Workstation' and (Location.Id = 42 or Client.Id = 41)", ["1203", "2305"]),
    ("ComputerName not like '%WS%'", ["1042", "1203", "2201"]),
    ("OpenPortsTCP contains 445", ["1042", "1187", "1203", "2201", "2305"]),
    ("LastInventoryReceived >= 2025-06-01T00:00:00", ["1042", "1187", "1203", "2201", "2305"]),
    ('SerialNumber = "PF3ABCD1"', ["1203"]),
])
async def test_the_condition_forms_the_client_sends(
    http: httpx.AsyncClient, condition: str, expected: list[str],
) -> None:
    """Comparisons, like, contains, in, not, and/or with parentheses, dotted paths."""
    assert await ids(http, "/Computers", condition=condition) == expected


async def test_unknown_fields_and_broken_conditions_are_refused(http: httpx.AsyncClient) -> None:
    """As the real server does: 400 with a message."""
    unknown = await http.get("/Computers", params={"condition": "Colour = 'red'"})
    broken = await http.get("/Computers", params={"condition": "Type = "})
    assert unknown.status_code == broken.status_code == 400
    assert unknown.json() == {"Message": "Invalid field: Colour"}


async def test_resource_names_match_without_case_and_order_and_projection_work(
    http: httpx.AsyncClient,
) -> None:
    """`COMPUTERS` is `Computers`; orderBy desc; excludeFields drops fields."""
    response = await http.get("/COMPUTERS", params={
        "orderBy": "ComputerName desc", "excludeFields": "OpenPortsTCP,UserAccounts",
        "pageSize": 2})
    records = response.json()
    assert [r["ComputerName"] for r in records] == ["NW-WS17", "NW-FS01"]
    assert "OpenPortsTCP" not in records[0]
    assert "SerialNumber" in records[0]


async def test_switchable_faults(http: httpx.AsyncClient, automate_state: AutomateApp) -> None:
    """500s, 429s with Retry-After, expiring tokens and an HTML sign-in page, on demand."""
    automate_state.faults.fail_next = 1
    automate_state.faults.throttle_next = 1
    automate_state.faults.retry_after = "3"
    failed = await http.get("/Clients")
    throttled = await http.get("/Clients")
    fine = await http.get("/Clients")
    automate_state.expire_tokens()
    expired = await http.get("/Clients")
    automate_state.faults.html = True
    html = await http.get("/Clients")
    assert [r.status_code for r in (failed, throttled, fine, expired, html)] == [
        500, 429, 200, 401, 200]
    assert throttled.headers["Retry-After"] == "3"
    assert html.headers["Content-Type"].startswith("text/html")
    assert b"<title>ConnectWise Automate - Sign In</title>" in html.content


async def test_a_user_class_without_a_permission_gets_403(automate: RunningServer) -> None:
    """The `limited` user may read clients but not computers."""
    async with httpx.AsyncClient(base_url=f"{automate.url}/cwa/api/v1",
                                 headers={"ClientId": DEFAULT_CLIENT_ID}) as client:
        login = await client.post("/apitoken", json={"Username": "limited",
                                                     "Password": PASSWORD})
        client.headers["Authorization"] = f"Bearer {login.json()['AccessToken']}"
        clients = await client.get("/Clients")
        computers = await client.get("/Computers")
    assert (clients.status_code, computers.status_code) == (200, 403)
