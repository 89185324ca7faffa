"""`/assets` and `/messages` over HTTP: listing, showing, links and retry (R1.4, R6.7)."""

from __future__ import annotations

import httpx

from alertd.runtime import Runtime
from tests.helpers import deliver, deliver_and_process, message
from tests.mails import automate_tagged
from tests.web.conftest import AUTOMATE_URL, T0


async def test_assets_list_filters_by_client_kind_and_name(
    client: httpx.AsyncClient, fleet: dict[str, int]
) -> None:
    """Assets come in id order; client names ignore case and spacing; names match in part."""

    async def listed(**params: str | int) -> list[int]:
        response = await client.get("/assets", params=params)
        assert response.status_code == 200, response.text
        return [row["id"] for row in response.json()]

    assert await listed() == sorted(fleet[k] for k in ("fs01", "printer", "router", "web01"))
    assert await listed(client="  northwind   TRADERS ") == [
        fleet["fs01"], fleet["printer"], fleet["router"]]
    assert await listed(kind="Server") == [fleet["fs01"], fleet["web01"]]
    assert await listed(name="nw-") == [fleet["fs01"], fleet["printer"], fleet["router"]]
    assert await listed(client="Contoso Ltd", kind="Router") == []
    assert await listed(limit=2, offset=1) == [fleet["printer"], fleet["router"]]
    [row] = (await client.get("/assets", params={"name": "prn"})).json()
    assert row == {"id": fleet["printer"], "name": "NW-PRN 1", "kind": "Printer",
                   "automate_kind": "printer", "automate_id": "2201:3", "asset_tag": None,
                   "serial": None, "client": "Northwind Traders", "site": "Head Office",
                   "parent_id": fleet["fs01"]}


async def test_an_asset_shows_its_client_site_fields_parent_and_links(
    client: httpx.AsyncClient, fleet: dict[str, int]
) -> None:
    """A computer gets the Automate and Control buttons; a printer shows its parent, no buttons."""
    fs01 = (await client.get(f"/assets/{fleet['fs01']}")).json()
    assert (fs01["client"], fs01["site"], fs01["client_id"], fs01["site_id"]) == (
        "Northwind Traders", "Head Office", fleet["northwind"], fleet["office"])
    assert fs01["fields"] == {"os": "Windows Server 2022"}
    assert fs01["parent"] is None
    assert [link["url"] for link in fs01["links"]] == [
        f"{AUTOMATE_URL}/automate/computer/2201",
        f"{AUTOMATE_URL}/extensions/4da1ae45-1be1-4683-b71e-fed1bfc01788/launchproxy.html?i=2201",
    ]
    printer = (await client.get(f"/assets/{fleet['printer']}")).json()
    assert printer["parent"] == {"id": fleet["fs01"], "name": "NW-FS01", "kind": "Server"}
    assert printer["links"] == []
    assert (await client.get(f"/assets/{fleet['router']}")).json()["links"] == []
    missing = await client.get("/assets/999")
    assert (missing.status_code, missing.json()) == (404, {"detail": "no asset 999"})
    assert (await client.get("/assets", params={"limit": 5000})).status_code == 422


async def test_messages_list_and_show_without_the_raw_mail(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """Newest first, filtered by state and source; show has envelope and trace, no raw bytes."""
    done = await deliver_and_process(runtime, automate_tagged("FAILED", date=T0),
                                     source="smtp:main", mail_from="rmm@example.invalid")
    failed = await deliver_and_process(runtime, b"\r\n\r\n", source="pipe")

    async def listed(**params: str | int) -> list[int]:
        response = await client.get("/messages", params=params)
        assert response.status_code == 200, response.text
        return [row["id"] for row in response.json()]

    assert await listed() == [failed["id"], done["id"]]
    assert await listed(state="failed") == [failed["id"]]
    assert await listed(source="smtp:main") == [done["id"]]
    assert await listed(limit=1, offset=1) == [done["id"]]

    shown = await client.get(f"/messages/{done['id']}")
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert (body["state"], body["action"], body["ticket_id"]) == (
        "done", "new_ticket", done["ticket_id"])
    assert body["envelope"]["mail_from"] == "rmm@example.invalid"
    assert body["trace"][0] == {"stage": "sender", "name": "automate", "hit": True,
                                "detail": "automate@example.invalid"}
    assert "raw" not in body
    assert "Status: FAILED" not in shown.text  # the mail's body stays out of the JSON
    assert (await client.get("/messages", params={"state": "lost"})).status_code == 422


async def test_retry_puts_a_failed_message_back_and_refuses_others(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """A failed message goes back to received (200); a done one is 409; an unknown id 404."""
    done = await deliver_and_process(runtime, automate_tagged("FAILED", date=T0))
    failed = await deliver_and_process(runtime, b"\r\n\r\n")

    retried = await client.post(f"/messages/{failed['id']}/retry")
    assert retried.status_code == 200, retried.text
    assert (retried.json()["id"], retried.json()["state"]) == (failed["id"], "received")
    assert (await message(runtime, failed["id"]))["state"] == "received"

    refused = await client.post(f"/messages/{done['id']}/retry")
    assert refused.status_code == 409
    assert refused.json() == {"detail": f"message {done['id']} is done; only failed or ignored "
                                        "messages can be retried"}
    assert (await client.post("/messages/999/retry")).status_code == 404
    assert (await client.get("/messages/999")).json() == {"detail": "no message 999"}


async def test_a_received_message_is_listed_before_processing(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """Stored but not yet processed: listed as received, with no decision yet."""
    inbox_id = await deliver(runtime, automate_tagged("FAILED", date=T0))
    body = (await client.get(f"/messages/{inbox_id}")).json()
    assert (body["state"], body["trace"], body["alert_type"]) == ("received", None, None)
