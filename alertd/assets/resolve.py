"""Finding the asset an alert names, in the order SPEC R4.1 gives.

1. the Automate computer id (`computer_id`);
2. the host name (short, case-insensitive) within the alert's client
   (`client_id` as Automate id, or `client` by name, or the sender's default);
3. the host name, when exactly one asset in all clients has it;
4. the serial number or asset tag (`serial`, `asset_tag`).

Whatever matched is recorded on the ticket. An alert that matches nothing
still gets an `AssetMatch`: unmatched, with a stable reference built from
what the mail said, so its dedup key holds until an import links it.

A batch of alerts is resolved with one query per kind of lookup, not one
per alert.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from alertd.assets.names import host_key, name_key, tag_key
from alertd.db.tables import Asset, Client, Site
from alertd.domain import AssetMatch, MatchedBy

COMPUTER_KIND = "computer"


@dataclass(frozen=True, slots=True)
class AssetQuery:
    """What one alert says about its asset."""

    fields: Mapping[str, str]
    default_client: str | None = None
    default_site: str | None = None

    def get(self, name: str) -> str:
        """A field's value, stripped ('' when absent)."""
        return (self.fields.get(name) or "").strip()


@dataclass(frozen=True, slots=True)
class _AssetRow:
    id: int
    name: str
    automate_id: str | None
    client_id: int | None
    client_name: str | None
    site_id: int | None
    site_name: str | None

    def match(self, matched_by: MatchedBy) -> AssetMatch:
        return AssetMatch(
            matched_by=matched_by, ref=asset_ref(self.id), asset_id=self.id,
            asset_name=self.name, automate_id=self.automate_id, client_id=self.client_id,
            client_name=self.client_name, site_id=self.site_id, site_name=self.site_name,
        )


def unmatched_ref(fields: Mapping[str, str], client: str | None) -> str:
    """A stable name for an asset the database does not know (yet)."""
    if computer_id := (fields.get("computer_id") or "").strip():
        return f"unmatched:computer:{computer_id}"
    if hostname := (fields.get("hostname") or "").strip():
        prefix = f"{name_key(client)}/" if client else ""
        return f"unmatched:host:{prefix}{hostname.lower()}"
    serial = tag_key(fields.get("serial") or fields.get("asset_tag"))
    if serial:
        return f"unmatched:serial:{serial}"
    return "unmatched"


def asset_ref(asset_id: int) -> str:
    """The dedup-key name of a known asset."""
    return f"asset:{asset_id}"


class AssetResolver:
    """Looks assets up in the database, read-only."""

    async def resolve(
        self,
        session: AsyncSession,
        fields: Mapping[str, str],
        *,
        default_client: str | None = None,
        default_site: str | None = None,
    ) -> AssetMatch:
        """The asset ``fields`` name, or an unmatched AssetMatch."""
        [found] = await self.resolve_many(
            session, [AssetQuery(fields, default_client, default_site)]
        )
        return found

    async def resolve_many(
        self, session: AsyncSession, queries: Sequence[AssetQuery]
    ) -> list[AssetMatch]:
        """Resolve every query, with one database round trip per kind of lookup.

        Computer ids are looked up first; the other lookups run only for the
        alerts that id did not settle.
        """
        index = _Index()
        await index.load_computers(session, queries)
        rest = [q for q in queries if q.get("computer_id") not in index.computers]
        if rest:
            await index.load(session, rest)
        return [index.resolve(query) for query in queries]


@dataclass
class _Index:
    computers: dict[str, _AssetRow] = field(default_factory=dict)
    hosts: dict[str, list[_AssetRow]] = field(default_factory=lambda: defaultdict(list))
    serials: dict[str, list[_AssetRow]] = field(default_factory=lambda: defaultdict(list))
    clients_by_id: dict[str, tuple[int, str]] = field(default_factory=dict)
    clients_by_name: dict[str, tuple[int, str]] = field(default_factory=dict)
    sites: dict[tuple[int, str], tuple[int, str]] = field(default_factory=dict)

    async def load_computers(self, session: AsyncSession, queries: Sequence[AssetQuery]) -> None:
        computer_ids = {q.get("computer_id") for q in queries} - {""}
        if computer_ids:
            for computer, _, _, _ in await _assets(
                session, Asset.automate_kind == COMPUTER_KIND, Asset.automate_id.in_(computer_ids)
            ):
                self.computers[str(computer.automate_id)] = computer

    async def load(self, session: AsyncSession, queries: Sequence[AssetQuery]) -> None:
        hosts = {host_key(q.get("hostname")) for q in queries if q.get("hostname")}
        serials = {tag_key(q.get("serial") or q.get("asset_tag")) for q in queries} - {None}
        client_ids = {q.get("client_id") for q in queries} - {""}
        client_names = {name_key(n) for q in queries
                        for n in (q.get("client"), q.default_client or "") if n.strip()}
        site_names = {name_key(n) for q in queries
                      for n in (q.get("site"), q.default_site or "") if n.strip()}

        if hosts:
            for host, key, _, _ in await _assets(session, Asset.name_key.in_(hosts)):
                self.hosts[key].append(host)
        if serials:
            for tagged, _, serial, tag in await _assets(
                session, or_(Asset.serial_key.in_(serials), Asset.tag_key.in_(serials))
            ):
                for value in {serial, tag} - {None}:
                    self.serials[str(value)].append(tagged)
        if client_ids or client_names:
            clients = await session.execute(
                select(Client.id, Client.name, Client.automate_id, Client.name_key)
                .where(or_(Client.automate_id.in_(client_ids), Client.name_key.in_(client_names)))
                .order_by(Client.id)
            )
            for client_id, name, automate_id, key in clients.all():
                if automate_id is not None:
                    self.clients_by_id.setdefault(automate_id, (client_id, name))
                self.clients_by_name.setdefault(key, (client_id, name))
        if site_names and self.clients_by_name:
            sites = await session.execute(
                select(Site.id, Site.name, Site.client_id, Site.name_key)
                .where(Site.name_key.in_(site_names)).order_by(Site.id)
            )
            for site_id, site_name, site_client, site_key in sites.all():
                self.sites.setdefault((site_client, site_key), (site_id, site_name))

    def resolve(self, query: AssetQuery) -> AssetMatch:
        client = self._client(query)
        computer_id = query.get("computer_id")
        if computer_id and computer_id in self.computers:
            return self.computers[computer_id].match("computer_id")
        hostname = query.get("hostname")
        if hostname:
            candidates = self.hosts.get(host_key(hostname), [])
            if client is not None:
                in_client = [row for row in candidates if row.client_id == client[0]]
                if len(in_client) == 1:
                    return in_client[0].match("hostname_in_client")
            if len(candidates) == 1:
                return candidates[0].match("hostname")
        serial = tag_key(query.get("serial") or query.get("asset_tag"))
        if serial:
            rows = {row.id: row for row in self.serials.get(serial, [])}
            if len(rows) == 1:
                return next(iter(rows.values())).match("serial")
        return self._unmatched(query, client)

    def _client(self, query: AssetQuery) -> tuple[int, str] | None:
        automate_id = query.get("client_id")
        if automate_id and automate_id in self.clients_by_id:
            return self.clients_by_id[automate_id]
        for name in (query.get("client"), query.default_client or ""):
            if name.strip() and name_key(name) in self.clients_by_name:
                return self.clients_by_name[name_key(name)]
        return None

    def _unmatched(self, query: AssetQuery, client: tuple[int, str] | None) -> AssetMatch:
        named_client = query.get("client") or query.default_client
        site_name = query.get("site") or query.default_site
        site_id = None
        if client is not None and site_name:
            found = self.sites.get((client[0], name_key(site_name)))
            if found is not None:
                site_id, site_name = found
        return AssetMatch(
            matched_by="unmatched",
            ref=unmatched_ref(query.fields, named_client),
            client_id=client[0] if client else None,
            client_name=client[1] if client else named_client,
            site_id=site_id,
            site_name=site_name,
        )


async def _assets(session: AsyncSession, *conditions: Any) -> list[tuple[_AssetRow, str, Any, Any]]:
    result = await session.execute(
        select(Asset.id, Asset.name, Asset.automate_id, Asset.client_id, Client.name,
               Asset.site_id, Site.name, Asset.name_key, Asset.serial_key, Asset.tag_key)
        .outerjoin(Client, Client.id == Asset.client_id)
        .outerjoin(Site, Site.id == Asset.site_id)
        .where(*conditions)
        .order_by(Asset.id)
    )
    return [(_AssetRow(*row[:7]), row[7], row[8], row[9]) for row in result.all()]
