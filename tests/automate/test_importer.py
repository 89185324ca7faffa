"""The Automate import (R5.2-R5.4) against the local Automate over real HTTP, on SQLite and
PostgreSQL: what a full import creates, that a second one changes nothing, adoption,
refusals, default sites, faults survived, and tickets linked afterwards (R4.1).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import aliased

from alertd.assets.import_rows import ImportReport
from alertd.assets.import_tables import CLIENTS
from alertd.assets.importer import Importer
from alertd.assets.store import add_asset, add_client
from alertd.automate.client import AutomateClient
from alertd.clock import SystemClock
from alertd.db.tables import Asset, Client, Site, User
from alertd.errors import AutomateMisconfigured, ConfigError
from alertd.runtime import Runtime, open_runtime
from alertd.settings import Settings
from alertd.testing.automate_server import AutomateApp
from tests.automate.conftest import ENVIRON, PASSWORD, Sleeps
from tests.automate.contract import check_all, dump
from tests.automate.data import EXPECTED_ASSETS, ROUTER_PASSWORD
from tests.helpers import deliver_and_process, ticket
from tests.mails import automate_monitor, automate_tagged

T0 = SystemClock().now()


async def run_import(runtime: Runtime, sleeps: Sleeps, what: Any = "all", **kwargs: Any
                     ) -> ImportReport:
    """One import through a fresh client (as `alertd automate import` does)."""
    assert runtime.settings.automate is not None
    async with AutomateClient(runtime.settings.automate, sleep=sleeps, environ=ENVIRON) as client:
        return await Importer(runtime, client).run(what, **kwargs)


def counts(report: ImportReport) -> dict[str, tuple[int, int, int, int, int]]:
    """created, updated, unchanged, skipped, failed per kind."""
    return {k.kind: (k.created, k.updated, k.unchanged, k.skipped, k.failed)
            for k in report.kinds}


async def assets(runtime: Runtime) -> dict[tuple[str, str], tuple[Any, ...]]:
    """Imported assets as (name, kind, asset_tag, client, site, parent's automate id)."""
    parent = aliased(Asset)
    async with runtime.sessions() as session:
        rows = await session.execute(
            select(Asset.automate_kind, Asset.automate_id, Asset.name, Asset.kind,
                   Asset.asset_tag, Client.name, Site.name, parent.automate_id)
            .outerjoin(Client, Client.id == Asset.client_id)
            .outerjoin(Site, Site.id == Asset.site_id)
            .outerjoin(parent, parent.id == Asset.parent_id))
    return {(r[0], r[1]): tuple(r[2:]) for r in rows.all()}


async def fields_of(runtime: Runtime, *, bookkeeping: bool = False
                    ) -> dict[str, dict[str, Any]]:
    """Each asset's `fields`, by automate id (the import's own `_import` left out)."""
    async with runtime.sessions() as session:
        rows = await session.execute(select(Asset.automate_id, Asset.fields))
    return {str(automate_id): {k: v for k, v in fields.items()
                               if bookkeeping or k != "_import"}
            for automate_id, fields in rows.all()}


async def table(runtime: Runtime, query: Any) -> list[tuple[Any, ...]]:
    """Rows of ``query``, sorted."""
    async with runtime.sessions() as session:
        return sorted(tuple(row) for row in (await session.execute(query)).all())


async def test_a_full_import_gives_exactly_the_expected_records(
    automate_runtime: Runtime, automate_state: AutomateApp, sleeps: Sleeps,
) -> None:
    """Clients under the top level, sites, users at their sites, and every asset kind with
    its tag, parent, standard and custom fields; every request and record fits the contract."""
    report = await run_import(automate_runtime, sleeps)

    assert counts(report) == {
        "clients": (2, 0, 0, 0, 0), "sites": (3, 0, 0, 0, 0), "users": (4, 0, 0, 0, 0),
        "servers": (2, 0, 0, 0, 0), "workstations": (3, 0, 0, 0, 0),
        "printers": (3, 0, 0, 0, 0), "routers": (2, 0, 0, 0, 0),
    }
    assert report.error is None
    assert await assets(automate_runtime) == EXPECTED_ASSETS
    assert await table(automate_runtime, select(CLIENTS.c.name, CLIENTS.c.automate_id,
                                                CLIENTS.c.top_level)) == [
        ("Contoso Ltd", "27", "Managed Clients"), ("Northwind Traders", "41", "Managed Clients")]
    assert await table(automate_runtime, select(Site.name, Site.automate_id)) == [
        ("Bristol HQ", "41"), ("Head Office", "51"), ("Leeds Branch", "42"),
        ("Unassigned", None)]
    assert await table(automate_runtime, select(User.name, User.email, Site.name, Client.name)
                       .join(Site, Site.id == User.site_id)
                       .join(Client, Client.id == User.client_id)) == [
        ("Alice Morgan", "alice.morgan@example.invalid", "Bristol HQ", "Contoso Ltd"),
        ("Ben Okafor", "ben.okafor@example.invalid", "Leeds Branch", "Contoso Ltd"),
        ("Carol Diaz", "carol.diaz@example.invalid", "Head Office", "Northwind Traders"),
        ("Dan Ito", "dan.ito@example.invalid", "Unassigned", "Northwind Traders"),
    ]
    fields = await fields_of(automate_runtime)
    assert fields["1042"] == {"os": "Microsoft Windows Server 2022 Standard x64"}
    assert fields["1187"] == {
        "os": "Microsoft Windows 11 Pro x64", "custom": {"Last User": "CONTOSO\\alice.morgan"}}
    assert (await fields_of(automate_runtime, bookkeeping=True))["1187"]["_import"] == {
        "printers_inventory": "2025-06-02T10:14:55"}
    assert fields["1187:1"] == {"ip_address": "10.10.0.50"}
    assert fields["7"] == {"custom": {"Firmware": "17.3"}}
    assert "custom field 'Last User' is created by this import" in \
        report.kind("workstations").notes
    assert check_all(automate_state.exchanges) > 10


async def test_a_second_import_changes_nothing_and_reports_everything_unchanged(
    automate_runtime: Runtime, automate_state: AutomateApp, sleeps: Sleeps,
) -> None:
    """Unchanged data: every record unchanged, no row rewritten, no printer asked for again."""
    await run_import(automate_runtime, sleeps)
    async with automate_runtime.sessions() as session:
        stamps = sorted((await session.execute(select(Asset.id, Asset.updated_at))).all())
    automate_state.reset()

    again = await run_import(automate_runtime, sleeps)

    assert counts(again) == {
        "clients": (0, 0, 2, 0, 0), "sites": (0, 0, 3, 0, 0), "users": (0, 0, 4, 0, 0),
        "servers": (0, 0, 2, 0, 0), "workstations": (0, 0, 3, 0, 0),
        "printers": (0, 0, 3, 0, 0), "routers": (0, 0, 2, 0, 0),
    }
    async with automate_runtime.sessions() as session:
        assert sorted((await session.execute(select(Asset.id, Asset.updated_at))).all()) == \
            stamps
    assert automate_state.calls["GET computers/{id}/printers"] == 0
    assert await assets(automate_runtime) == EXPECTED_ASSETS


async def test_changes_in_automate_are_updates_and_printers_follow_the_inventory(
    automate_runtime: Runtime, automate_state: AutomateApp, sleeps: Sleeps,
) -> None:
    """A renamed computer is updated; printers are fetched again only where inventory moved."""
    await run_import(automate_runtime, sleeps)
    data = automate_state.data
    computer = next(c for c in data.computers if c["Id"] == "1187")
    computer["ComputerName"] = "CON-WS-014-NEW"
    computer["LastInventoryReceived"] = "2025-06-03T08:00:00"
    data.printers["1187"].pop()
    data.changed()
    automate_state.reset()

    report = await run_import(automate_runtime, sleeps, "assets")

    assert counts(report)["workstations"] == (0, 1, 2, 0, 0)
    assert counts(report)["printers"] == (0, 0, 2, 0, 0)
    assert automate_state.calls["GET computers/{id}/printers"] == 1
    assert automate_state.exchanges[-1].path.lower() != "/cwa/api/v1/computers/1203/printers"
    assert (await assets(automate_runtime))[("computer", "1187")][0] == "CON-WS-014-NEW"


async def test_a_dry_run_reports_what_would_change_and_writes_nothing(
    automate_runtime: Runtime, sleeps: Sleeps,
) -> None:
    """Same counts as a real first import; the database stays empty."""
    report = await run_import(automate_runtime, sleeps, dry_run=True)
    assert report.dry_run
    assert counts(report)["workstations"] == (3, 0, 0, 0, 0)
    assert counts(report)["printers"] == (3, 0, 0, 0, 0)
    assert counts(report)["users"] == (4, 0, 0, 0, 0)
    assert await assets(automate_runtime) == {}
    assert await table(automate_runtime, select(Client.name)) == []


async def test_existing_assets_are_adopted_by_serial_without_duplicates(
    import_settings: Callable[..., Settings], sleeps: Sleeps,
) -> None:
    """match_on serial: assets made before (no Automate id) take the Automate id and keep their
    own custom fields; two assets sharing a serial are not guessed between."""
    settings = import_settings(**{"import": {
        "asset_types": {"servers": "Server", "workstations": "Workstation"},
        "default_site": "Unassigned", "match_on": "serial"}})
    async with open_runtime(settings) as runtime:
        async with runtime.sessions.begin() as session:
            dc = await add_asset(session, "dc01-old-name", kind="Server", now=T0,
                                 serial="czj 1234abc", fields={"custom": {"Warranty": "2027"}})
            await add_asset(session, "laptop-a", kind="Workstation", now=T0, serial="PF3ABCD1")
            await add_asset(session, "laptop-b", kind="Workstation", now=T0, serial="pf3abcd1")
        report = await run_import(runtime, sleeps, "assets")
        found = await assets(runtime)
        fields = await fields_of(runtime)
        async with runtime.sessions() as session:
            total = len((await session.execute(select(Asset.id))).all())

    assert counts(report) == {"servers": (1, 1, 0, 0, 0), "workstations": (2, 0, 0, 0, 1)}
    assert found[("computer", "1042")][:3] == ("CON-DC01", "Server", "CZJ1234ABC")
    assert fields["1042"] == {"custom": {"Warranty": "2027"}}
    assert ("computer", "1203") not in found
    assert total == 3 + 3
    assert "1 existing assets adopted by serial" in report.kind("servers").notes
    assert dict(report.kind("workstations").reasons) == {
        ("failed", "2 existing assets have serial 'pf3abcd1': cannot tell which one to adopt"): 1}
    async with open_runtime(settings) as runtime, runtime.sessions() as session:
        adopted = (await session.execute(select(Asset.automate_id).where(Asset.id == dc)))
        assert adopted.scalar_one() == "1042"


async def test_an_unmapped_kind_is_refused_with_its_message(
    import_settings: Callable[..., Settings], sleeps: Sleeps, automate_state: AutomateApp,
) -> None:
    """No asset type mapping for routers: importing routers is a configuration error, and
    printers alone are refused too; nothing is asked of Automate."""
    settings = import_settings(**{"import": {"asset_types": {"servers": "Server",
                                                            "printers": "Printer"}}})
    async with open_runtime(settings) as runtime:
        with pytest.raises(AutomateMisconfigured) as refused:
            await run_import(runtime, sleeps, "assets", kinds=["routers"])
        with pytest.raises(AutomateMisconfigured, match="printers are imported only with "
                           "servers or workstations"):
            await run_import(runtime, sleeps, "assets", kinds=["printers"])
    assert isinstance(refused.value, ConfigError)
    assert str(refused.value) == (
        "routers have no asset type mapping, so they cannot be imported: add "
        "automate.import.asset_types.routers (for example `routers: Router`) to alertd.yaml")
    assert automate_state.logins == 0


async def test_500s_429s_and_a_token_expiring_mid_import_are_survived(
    automate_runtime: Runtime, automate_state: AutomateApp, sleeps: Sleeps,
) -> None:
    """Every 4th call a 500, every 7th a 429 (Retry-After 2), tokens expire after 9 calls:
    the import still ends with exactly the expected records."""
    faults = automate_state.faults
    faults.fail_every, faults.throttle_every, faults.retry_after = 4, 7, "2"
    faults.expire_tokens_after = 9

    report = await run_import(automate_runtime, sleeps)

    assert report.error is None
    assert await assets(automate_runtime) == EXPECTED_ASSETS
    assert automate_state.logins == 2
    statuses = [e.status for e in automate_state.exchanges]
    assert {500, 429, 401} <= set(statuses)
    assert 2.0 in sleeps.delays
    assert check_all(automate_state.exchanges) == len(automate_state.exchanges)


async def test_an_outage_during_printers_keeps_the_computers_and_says_so(
    automate_runtime: Runtime, automate_state: AutomateApp, sleeps: Sleeps,
) -> None:
    """Printers keep failing: computers are written, the report says Automate is unavailable,
    and the next import completes the printers."""
    await run_import(automate_runtime, sleeps, "clients")
    automate_state.faults.only_path = "printers"
    automate_state.faults.fail_next = 1000

    report = await run_import(automate_runtime, sleeps, "assets")

    assert report.unavailable
    assert report.error is not None
    assert report.error.startswith("Automate unavailable: ")
    assert report.kind("printers").error is not None
    assert counts(report)["workstations"] == (3, 0, 0, 0, 0)
    automate_state.faults.fail_next = 0
    again = await run_import(automate_runtime, sleeps, "assets")
    assert counts(again)["printers"] == (3, 0, 0, 0, 0)
    assert await assets(automate_runtime) == EXPECTED_ASSETS


async def test_a_kind_automate_refuses_does_not_stop_the_others(
    import_settings: Callable[..., Settings], sleeps: Sleeps,
) -> None:
    """The `limited` user may not read computers or routers: those kinds report the refusal,
    clients and users are imported."""
    async with open_runtime(import_settings(username="limited")) as runtime:
        report = await run_import(runtime, sleeps)
    assert counts(report)["clients"] == (2, 0, 0, 0, 0)
    assert counts(report)["users"] == (4, 0, 0, 0, 0)
    assert "HTTP 403" in (report.kind("servers").error or "")
    assert "HTTP 403" in (report.kind("routers").error or "")
    assert report.refused
    assert not report.unavailable


async def test_users_before_their_sites_go_to_the_default_site_and_are_fixed_up_later(
    automate_runtime: Runtime, sleeps: Sleeps,
) -> None:
    """Users imported first land at the default site of the holding client; after clients
    and sites are imported, the next users import moves them to their own sites."""
    first = await run_import(automate_runtime, sleeps, "users")
    assert counts(first)["users"] == (4, 0, 0, 0, 0)
    assert await table(automate_runtime, select(User.name, Client.name, Site.name)
                       .join(Client, Client.id == User.client_id)
                       .join(Site, Site.id == User.site_id)) == [
        ("Alice Morgan", "Unassigned", "Unassigned"), ("Ben Okafor", "Unassigned", "Unassigned"),
        ("Carol Diaz", "Unassigned", "Unassigned"), ("Dan Ito", "Unassigned", "Unassigned")]
    assert first.kind("users").notes == [
        "4 placed at the default site 'Unassigned' (their own site or client was not imported)"]

    await run_import(automate_runtime, sleeps, "clients")
    fixed = await run_import(automate_runtime, sleeps, "users")

    assert counts(fixed)["users"] == (0, 4, 0, 0, 0)
    assert await table(automate_runtime, select(User.name, Client.name, Site.name)
                       .join(Client, Client.id == User.client_id)
                       .join(Site, Site.id == User.site_id)) == [
        ("Alice Morgan", "Contoso Ltd", "Bristol HQ"), ("Ben Okafor", "Contoso Ltd",
                                                        "Leeds Branch"),
        ("Carol Diaz", "Northwind Traders", "Head Office"),
        ("Dan Ito", "Northwind Traders", "Unassigned")]


async def test_without_a_default_site_records_of_unimported_sites_are_skipped_with_a_reason(
    import_settings: Callable[..., Settings], sleeps: Sleeps,
) -> None:
    """Users and assets whose client was not imported cannot be placed: skipped, and why."""
    settings = import_settings(**{"import": {"asset_types": {"workstations": "Workstation"}}})
    async with open_runtime(settings) as runtime:
        report = await run_import(runtime, sleeps, "assets")
    assert counts(report)["workstations"] == (0, 0, 0, 3, 0)
    assert dict(report.kind("workstations").reasons) == {
        ("skipped", "client 27 was not imported (import clients first, or set "
                    "automate.import.default_site)"): 2,
        ("skipped", "client 41 was not imported (import clients first, or set "
                    "automate.import.default_site)"): 1,
    }
    assert report.kind("workstations").examples[
        ("skipped", "client 27 was not imported (import clients first, or set "
                    "automate.import.default_site)")] == ["1187", "1203"]


async def test_a_custom_field_of_the_same_name_is_reused_and_one_without_create_is_not_made(
    import_settings: Callable[..., Settings], sleeps: Sleeps,
) -> None:
    """`Last User` exists as `last  user` on another asset: values go there; `Asset Owner`
    does not exist and is not to be created: its mapping is reported, not applied."""
    settings = import_settings(**{"import": {
        "asset_types": {"workstations": "Workstation"}, "default_site": "Unassigned",
        "fields": [
            {"kind": "workstations", "from": "LastUserName",
             "to": {"custom_field": "Last User", "create": True}},
            {"kind": "workstations", "from": "PrimaryContactName",
             "to": {"custom_field": "Asset Owner"}},
        ]}})
    async with open_runtime(settings) as runtime:
        async with runtime.sessions.begin() as session:
            await add_asset(session, "old-pc", kind="Workstation", now=T0,
                            fields={"custom": {"last  user": "someone"}})
        report = await run_import(runtime, sleeps, "assets")
        fields = await fields_of(runtime)
    assert fields["1203"]["custom"] == {"last  user": "CONTOSO\\ben.okafor"}
    assert report.kind("workstations").notes == [
        "custom field 'Last User' already exists as 'last  user': reusing it",
        "custom field 'Asset Owner' does not exist, so workstations PrimaryContactName is not "
        "imported: set create: true to create it",
        "3 placed at the default site 'Unassigned' (their own site or client was not imported)",
    ]


async def test_router_credentials_are_never_stored_or_logged(
    automate_runtime: Runtime, sleeps: Sleeps, caplog: pytest.LogCaptureFixture,
) -> None:
    """Routers come from /routers with Username and Password: neither reaches the database or
    a log line, and neither does the integrator's password."""
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as events:
        await run_import(automate_runtime, sleeps)
    async with automate_runtime.sessions() as session:
        everything = [tuple(row) for model in (Asset, Client, Site, User)
                      for row in (await session.execute(select(model.__table__))).all()]
    stored = dump(everything)
    logged = repr(events) + caplog.text
    assert "Cisco Systems ISR 1100 (Bristol HQ)" in stored
    for secret in (ROUTER_PASSWORD, PASSWORD):
        assert secret not in stored
        assert secret not in logged


async def test_network_devices_are_an_optional_fifth_kind(
    import_settings: Callable[..., Settings], sleeps: Sleeps,
) -> None:
    """Mapped, they are imported keyed by their Id; their SNMP community is not kept."""
    settings = import_settings(**{"import": {
        "asset_types": {"network_devices": "Switch"}, "default_site": "Unassigned",
        "fields": [{"kind": "network_devices", "from": "DeviceType.Name",
                    "to": {"asset_field": "model"}}]}})
    async with open_runtime(settings) as runtime:
        await run_import(runtime, sleeps, "clients")
        report = await run_import(runtime, sleeps, "assets")
        found = await assets(runtime)
        fields = await fields_of(runtime)
    assert counts(report) == {"network_devices": (1, 0, 0, 0, 0)}
    assert found == {("network_device", "5310"): ("CON-SW01", "Switch", None, "Contoso Ltd",
                                                  "Bristol HQ", None)}
    assert fields["5310"] == {"model": "Switch"}
    assert "public-secret" not in dump(fields)


async def test_alerts_for_imported_computers_find_them_and_earlier_tickets_are_linked(
    automate_runtime: Runtime, sleeps: Sleeps,
) -> None:
    """Before the import, a tagged mail (computer 2201) and a default-text mail (Northwind's
    NW-WS17) open unmatched tickets; the import links both, with a history entry, and later
    mails match by Automate id and by client + computer name."""
    tagged = await deliver_and_process(automate_runtime, automate_tagged(
        "FAILED", date=T0, computer_id=2201, host="NW-FS01", client="Northwind Traders"))
    plain = await deliver_and_process(automate_runtime, automate_monitor(
        "FAILED", date=T0, host="NW-WS17", client="Northwind Traders"))
    before = [await ticket(automate_runtime, row["ticket_id"]) for row in (tagged, plain)]
    assert [t["matched_by"] for t in before] == ["unmatched", "unmatched"]

    report = await run_import(automate_runtime, sleeps)

    assert report.linked_tickets == 2
    after = [await ticket(automate_runtime, row["ticket_id"]) for row in (tagged, plain)]
    assert [(t["asset"]["name"], t["matched_by"]) for t in after] == [
        ("NW-FS01", "computer_id"), ("NW-WS17", "hostname_in_client")]
    for linked in after:
        assert any(event["kind"] == "linked" and event["actor"] == "import"
                   for event in linked["history"])

    tagged_again = await deliver_and_process(automate_runtime, automate_tagged(
        "FAILED", date=T0, computer_id=1042, host="CON-DC01", client="Contoso Ltd"))
    plain_again = await deliver_and_process(automate_runtime, automate_monitor(
        "FAILED", date=T0, host="con-lt-022", client="contoso ltd", site="Leeds Branch"))
    found = [await ticket(automate_runtime, row["ticket_id"])
             for row in (tagged_again, plain_again)]
    assert [(t["asset"]["automate_id"], t["matched_by"]) for t in found] == [
        ("1042", "computer_id"), ("1203", "hostname_in_client")]
    assert [t["site"] for t in found] == ["Bristol HQ", "Leeds Branch"]


async def test_the_top_level_of_clients_is_kept_when_the_setting_is_removed(
    import_settings: Callable[..., Settings], sleeps: Sleeps,
) -> None:
    """The customer top level is applied on import; an import without one keeps it."""
    async with open_runtime(import_settings()) as runtime:
        await run_import(runtime, sleeps, "clients")
    plain = import_settings(**{"import": {"asset_types": {}}})
    async with open_runtime(plain) as runtime:
        async with runtime.sessions.begin() as session:
            await session.execute(update(CLIENTS).where(CLIENTS.c.automate_id == "27")
                                  .values(name="Contoso (old name)"))
            await add_client(session, "Local only", now=T0)
        report = await run_import(runtime, sleeps, "clients")
        rows = await table(runtime, select(CLIENTS.c.name, CLIENTS.c.top_level))
    assert counts(report)["clients"] == (0, 1, 1, 0, 0)
    assert rows == [("Contoso Ltd", "Managed Clients"), ("Local only", None),
                    ("Northwind Traders", "Managed Clients")]
