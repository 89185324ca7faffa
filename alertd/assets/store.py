"""Writing and listing clients, sites and assets.

The Automate importer brings most of these; this module is the plain,
one-row-at-a-time path used by admin commands and tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from alertd.assets.names import host_key, name_key, tag_key
from alertd.db.tables import Asset, Client, Site


@dataclass(frozen=True, slots=True)
class AssetRow:
    """An asset as listed to users."""

    id: int
    name: str
    kind: str
    automate_id: str | None
    asset_tag: str | None
    serial: str | None
    client: str | None
    site: str | None
    parent_id: int | None

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of `alertd assets list --format json`."""
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "automate_id": self.automate_id,
            "asset_tag": self.asset_tag,
            "client": self.client,
            "site": self.site,
            "parent_id": self.parent_id,
        }


async def add_client(
    session: AsyncSession, name: str, *, automate_id: str | None = None, now: datetime
) -> int:
    """Create a client and return its id."""
    client = Client(name=name, name_key=name_key(name), automate_id=automate_id,
                    created_at=now, updated_at=now)
    session.add(client)
    await session.flush()
    return client.id


async def add_site(
    session: AsyncSession, client_id: int, name: str, *, automate_id: str | None = None,
    now: datetime,
) -> int:
    """Create a site of ``client_id`` and return its id."""
    site = Site(client_id=client_id, name=name, name_key=name_key(name),
                automate_id=automate_id, created_at=now, updated_at=now)
    session.add(site)
    await session.flush()
    return site.id


async def add_asset(
    session: AsyncSession,
    name: str,
    *,
    kind: str,
    now: datetime,
    automate_kind: str | None = None,
    automate_id: str | None = None,
    asset_tag: str | None = None,
    serial: str | None = None,
    client_id: int | None = None,
    site_id: int | None = None,
    parent_id: int | None = None,
    fields: dict[str, Any] | None = None,
) -> int:
    """Create an asset and return its id."""
    asset = Asset(
        name=name, name_key=host_key(name), kind=kind,
        automate_kind=automate_kind, automate_id=automate_id,
        asset_tag=asset_tag, tag_key=tag_key(asset_tag),
        serial=serial, serial_key=tag_key(serial),
        client_id=client_id, site_id=site_id, parent_id=parent_id,
        fields=fields or {}, created_at=now, updated_at=now,
    )
    session.add(asset)
    await session.flush()
    return asset.id


async def list_assets(session: AsyncSession, *, limit: int | None = None) -> list[AssetRow]:
    """Assets in id order, with their client and site names."""
    site = aliased(Site)
    query = (
        select(Asset.id, Asset.name, Asset.kind, Asset.automate_id, Asset.asset_tag,
               Asset.serial, Client.name, site.name, Asset.parent_id)
        .outerjoin(Client, Client.id == Asset.client_id)
        .outerjoin(site, site.id == Asset.site_id)
        .order_by(Asset.id)
    )
    if limit is not None:
        query = query.limit(limit)
    rows = (await session.execute(query)).all()
    return [AssetRow(*row) for row in rows]
