"""`/tickets` over HTTP, on a SQLite file and on the real PostgreSQL (R4.4, R6.7)."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import insert

from alertd.db.tables import OUTBOX
from alertd.runtime import Runtime
from tests.helpers import deliver_and_process, ticket
from tests.mails import automate_tagged
from tests.web.conftest import AUTOMATE_URL, T0


async def open_tickets(runtime: Runtime) -> dict[str, int]:
    """Three tickets: a disk alert on NW-FS01, a CPU alert on CT-WEB01, one for an unknown host."""
    disk = await deliver_and_process(runtime, automate_tagged("FAILED", date=T0))
    cpu = await deliver_and_process(runtime, automate_tagged(
        "FAILED", date=T0 + timedelta(minutes=1), computer_id=3100, host="CT-WEB01",
        client="Contoso Ltd", client_id=27, monitor="CPU - 100% busy", field="CPU"))
    unknown = await deliver_and_process(runtime, automate_tagged(
        "FAILED", date=T0 + timedelta(minutes=2), computer_id=9999, host="NOWHERE",
        client="Contoso Ltd", client_id=27, monitor="Ping 50% loss", field="ping"))
    return {"disk": disk["ticket_id"], "cpu": cpu["ticket_id"], "unknown": unknown["ticket_id"]}


async def test_the_list_is_newest_first_and_every_filter_narrows_it(
    client: httpx.AsyncClient, runtime: Runtime, fleet: dict[str, int]
) -> None:
    """status, client (any case), asset_id, alert_type, text in the summary, limit and offset."""
    ids = await open_tickets(runtime)

    async def listed(**params: str | int) -> list[int]:
        response = await client.get("/tickets", params=params)
        assert response.status_code == 200, response.text
        return [row["id"] for row in response.json()]

    assert await listed() == [ids["unknown"], ids["cpu"], ids["disk"]]
    assert await listed(client="contoso ltd") == [ids["unknown"], ids["cpu"]]
    assert await listed(asset_id=fleet["fs01"]) == [ids["disk"]]
    assert await listed(alert_type="automate-tagged", q="cpu - 100%") == [ids["cpu"]]
    assert await listed(q="50% LOSS") == [ids["unknown"]]
    assert await listed(q="_") == []  # a plain character, not a LIKE wildcard
    assert await listed(limit=1, offset=1) == [ids["cpu"]]
    assert await listed(status="resolved") == []

    [row] = (await client.get("/tickets", params={"asset_id": fleet["fs01"]})).json()
    assert row["asset"] == {"id": fleet["fs01"], "name": "NW-FS01", "automate_id": "2201"}
    assert (row["status"], row["client"], row["matched_by"]) == (
        "open", "Northwind Traders", "computer_id")
    assert row["first_seen"] == "2026-11-02T09:00:00Z"


async def test_show_gives_history_links_and_automate_actions(
    client: httpx.AsyncClient, runtime: Runtime, fleet: dict[str, int]
) -> None:
    """A ticket on an Automate computer carries the guide's two buttons; an outbox row shows."""
    ids = await open_tickets(runtime)
    async with runtime.sessions.begin() as session:
        await session.execute(insert(OUTBOX).values(
            ticket_id=ids["disk"], action="finish_script", label="Ticket Finish",
            entity_type="Ticket", entity_id=5501, parameters=[], state="failed", attempts=2,
            last_error="403 Forbidden", due_at=T0, created_at=T0, updated_at=T0,
            finished_at=T0 + timedelta(minutes=5)))

    response = await client.get(f"/tickets/{ids['disk']}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["links"] == [
        {"name": "Device in Automate", "url": f"{AUTOMATE_URL}/automate/computer/2201"},
        {"name": "Device in Control",
         "url": f"{AUTOMATE_URL}/extensions/4da1ae45-1be1-4683-b71e-fed1bfc01788/"
                "launchproxy.html?i=2201"},
    ]
    assert [event["kind"] for event in body["history"]] == ["opened"]
    assert body["fields"]["computer_id"] == "2201"
    [entry] = body["outbox"]
    assert entry == {
        "id": entry["id"], "action": "finish_script", "label": "Ticket Finish",
        "state": "failed", "attempts": 2, "last_error": "403 Forbidden", "outcome": None,
        "created_at": "2026-11-02T09:00:00Z", "finished_at": "2026-11-02T09:05:00Z",
    }
    unknown = (await client.get(f"/tickets/{ids['unknown']}")).json()
    assert (unknown["asset"], unknown["links"], unknown["outbox"]) == (None, [], [])


async def test_resolve_and_close_record_who_did_it(
    client: httpx.AsyncClient, runtime: Runtime, fleet: dict[str, int]
) -> None:
    """The technician named in the body is the actor; without a body the actor is `api`."""
    ids = await open_tickets(runtime)

    resolved = await client.post(f"/tickets/{ids['disk']}/resolve",
                                 json={"note": "freed 20 GB", "technician": "Dana"})
    assert resolved.status_code == 200, resolved.text
    assert (resolved.json()["status"], resolved.json()["resolution"]) == (
        "resolved", "freed 20 GB")
    closed = await client.post(f"/tickets/{ids['cpu']}/close")
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"

    stored = await ticket(runtime, ids["disk"])
    assert stored["status"] == "resolved"
    assert (stored["history"][-1]["kind"], stored["history"][-1]["actor"]) == ("resolved", "Dana")
    assert stored["history"][-1]["detail"] == "resolved by Dana: freed 20 GB"
    assert (await ticket(runtime, ids["cpu"]))["history"][-1]["actor"] == "api"


async def test_status_changes_that_are_not_allowed_are_409(
    client: httpx.AsyncClient, runtime: Runtime, fleet: dict[str, int]
) -> None:
    """A closed ticket cannot be resolved or closed again; the reason is in the body."""
    ids = await open_tickets(runtime)
    assert (await client.post(f"/tickets/{ids['disk']}/close", json={})).status_code == 200
    again = await client.post(f"/tickets/{ids['disk']}/resolve")
    assert again.status_code == 409
    assert again.json() == {
        "detail": f"ticket {ids['disk']} is closed; only open tickets can be resolved"}
    assert (await client.post(f"/tickets/{ids['disk']}/close")).status_code == 409


async def test_unknown_ids_are_404(client: httpx.AsyncClient) -> None:
    """Show, resolve and close of a ticket that does not exist say so."""
    assert (await client.get("/tickets/42")).json() == {"detail": "no ticket 42"}
    for path in ("/tickets/42", "/tickets/42/resolve", "/tickets/42/close"):
        method = client.get if path == "/tickets/42" else client.post
        assert (await method(path)).status_code == 404


async def test_bad_input_is_422(client: httpx.AsyncClient) -> None:
    """Unknown statuses, ids out of range, limits past 1000, unknown body keys, and text
    no database can store (NUL, a lone surrogate)."""
    for path, params in [
        ("/tickets", {"status": "pending"}),
        ("/tickets", {"limit": "0"}),
        ("/tickets", {"limit": "1001"}),
        ("/tickets", {"offset": "-1"}),
        ("/tickets", {"asset_id": "x"}),
        ("/tickets", {"q": "a\x00b"}),
        ("/tickets/0", {}),
        ("/tickets/abc", {}),
        ("/tickets/99999999999999999999", {}),
    ]:
        response = await client.get(path, params=params)
        assert response.status_code == 422, (path, params, response.text)
    for body in ({"note": 5}, {"resolution": "x"}, {"technician": "a\x00"}, [1]):
        response = await client.post("/tickets/1/resolve", json=body)
        assert response.status_code == 422, (body, response.text)
    lone_surrogate = await client.post("/tickets/1/resolve", content=b'{"note": "\\ud800"}',
                                       headers={"Content-Type": "application/json"})
    assert lone_surrogate.status_code == 422, lone_surrogate.text
