"""`/assets`: list and show the assets alerts are matched against, with their links (R6.7)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from alertd.assets.names import name_key
from alertd.db.tables import Asset, Client, Site
from alertd.errors import NotFound
from alertd.tickets.links import Links, LinkTarget
from alertd.web.auth import require_token
from alertd.web.common import Api, IdPath, Limit, Model, Offset, error_responses, text_query
from alertd.web.tickets import LinkOut


class AssetSummary(Model):
    """An asset as listed."""

    id: int
    name: str
    kind: str
    automate_kind: str | None
    automate_id: str | None
    asset_tag: str | None
    serial: str | None
    client: str | None
    site: str | None
    parent_id: int | None


class ParentAsset(Model):
    """The asset another hangs under (a printer's computer)."""

    id: int
    name: str
    kind: str


class AssetDetail(AssetSummary):
    """An asset in full: fields, parent and links."""

    client_id: int | None
    site_id: int | None
    fields: dict[str, Any]
    parent: ParentAsset | None
    created_at: datetime
    updated_at: datetime
    links: list[LinkOut]


def _query() -> Select[Asset, str | None, str | None]:
    site = aliased(Site)
    return (
        select(Asset, Client.name, site.name)
        .outerjoin(Client, Client.id == Asset.client_id)
        .outerjoin(site, site.id == Asset.site_id)
    )


def _summary(asset: Asset, client: str | None, site: str | None) -> dict[str, Any]:
    return {
        "id": asset.id, "name": asset.name, "kind": asset.kind,
        "automate_kind": asset.automate_kind, "automate_id": asset.automate_id,
        "asset_tag": asset.asset_tag, "serial": asset.serial, "client": client, "site": site,
        "parent_id": asset.parent_id,
    }


async def list_assets(
    session: AsyncSession, *, client: str | None = None, kind: str | None = None,
    name: str | None = None, limit: int = 100, offset: int = 0,
) -> list[dict[str, Any]]:
    """Assets in id order; ``client`` by name (case and spacing ignored), ``name`` a substring."""
    query = _query().order_by(Asset.id)
    if client is not None:
        query = query.where(Client.name_key == name_key(client))
    if kind is not None:
        query = query.where(Asset.kind == kind)
    if name:
        query = query.where(Asset.name.icontains(name, autoescape=True))
    rows = (await session.execute(query.offset(offset).limit(limit))).all()
    return [_summary(*row) for row in rows]


async def show_asset(session: AsyncSession, asset_id: int, links: Links) -> dict[str, Any]:
    """One asset with its fields, parent and links."""
    row = (await session.execute(_query().where(Asset.id == asset_id))).first()
    if row is None:
        raise NotFound(f"no asset {asset_id}")
    asset, client, site = row
    parent = None
    if asset.parent_id is not None:
        found = (await session.execute(
            select(Asset.id, Asset.name, Asset.kind).where(Asset.id == asset.parent_id)
        )).first()
        parent = None if found is None else {"id": found[0], "name": found[1], "kind": found[2]}
    target = LinkTarget(asset_id=asset.id, asset_name=asset.name,
                        automate_kind=asset.automate_kind, automate_id=asset.automate_id,
                        client=client, site=site)
    return {
        **_summary(asset, client, site),
        "client_id": asset.client_id, "site_id": asset.site_id,
        "fields": asset.fields or {}, "parent": parent,
        "created_at": asset.created_at, "updated_at": asset.updated_at,
        "links": [{"name": link.name, "url": link.url} for link in links.render(target)],
    }


def router(api: Api) -> APIRouter:
    """The asset routes, bound to the daemon's services."""
    routes = APIRouter(prefix="/assets", tags=["assets"],
                       dependencies=[Depends(require_token(api.token))],
                       responses=error_responses(401, 503))

    @routes.get("", response_model=list[AssetSummary])
    async def assets(
        client: Annotated[str | None, text_query("Only this client's (any case).")] = None,
        kind: Annotated[str | None, text_query("Only this asset type (e.g. Server).")] = None,
        name: Annotated[str | None, text_query("Text in the name (any case).")] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> list[dict[str, Any]]:
        """Assets in id order."""
        async with api.reading() as session:
            return await list_assets(session, client=client, kind=kind, name=name, limit=limit,
                                     offset=offset)

    @routes.get("/{asset_id}", response_model=AssetDetail, responses=error_responses(404))
    async def asset(asset_id: IdPath) -> dict[str, Any]:
        """One asset with its client and site, fields, parent and links."""
        async with api.reading() as session:
            return await show_asset(session, asset_id, api.links)

    return routes
