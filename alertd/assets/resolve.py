"""Finding the asset an alert names, in the order SPEC R4.1 gives.

1. the Automate computer id (`computer_id`);
2. the host name (short, case-insensitive) within the alert's client
   (`client_id` as Automate id, or `client` by name, or the sender's default);
3. the host name, when exactly one asset in all clients has it;
4. the serial number or asset tag (`serial`, `asset_tag`).

Whatever matched is recorded on the ticket. An alert that matches nothing
still gets an `AssetMatch`: unmatched, with a stable reference built from
what the mail said, so its dedup key holds until an import links it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from alertd.assets.names import host_key, name_key, tag_key
from alertd.db.tables import Asset, Client, Site
from alertd.domain import AssetMatch, MatchedBy

COMPUTER_KIND = "computer"


def unmatched_ref(fields: Mapping[str, str], client: str | None) -> str:
    """A stable name for an asset the database does not know (yet)."""
    if computer_id := fields.get("computer_id"):
        return f"unmatched:computer:{computer_id.strip()}"
    if hostname := fields.get("hostname"):
        prefix = f"{name_key(client)}/" if client else ""
        return f"unmatched:host:{prefix}{hostname.strip().lower()}"
    serial = fields.get("serial") or fields.get("asset_tag")
    if serial:
        return f"unmatched:serial:{tag_key(serial)}"
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
        client = await self._client(session, fields, default_client)
        computer_id = (fields.get("computer_id") or "").strip()
        if computer_id:
            row = await self._one(session, _assets().where(
                Asset.automate_kind == COMPUTER_KIND, Asset.automate_id == computer_id))
            if row is not None:
                return _matched(row, "computer_id")
        hostname = (fields.get("hostname") or "").strip()
        if hostname:
            key = host_key(hostname)
            if client is not None:
                row = await self._one(session, _assets().where(
                    Asset.name_key == key, Asset.client_id == client[0]))
                if row is not None:
                    return _matched(row, "hostname_in_client")
            row = await self._one(session, _assets().where(Asset.name_key == key))
            if row is not None:
                return _matched(row, "hostname")
        serial = tag_key(fields.get("serial") or fields.get("asset_tag"))
        if serial:
            row = await self._one(session, _assets().where(
                or_(Asset.serial_key == serial, Asset.tag_key == serial)))
            if row is not None:
                return _matched(row, "serial")
        return await self._unmatched(session, fields, client, default_client, default_site)

    async def _client(
        self, session: AsyncSession, fields: Mapping[str, str], default: str | None
    ) -> tuple[int, str] | None:
        automate_id = (fields.get("client_id") or "").strip()
        if automate_id:
            found = (await session.execute(
                select(Client.id, Client.name).where(Client.automate_id == automate_id)
            )).first()
            if found is not None:
                return found[0], found[1]
        for name in (fields.get("client"), default):
            if name and name.strip():
                found = (await session.execute(
                    select(Client.id, Client.name)
                    .where(Client.name_key == name_key(name)).order_by(Client.id).limit(1)
                )).first()
                if found is not None:
                    return found[0], found[1]
        return None

    async def _unmatched(
        self,
        session: AsyncSession,
        fields: Mapping[str, str],
        client: tuple[int, str] | None,
        default_client: str | None,
        default_site: str | None,
    ) -> AssetMatch:
        client_name = client[1] if client else (fields.get("client") or default_client)
        site_name = fields.get("site") or default_site
        site_id = None
        if client is not None and site_name:
            found = (await session.execute(
                select(Site.id, Site.name).where(
                    Site.client_id == client[0], Site.name_key == name_key(site_name))
                .limit(1)
            )).first()
            if found is not None:
                site_id, site_name = found[0], found[1]
        return AssetMatch(
            matched_by="unmatched",
            ref=unmatched_ref(fields, fields.get("client") or default_client),
            client_id=client[0] if client else None,
            client_name=client_name,
            site_id=site_id,
            site_name=site_name,
        )

    @staticmethod
    async def _one(session: AsyncSession, query: Any) -> Any | None:
        """The row when exactly one asset qualifies (an ambiguous name matches nothing)."""
        rows = (await session.execute(query.limit(2))).all()
        return rows[0] if len(rows) == 1 else None


def _assets() -> Any:
    return (
        select(Asset.id, Asset.name, Asset.automate_id, Asset.client_id, Client.name,
               Asset.site_id, Site.name)
        .outerjoin(Client, Client.id == Asset.client_id)
        .outerjoin(Site, Site.id == Asset.site_id)
        .order_by(Asset.id)
    )


def _matched(row: Any, matched_by: MatchedBy) -> AssetMatch:
    asset_id, name, automate_id, client_id, client_name, site_id, site_name = row
    return AssetMatch(
        matched_by=matched_by,
        ref=asset_ref(asset_id),
        asset_id=asset_id,
        asset_name=name,
        automate_id=automate_id,
        client_id=client_id,
        client_name=client_name,
        site_id=site_id,
        site_name=site_name,
    )
