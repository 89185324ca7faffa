"""Automate -> alertd import of clients, sites, users and assets (SPEC R5.2-R5.4).

It follows the Halo integration guide (`shared/seed/`) as `automate-api.md`
reads it:

- **clients and sites**: every Automate client becomes a client (under the
  configured customer top level, when one is set), every location a site;
- **users**: every contact becomes a user at its site; importing sites
  first is recommended, and a user whose site appears later is moved there
  by the next import;
- **default site**: a user or asset whose site was not imported goes to the
  site named `default_site` of its client (created when first needed), or
  of the `default_client` when its client was not imported either; with
  no default site such records are skipped with that reason;
- **assets**: only kinds with an asset type mapping are imported (asking
  for an unmapped kind is refused with a plain message). Servers and
  workstations are `/Computers` of that `Type`, their asset tag is the
  serial number; printers come only with them, one `/Computers/{id}/Printers`
  call per computer, as child assets; routers are the location router
  records (`/routers`), placed at their location, asset tag = `Guid`, their
  credentials never read; discovered network devices are an optional kind;
- **field mappings** fill standard asset fields or custom fields; a custom
  field is created on the next import when `create` is set, and an
  existing field of that name is reused;
- **the matching field** (`match_on`): the Automate id always finds assets
  imported before; with a unique asset field (e.g. `serial`) an existing
  asset that has no Automate id yet is adopted instead of duplicated.

Work is split so that the database is never locked while Automate is
being asked: each kind is fetched first, then compared with one snapshot
read, and only created or changed rows are written, in short transactions
of Core upserts (`insert ... on conflict do update`) batched per statement,
never row by row through the ORM. A re-import of unchanged data writes
nothing. Printers are fetched again only for computers whose inventory
date moved since their printers were last fetched (`printers_refresh`),
because that one request per computer dominates large imports.

`--dry-run` does every step but writing, and reports the same counts.
After a real import, tickets that were unmatched and now find their asset
are linked (R4.1).
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol, TypeVar

from sqlalchemy import Table, bindparam, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from alertd.assets.import_rows import (
    ASSET_COLUMNS,
    BOOKKEEPING,
    Existing,
    FieldPlan,
    ImportReport,
    KindReport,
    asset_row,
    column_value,
    existing_custom_names,
    existing_match_value,
    match_value,
    merge_fields,
    plan_fields,
    same_asset,
)
from alertd.assets.import_tables import ASSETS, CLIENTS, SITES, USERS
from alertd.assets.names import name_key
from alertd.automate.client import AutomateClient
from alertd.automate.fields import (
    AUTOMATE_KIND,
    COMPUTER_KINDS,
    COMPUTER_TYPE,
    KINDS,
    TAG_SOURCE,
    AutomateKind,
)
from alertd.automate.models import Bad, Printer, Scalar
from alertd.db.engine import storage_errors
from alertd.errors import AutomateMisconfigured, AutomateRejected, AutomateUnavailable
from alertd.logs import get_logger
from alertd.runtime import Runtime
from alertd.settings import AutomateImportSettings

log = get_logger(__name__)

T = TypeVar("T")
What = Literal["clients", "users", "assets", "all"]
WRITE_CHUNK = 2000
BOOK_PRINTERS = "printers_inventory"


class Progress(Protocol):
    """Where an import reports how far it is (rich bars on a terminal, log lines otherwise)."""

    def begin(self, task: str, total: int | None = None) -> None:
        """A task starts; ``total`` when known."""

    def advance(self, task: str, count: int = 1) -> None:
        """``count`` more items of ``task`` are done."""

    def end(self, task: str) -> None:
        """The task is finished."""


class NullProgress:
    """Reports nothing."""

    def begin(self, task: str, total: int | None = None) -> None:
        """Ignore."""

    def advance(self, task: str, count: int = 1) -> None:
        """Ignore."""

    def end(self, task: str) -> None:
        """Ignore."""


class ImportStopped(Exception):
    """The daemon is stopping: the import ends between two units of work."""


def refuse_unmapped(settings: AutomateImportSettings, kinds: Sequence[AutomateKind] | None
                    ) -> tuple[AutomateKind, ...]:
    """The asset kinds to import; an asked-for kind without an asset type mapping is refused."""
    mapped = settings.asset_types
    if kinds:
        for kind in kinds:
            if kind not in mapped:
                raise AutomateMisconfigured(
                    f"{kind} have no asset type mapping, so they cannot be imported: add "
                    f"automate.import.asset_types.{kind} (for example `{kind}: "
                    f"{kind.rstrip('s').replace('_', ' ').title()}`) to alertd.yaml",
                    aspect="config",
                )
        if "printers" in kinds and not set(COMPUTER_KINDS) & set(kinds):
            raise AutomateMisconfigured(
                "printers are imported only with servers or workstations, as their child "
                "assets: import servers or workstations too", aspect="config",
            )
        return tuple(kind for kind in KINDS if kind in kinds)
    if not mapped:
        raise AutomateMisconfigured(
            "no Automate kind has an asset type mapping: add automate.import.asset_types "
            "(servers, workstations, routers, printers, network_devices) to alertd.yaml",
            aspect="config",
        )
    return tuple(kind for kind in KINDS if kind in mapped)


@dataclass
class _Defaults:
    """Default sites (and the holding client) handed out as placeholders, created at the end."""

    site_name: str | None
    client_name: str
    sites: dict[tuple[int, str], int]
    holding: int | None
    wanted_sites: dict[int, tuple[int, str]] = field(default_factory=dict)
    wanted_holding: int | None = None
    resolved: dict[int | None, int] = field(default_factory=dict)
    """Placeholder -> real id, for everything created so far."""
    _next: int = -1

    def _placeholder(self) -> int:
        value = self._next
        self._next -= 1
        return value

    def holding_client(self) -> int:
        """The id (or placeholder) of the client holding records of unknown clients."""
        if self.holding is not None:
            return self.holding
        if self.wanted_holding is None:
            self.wanted_holding = self._placeholder()
        return self.wanted_holding

    def site_for(self, client_id: int) -> int:
        """The id (or placeholder) of the default site of ``client_id``."""
        assert self.site_name is not None
        key = (client_id, name_key(self.site_name))
        found = self.sites.get(key)
        if found is not None:
            return found
        placeholder = self._placeholder()
        self.sites[key] = placeholder
        self.wanted_sites[placeholder] = key
        return placeholder


@dataclass
class _Placement:
    """Where a record goes: its client and site, or a default, or nowhere (skipped)."""

    clients: dict[str, int]
    sites: dict[str, tuple[int, int]]
    defaults: _Defaults
    defaulted: Counter[str] = field(default_factory=Counter)
    """Records put at a default site, per kind."""

    def place(self, client_aid: str | None, location_aid: str | None, report: KindReport,
              ident: str) -> tuple[int | None, int | None] | None:
        client_id = self.clients.get(client_aid) if client_aid else None
        site = self.sites.get(location_aid) if location_aid else None
        if site is not None:
            return site[1], site[0]
        default = self.defaults.site_name
        if client_id is None:
            if default is None:
                reason = (f"client {client_aid} was not imported (import clients first, or "
                          "set automate.import.default_site)" if client_aid
                          else "it has no client or location and no default_site is set")
                report.skip(ident, reason)
                return None
            holding = self.defaults.holding_client()
            self.defaulted[report.kind] += 1
            return holding, self.defaults.site_for(holding)
        if location_aid is not None or default is not None:
            if default is None:
                report.skip(ident, f"location {location_aid} was not imported and no "
                                   "default_site is set")
                return None
            self.defaulted[report.kind] += 1
            return client_id, self.defaults.site_for(client_id)
        return client_id, None

    def note_defaults(self, report: KindReport) -> None:
        """Say in ``report`` how many records went to a default site."""
        count = self.defaulted.get(report.kind, 0)
        if count:
            report.note(f"{count} placed at the default site {self.defaults.site_name!r} "
                        "(their own site or client was not imported)")


@dataclass
class _Planned:
    """An asset row being built, with what is needed to redo its fields on adoption."""

    row: dict[str, Any]
    plan: FieldPlan | None
    values: Mapping[str, Scalar]
    book: dict[str, Any] | None = None


class _Host(NamedTuple):
    """A computer whose printers may be fetched: id, inventory date, planned row (None when
    it was settled as unchanged at once), client and site."""

    id: str
    inventory: str | None
    item: _Planned | None
    client_id: int | None
    site_id: int | None


class Importer:
    """Runs one import; build one per run."""

    def __init__(
        self,
        runtime: Runtime,
        client: AutomateClient,
        *,
        progress: Progress | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        if runtime.settings.automate is None:
            raise AutomateMisconfigured("automate is not configured in alertd.yaml",
                                        aspect="config")
        self.runtime = runtime
        self.client = client
        self.settings = runtime.settings.automate.import_
        self.progress: Progress = progress or NullProgress()
        self._should_stop = should_stop or (lambda: False)
        self._dialect = runtime.engine.dialect.name
        self._adopting = self.settings.match_on != "automate_id"

    # -- entry point ----------------------------------------------------------------

    async def run(self, what: What, *, dry_run: bool = False,
                  kinds: Sequence[AutomateKind] | None = None) -> ImportReport:
        """Import ``what``; Automate outages end the run with a report saying so.

        Raises AutomateMisconfigured (refused kinds, URL, credentials, ClientId)
        and StorageUnavailable; AutomateRejected ends only the kind it hit.
        """
        asset_kinds: tuple[AutomateKind, ...] = ()
        if what == "assets" or (what == "all" and self.settings.asset_types):
            asset_kinds = refuse_unmapped(self.settings, kinds)
        report = ImportReport(dry_run=dry_run)
        loop = asyncio.get_running_loop()
        started, requests = loop.time(), self.client.requests
        log.info("automate.import.started", what=what, dry_run=dry_run,
                 kinds=",".join(asset_kinds))
        try:
            if what in ("clients", "all"):
                await self._guarded(report, "clients", self._clients(report, dry_run))
            if what in ("users", "all"):
                await self._guarded(report, "users", self._users(report, dry_run))
            if asset_kinds:
                await self._guarded(report, asset_kinds[0],
                                    self._assets(report, dry_run, asset_kinds))
            elif what == "all":
                report.kind("assets").note("no asset type is mapped: assets are not imported")
        except AutomateUnavailable as error:
            report.error = f"Automate unavailable: {error}"
            report.unavailable = True
        except ImportStopped:
            report.error = "stopped before the end: the daemon is stopping"
        if not dry_run and report.kinds:
            async with self._write() as session:
                report.linked_tickets = await self.runtime.tickets.link_unmatched(
                    session, self.runtime.resolver)
        report.seconds = loop.time() - started
        report.requests = self.client.requests - requests
        log.info("automate.import.finished", **report.summary())
        return report

    async def _guarded(self, report: ImportReport, kind: str, work: Any) -> None:
        try:
            await work
        except AutomateRejected as error:
            report.kind(kind).error = str(error)
            log.warning("automate.import.refused", kind=kind, error=str(error))
        except AutomateUnavailable as error:
            if not any(k.error for k in report.kinds):
                report.kind(kind).error = str(error)
            raise

    def _check_stop(self) -> None:
        if self._should_stop():
            raise ImportStopped

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncSession]:
        async with storage_errors(), self.runtime.sessions() as session:
            yield session

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncSession]:
        async with storage_errors(), self.runtime.sessions.begin() as session:
            yield session

    async def _collect(self, pages: AsyncIterator[list[T | Bad]], report: KindReport,
                       task: str) -> list[T]:
        out: list[T] = []
        self.progress.begin(task)
        async for page in pages:
            self._check_stop()
            for item in page:
                if isinstance(item, Bad):
                    report.fail(item.id, item.reason)
                else:
                    out.append(item)
            self.progress.advance(task, len(page))
        self.progress.end(task)
        return out

    # -- clients and sites ----------------------------------------------------------

    async def _clients(self, report: ImportReport, dry_run: bool) -> None:
        clients_report, sites_report = report.kind("clients"), report.kind("sites")
        clients = await self._collect(self.client.clients(), clients_report, "clients")
        locations = await self._collect(self.client.locations(), sites_report, "sites")
        top_level = self.settings.top_level
        async with self._read() as session:
            existing = {
                row.automate_id: row for row in (await session.execute(
                    select(CLIENTS.c.id, CLIENTS.c.automate_id, CLIENTS.c.name,
                           CLIENTS.c.top_level).where(CLIENTS.c.automate_id.is_not(None))
                )).all()
            }
        rows: list[dict[str, Any]] = []
        for record in _unique(clients, clients_report, lambda c: c.id):
            old = existing.get(record.id)
            level = top_level if top_level is not None else (old.top_level if old else None)
            row = {"automate_id": record.id, "name": record.name,
                   "name_key": name_key(record.name), "top_level": level}
            if old is None:
                clients_report.created += 1
                rows.append(row)
            elif (old.name, old.top_level) == (record.name, level):
                clients_report.unchanged += 1
            else:
                clients_report.updated += 1
                rows.append(row)
        if top_level is not None:
            clients_report.note(f"clients are placed under the top level {top_level!r}")
        if not dry_run:
            await self._upsert(CLIENTS, ["automate_id"], rows)
        client_ids = await self._client_ids()
        if dry_run:
            for placeholder, row in enumerate(rows, start=1):
                client_ids.setdefault(row["automate_id"], -placeholder)
        async with self._read() as session:
            old_sites = {
                row.automate_id: row for row in (await session.execute(
                    select(SITES.c.id, SITES.c.automate_id, SITES.c.client_id, SITES.c.name)
                    .where(SITES.c.automate_id.is_not(None))
                )).all()
            }
        site_rows: list[dict[str, Any]] = []
        for location in _unique(locations, sites_report, lambda loc: loc.id):
            owner = client_ids.get(location.client_id or "")
            if owner is None:
                sites_report.skip(location.id, f"its client {location.client_id} was not "
                                               "imported")
                continue
            row = {"automate_id": location.id, "client_id": owner, "name": location.name,
                   "name_key": name_key(location.name)}
            old_site = old_sites.get(location.id)
            if old_site is None:
                sites_report.created += 1
                site_rows.append(row)
            elif (old_site.client_id, old_site.name) == (owner, location.name):
                sites_report.unchanged += 1
            else:
                sites_report.updated += 1
                site_rows.append(row)
        if not dry_run:
            await self._upsert(SITES, ["automate_id"], site_rows)

    # -- users ----------------------------------------------------------------------

    async def _users(self, report: ImportReport, dry_run: bool) -> None:
        users_report = report.kind("users")
        contacts = await self._collect(self.client.contacts(), users_report, "users")
        placement = await self._placement()
        async with self._read() as session:
            existing = {
                row.automate_id: row for row in (await session.execute(
                    select(USERS.c.id, USERS.c.automate_id, USERS.c.name, USERS.c.email,
                           USERS.c.client_id, USERS.c.site_id)
                    .where(USERS.c.automate_id.is_not(None))
                )).all()
            }
        rows: list[dict[str, Any]] = []
        for contact in _unique(contacts, users_report, lambda c: c.id):
            placed = placement.place(contact.client_id, contact.location_id, users_report,
                                     contact.id)
            if placed is None:
                continue
            client_id, site_id = placed
            rows.append({"automate_id": contact.id, "name": contact.name,
                         "email": contact.email, "client_id": client_id, "site_id": site_id})
        ids = await self._materialise(placement.defaults, dry_run)
        changed: list[dict[str, Any]] = []
        for row in rows:
            row["client_id"] = ids.get(row["client_id"], row["client_id"])
            row["site_id"] = ids.get(row["site_id"], row["site_id"])
            old = existing.get(row["automate_id"])
            if old is None:
                users_report.created += 1
                changed.append(row)
            elif (old.name, old.email, old.client_id, old.site_id) == (
                row["name"], row["email"], row["client_id"], row["site_id"]
            ):
                users_report.unchanged += 1
            else:
                users_report.updated += 1
                changed.append(row)
        placement.note_defaults(users_report)
        if not dry_run:
            await self._upsert(USERS, ["automate_id"], changed)

    # -- placement helpers ----------------------------------------------------------

    async def _client_ids(self) -> dict[str, int]:
        async with self._read() as session:
            rows = await session.execute(select(CLIENTS.c.automate_id, CLIENTS.c.id)
                                         .where(CLIENTS.c.automate_id.is_not(None)))
            return dict(rows.all())

    async def _placement(self) -> _Placement:
        async with self._read() as session:
            clients = dict((await session.execute(
                select(CLIENTS.c.automate_id, CLIENTS.c.id)
                .where(CLIENTS.c.automate_id.is_not(None)))).all())
            sites: dict[str, tuple[int, int]] = {}
            by_name: dict[tuple[int, str], int] = {}
            for site_id, automate_id, client_id, key in (await session.execute(
                select(SITES.c.id, SITES.c.automate_id, SITES.c.client_id, SITES.c.name_key)
                .order_by(SITES.c.id)
            )).all():
                if automate_id is not None:
                    sites[automate_id] = (site_id, client_id)
                else:
                    by_name.setdefault((client_id, key), site_id)
            holding = (await session.execute(
                select(CLIENTS.c.id).where(CLIENTS.c.automate_id.is_(None),
                                           CLIENTS.c.name_key == name_key(
                                               self.settings.default_client))
                .order_by(CLIENTS.c.id).limit(1)
            )).scalar_one_or_none()
        defaults = _Defaults(site_name=self.settings.default_site,
                             client_name=self.settings.default_client, sites=by_name,
                             holding=holding)
        return _Placement(clients=clients, sites=sites, defaults=defaults)

    async def _materialise(self, defaults: _Defaults, dry_run: bool) -> dict[int | None, int]:
        """Create the default sites (and holding client) handed out; placeholder -> real id."""
        ids = defaults.resolved
        if dry_run or (defaults.wanted_holding is None and not defaults.wanted_sites):
            return ids
        now = self.runtime.clock.now()
        async with self._write() as session:
            if defaults.wanted_holding is not None:
                name = defaults.client_name
                created = (await session.execute(
                    CLIENTS.insert().values(name=name, name_key=name_key(name),
                                            created_at=now, updated_at=now)
                    .returning(CLIENTS.c.id))).scalar_one()
                ids[defaults.wanted_holding] = created
                defaults.holding = created
                defaults.wanted_holding = None
                log.info("automate.import.default_client_created", name=name)
            for placeholder, (client_id, key) in defaults.wanted_sites.items():
                owner = ids.get(client_id, client_id)
                name = defaults.site_name or ""
                created = (await session.execute(
                    SITES.insert().values(client_id=owner, name=name, name_key=name_key(name),
                                          created_at=now, updated_at=now)
                    .returning(SITES.c.id))).scalar_one()
                ids[placeholder] = created
                defaults.sites[(owner, key)] = created
                defaults.sites.pop((client_id, key), None) if client_id != owner else None
                log.info("automate.import.default_site_created", site=name, client_id=owner)
            defaults.wanted_sites.clear()
        return ids

    # -- assets ---------------------------------------------------------------------

    async def _assets(self, report: ImportReport, dry_run: bool,
                      kinds: tuple[AutomateKind, ...]) -> None:
        settings = self.settings
        placement = await self._placement()
        automate_kinds = sorted({AUTOMATE_KIND[kind] for kind in kinds})
        async with self._read() as session:
            existing = await _existing_assets(session, automate_kinds)
            custom_mapped = any(m.to.custom_field for m in settings.fields)
            custom_names = (existing_custom_names(await _all_fields(session))
                            if custom_mapped else {})
            unlinked = (await _unlinked(session, settings.match_on)
                        if settings.match_on != "automate_id" else {})
        planned: dict[AutomateKind, list[_Planned]] = {}
        plans: dict[AutomateKind, FieldPlan] = {}
        for kind in kinds:
            extra = ("Guid", "ManufacturerName", "Model") if kind == "routers" else ()
            plans[kind], notes = plan_fields(kind, settings, custom_names, extra)
            for note in notes:
                report.kind(kind).note(note)
        adopted: set[int] = set()

        async def settle(kind: AutomateKind, items: list[_Planned]) -> None:
            ids = await self._materialise(placement.defaults, dry_run)
            await self._settle(items, ids, existing, unlinked, adopted, report.kind(kind),
                               dry_run)
            placement.note_defaults(report.kind(kind))

        computers: list[_Host] = []
        for kind in (k for k in kinds if k in COMPUTER_KINDS):
            try:
                computers.extend(await self._computers(kind, plans[kind], placement, report,
                                                       existing, planned, "printers" in kinds))
            except AutomateRejected as error:
                report.kind(kind).error = str(error)
            except AutomateUnavailable as error:
                report.kind(kind).error = str(error)
                raise
        printer_error: AutomateUnavailable | None = None
        fetched: dict[str, list[Printer]] = {}
        if "printers" in kinds:
            fetched, printer_error = await self._fetch_printers(
                computers, plans["printers"], existing, report.kind("printers"))
        for kind in (k for k in kinds if k in COMPUTER_KINDS):
            await settle(kind, planned.get(kind, []))
        if "printers" in kinds:
            parents = await self._computer_ids(dry_run, computers)
            await settle("printers", self._printer_rows(
                computers, fetched, parents, plans["printers"], existing,
                report.kind("printers")))
            if printer_error is not None:
                report.kind("printers").error = str(printer_error)
                raise printer_error
        for kind, fetch in (("routers", self._routers), ("network_devices",
                                                         self._network_devices)):
            if kind not in kinds:
                continue
            try:
                await fetch(plans[kind], placement, report, planned)
            except AutomateRejected as error:
                report.kind(kind).error = str(error)
                continue
            except AutomateUnavailable as error:
                report.kind(kind).error = str(error)
                raise
            await settle(kind, planned.get(kind, []))

    async def _computers(
        self, kind: AutomateKind, plan: FieldPlan, placement: _Placement, report: ImportReport,
        existing: dict[tuple[str, str], Existing], planned: dict[AutomateKind, list[_Planned]],
        with_printers: bool,
    ) -> list[_Host]:
        """Plan the computers of one kind, page by page (records are dropped once read).

        A computer that is certainly unchanged (same row, site already known, no
        printers to fetch) is counted at once and kept only as a small `_Host`.
        """
        kind_report = report.kind(kind)
        local_type = self.settings.asset_types[kind]
        wanted = tuple(dict.fromkeys([*plan.wanted, "ComputerName", "SerialNumber"]))
        tag_source = TAG_SOURCE[kind]
        out: list[_Host] = []
        seen: set[str] = set()
        self.progress.begin(kind)
        async for page in self.client.computers(COMPUTER_TYPE[kind], wanted):
            self._check_stop()
            self.progress.advance(kind, len(page))
            for computer in page:
                if isinstance(computer, Bad):
                    kind_report.fail(computer.id, computer.reason)
                    continue
                if computer.id in seen:
                    kind_report.skip(computer.id, "duplicate Id in Automate's answer")
                    continue
                seen.add(computer.id)
                if computer.type is not None and computer.type != COMPUTER_TYPE[kind]:
                    kind_report.skip(computer.id, f"its Type is {computer.type}")
                    continue
                placed = placement.place(computer.client_id, computer.location_id,
                                         kind_report, computer.id)
                if placed is None:
                    continue
                old = existing.get(("computer", computer.id))
                values = computer.values
                row = asset_row(
                    automate_kind="computer", automate_id=computer.id,
                    name=column_value(plan, "name", values) or f"computer {computer.id}",
                    kind=local_type,
                    asset_tag=str(values[tag_source]) if tag_source in values else None,
                    serial=column_value(plan, "serial", values), client_id=placed[0],
                    site_id=placed[1], parent_id=None,
                    fields=merge_fields(old.fields if old else None, plan, values),
                )
                settled = (
                    old is not None and (placed[0] or 0) >= 0 and (placed[1] or 0) >= 0
                    and not (with_printers and self._printers_due(computer.id,
                                                                  computer.inventory, old))
                    and same_asset(old, row)
                )
                if settled:
                    kind_report.unchanged += 1
                    out.append(_Host(computer.id, computer.inventory, None, placed[0],
                                     placed[1]))
                    continue
                item = _Planned(row=row, plan=plan, values=values if self._adopting else {})
                planned.setdefault(kind, []).append(item)
                out.append(_Host(computer.id, computer.inventory, item, placed[0], placed[1]))
        self.progress.end(kind)
        return out

    def _printers_due(self, computer_id: str, inventory: str | None,
                      old: Existing | None) -> bool:
        """Whether this computer's printers must be asked for (its inventory moved)."""
        if self.settings.printers_refresh == "always" or old is None or inventory is None:
            return True
        return (old.fields.get(BOOKKEEPING) or {}).get(BOOK_PRINTERS) != inventory

    async def _fetch_printers(
        self, computers: list[_Host], plan: FieldPlan,
        existing: dict[tuple[str, str], Existing], report: KindReport,
    ) -> tuple[dict[str, list[Printer]], AutomateUnavailable | None]:
        """Printers of every computer whose inventory moved (or all, with `always`)."""
        due: deque[_Host] = deque(
            computer for computer in computers
            if computer.item is not None and self._printers_due(
                computer.id, computer.inventory, existing.get(("computer", computer.id))))
        fetched: dict[str, list[Printer]] = {}
        failure: list[AutomateUnavailable] = []
        self.progress.begin("printers", len(due))

        async def worker() -> None:
            while due and not failure:
                if self._should_stop():
                    return
                computer = due.popleft()
                item = computer.item
                assert item is not None
                try:
                    found = await self.client.printers(computer.id, plan.wanted)
                except AutomateRejected as error:
                    report.fail(f"computer {computer.id}", f"printers not read: {error}")
                    continue
                except AutomateUnavailable as error:
                    failure.append(error)
                    return
                finally:
                    self.progress.advance("printers")
                good: list[Printer] = []
                for printer in found:
                    if isinstance(printer, Bad):
                        report.fail(f"{computer.id}:{printer.id}", printer.reason)
                    else:
                        good.append(printer)
                fetched[computer.id] = good
                if computer.inventory is not None:
                    item.book = {BOOK_PRINTERS: computer.inventory}
                    fields = item.row["fields"]
                    fields[BOOKKEEPING] = {**(fields.get(BOOKKEEPING) or {}), **item.book}

        workers = max(1, self.client.settings.max_concurrency)
        await asyncio.gather(*(worker() for _ in range(workers)))
        self.progress.end("printers")
        self._check_stop()
        return fetched, (failure[0] if failure else None)

    def _printer_rows(
        self, computers: list[_Host], fetched: dict[str, list[Printer]],
        parents: dict[str, int], plan: FieldPlan, existing: dict[tuple[str, str], Existing],
        report: KindReport,
    ) -> list[_Planned]:
        local_type = self.settings.asset_types["printers"]
        kept_by_parent: dict[str, list[tuple[str, Existing]]] = {}
        for (automate_kind, automate_id), old in existing.items():
            if automate_kind == "printer":
                kept_by_parent.setdefault(automate_id.split(":", 1)[0], []).append(
                    (automate_id, old))
        out: list[_Planned] = []
        for computer in computers:
            parent = parents.get(computer.id)
            if parent is None:
                continue
            if computer.item is not None:
                client_id, site_id = computer.item.row["client_id"], computer.item.row["site_id"]
            else:
                client_id, site_id = computer.client_id, computer.site_id
            if computer.id not in fetched:
                for automate_id, old in kept_by_parent.get(computer.id, []):
                    out.append(_Planned(row=asset_row(
                        automate_kind="printer", automate_id=automate_id, name=old.name,
                        kind=local_type, asset_tag=old.asset_tag, serial=old.serial,
                        client_id=client_id, site_id=site_id, parent_id=parent,
                        fields=old.fields), plan=None, values={}))
                continue
            seen: set[str] = set()
            for printer in fetched[computer.id]:
                if printer.key in seen:
                    report.skip(printer.key, "duplicate Id in Automate's answer")
                    continue
                seen.add(printer.key)
                known = existing.get(("printer", printer.key))
                out.append(_Planned(row=asset_row(
                    automate_kind="printer", automate_id=printer.key,
                    name=column_value(plan, "name", printer.values) or f"printer {printer.key}",
                    kind=local_type, asset_tag=None,
                    serial=column_value(plan, "serial", printer.values),
                    client_id=client_id, site_id=site_id, parent_id=parent,
                    fields=merge_fields(known.fields if known else None, plan, printer.values),
                ), plan=plan, values=printer.values))
        return out

    async def _routers(self, plan: FieldPlan, placement: _Placement, report: ImportReport,
                       planned: dict[AutomateKind, list[_Planned]]) -> None:
        kind_report = report.kind("routers")
        local_type = self.settings.asset_types["routers"]
        locations = await self._collect(self.client.locations(), KindReport("locations"),
                                        "locations")
        where: dict[str, tuple[str | None, str, str]] = {}
        for location in locations:
            if location.router_id is not None:
                where.setdefault(location.router_id, (location.client_id, location.id,
                                                      location.name))
        routers = await self._collect(self.client.routers(plan.wanted), kind_report, "routers")
        for router in _unique(routers, kind_report, lambda r: r.id):
            client_aid, location_aid, location_name = where.get(router.id, (None, None, ""))
            placed = placement.place(client_aid, location_aid, kind_report, router.id)
            if placed is None:
                continue
            label = " ".join(str(router.values[k]) for k in ("ManufacturerName", "Model")
                             if k in router.values) or "Router"
            name = column_value(plan, "name", router.values) or (
                f"{label} ({location_name})" if location_name else label)
            planned.setdefault("routers", []).append(_Planned(row=asset_row(
                automate_kind="router", automate_id=router.id, name=name, kind=local_type,
                asset_tag=router.guid, serial=column_value(plan, "serial", router.values),
                client_id=placed[0], site_id=placed[1], parent_id=None,
                fields=merge_fields(None, plan, router.values),
            ), plan=plan, values=router.values))

    async def _network_devices(self, plan: FieldPlan, placement: _Placement,
                               report: ImportReport,
                               planned: dict[AutomateKind, list[_Planned]]) -> None:
        kind_report = report.kind("network_devices")
        local_type = self.settings.asset_types["network_devices"]
        devices = await self._collect(self.client.network_devices(plan.wanted), kind_report,
                                      "network_devices")
        for device in _unique(devices, kind_report, lambda d: d.id):
            placed = placement.place(device.client_id, device.location_id, kind_report,
                                     device.id)
            if placed is None:
                continue
            planned.setdefault("network_devices", []).append(_Planned(row=asset_row(
                automate_kind="network_device", automate_id=device.id,
                name=column_value(plan, "name", device.values) or f"device {device.id}",
                kind=local_type, asset_tag=None,
                serial=column_value(plan, "serial", device.values), client_id=placed[0],
                site_id=placed[1], parent_id=None,
                fields=merge_fields(None, plan, device.values),
            ), plan=plan, values=device.values))

    async def _computer_ids(self, dry_run: bool, computers: list[_Host]
                            ) -> dict[str, int]:
        async with self._read() as session:
            rows = await session.execute(select(ASSETS.c.automate_id, ASSETS.c.id)
                                         .where(ASSETS.c.automate_kind == "computer"))
            ids = dict(rows.all())
        if dry_run:
            for n, computer in enumerate(computers, start=1):
                ids.setdefault(computer.id, -n)
        return ids

    async def _settle(
        self, items: list[_Planned], ids: Mapping[int | None, int],
        existing: dict[tuple[str, str], Existing], unlinked: dict[str, list[Existing]],
        adopted: set[int], report: KindReport, dry_run: bool,
    ) -> None:
        """Compare each planned row with the database, adopt by the matching field, write."""
        match_on = self.settings.match_on
        writes: list[dict[str, Any]] = []
        adoptions: list[dict[str, Any]] = []
        adopted_here = 0
        seen: set[str] = set()
        for item in items:
            row = item.row
            if row["automate_id"] in seen:
                report.skip(row["automate_id"], "duplicate Id in Automate's answer")
                continue
            seen.add(row["automate_id"])
            row["client_id"] = ids.get(row["client_id"], row["client_id"])
            row["site_id"] = ids.get(row["site_id"], row["site_id"])
            old = existing.get((row["automate_kind"], row["automate_id"]))
            if old is not None:
                if same_asset(old, row):
                    report.unchanged += 1
                else:
                    report.updated += 1
                    writes.append(row)
                continue
            value = match_value(row, match_on) if match_on != "automate_id" else None
            candidates = [c for c in unlinked.get(value or "", []) if c.id not in adopted]
            if len(candidates) > 1:
                report.fail(row["automate_id"], f"{len(candidates)} existing assets have "
                            f"{match_on} {value!r}: cannot tell which one to adopt")
                continue
            if candidates:
                target = candidates[0]
                adopted.add(target.id)
                if item.plan is not None:
                    row["fields"] = merge_fields(target.fields, item.plan, item.values,
                                                 item.book)
                adoptions.append({**row, "b_id": target.id})
                report.updated += 1
                adopted_here += 1
                continue
            report.created += 1
            writes.append(row)
        if adopted_here:
            report.note(f"{adopted_here} existing assets adopted by {match_on}")
        if dry_run:
            return
        await self._upsert(ASSETS, ["automate_kind", "automate_id"], writes)
        if adoptions:
            now = self.runtime.clock.now()
            statement = ASSETS.update().where(ASSETS.c.id == bindparam("b_id"))
            for chunk in _chunks(adoptions, WRITE_CHUNK):
                async with self._write() as session:
                    await session.execute(statement, [{**r, "updated_at": now} for r in chunk])

    async def _upsert(self, table: Table, conflict: list[str], rows: list[dict[str, Any]]
                      ) -> None:
        """Insert or update ``rows`` in chunks, one Core statement per chunk."""
        if not rows:
            return
        now = self.runtime.clock.now()
        insert = pg_insert if self._dialect == "postgresql" else sqlite_insert
        statement = insert(table)
        columns = [c for c in rows[0] if c not in conflict]
        statement = statement.on_conflict_do_update(
            index_elements=conflict,
            set_={**{c: statement.excluded[c] for c in columns},
                  "updated_at": statement.excluded.updated_at},
        )
        for chunk in _chunks(rows, WRITE_CHUNK):
            self._check_stop()
            async with self._write() as session:
                await session.execute(
                    statement, [{**r, "created_at": now, "updated_at": now} for r in chunk])


async def _existing_assets(session: AsyncSession, automate_kinds: Sequence[str]
                           ) -> dict[tuple[str, str], Existing]:
    result = await session.stream(
        select(ASSETS.c.automate_kind, ASSETS.c.automate_id, ASSETS.c.id,
               *(ASSETS.c[name] for name in ASSET_COLUMNS))
        .where(ASSETS.c.automate_kind.in_(automate_kinds), ASSETS.c.automate_id.is_not(None))
    )
    out: dict[tuple[str, str], Existing] = {}
    async for partition in result.partitions(5000):
        for row in partition:
            out[(row[0], row[1])] = _existing(row[2:])
    return out


async def _all_fields(session: AsyncSession) -> list[dict[str, Any]]:
    result = await session.stream(select(ASSETS.c.fields))
    out: list[dict[str, Any]] = []
    async for partition in result.partitions(5000):
        out.extend(row[0] for row in partition if row[0] and "custom" in row[0])
    return out


async def _unlinked(session: AsyncSession, match_on: str) -> dict[str, list[Existing]]:
    """Assets without an Automate id, by the normalised value of the matching field."""
    rows = await session.execute(
        select(ASSETS.c.id, *(ASSETS.c[name] for name in ASSET_COLUMNS))
        .where(ASSETS.c.automate_id.is_(None)).order_by(ASSETS.c.id)
    )
    out: dict[str, list[Existing]] = {}
    for row in rows.all():
        existing = _existing(row)
        value = existing_match_value(existing, match_on)
        if value:
            out.setdefault(value, []).append(existing)
    return out


def _existing(row: Sequence[Any]) -> Existing:
    """An Existing from (id, *ASSET_COLUMNS)."""
    return Existing(id=row[0], name=row[1], kind=row[2], asset_tag=row[3], serial=row[4],
                    client_id=row[5], site_id=row[6], parent_id=row[7], fields=row[8] or {})


def _unique(items: Iterable[T], report: KindReport, key: Callable[[T], str]) -> list[T]:
    seen: Counter[str] = Counter()
    out: list[T] = []
    for item in items:
        ident = key(item)
        seen[ident] += 1
        if seen[ident] > 1:
            report.skip(ident, "duplicate Id in Automate's answer")
            continue
        out.append(item)
    return out


def _chunks(rows: list[dict[str, Any]], size: int) -> Iterable[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]

