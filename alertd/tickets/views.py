"""Tickets as users see them: the list and show shapes of the CLI (and later the API)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from alertd.db.tables import Asset, Ticket, TicketEvent
from alertd.errors import NotFound

TICKET_STATUSES = ("open", "resolved", "closed")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _ticket_dict(ticket: Ticket, asset: tuple[int, str, str | None] | None) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "type": ticket.type,
        "status": ticket.status,
        "summary": ticket.summary,
        "priority": ticket.priority,
        "alert_type": ticket.alert_type,
        "dedup_key": ticket.dedup_key,
        "occurrences": ticket.occurrences,
        "asset": None if asset is None else
        {"id": asset[0], "name": asset[1], "automate_id": asset[2]},
        "client": ticket.client_name,
        "site": ticket.site_name,
        "matched_by": ticket.matched_by,
        "first_seen": _iso(ticket.first_seen),
        "last_seen": _iso(ticket.last_seen),
    }


async def list_tickets(
    session: AsyncSession, *, status: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """Tickets, newest first, optionally of one status."""
    query = (
        select(Ticket, Asset.id, Asset.name, Asset.automate_id)
        .outerjoin(Asset, Asset.id == Ticket.asset_id)
        .order_by(Ticket.id.desc())
    )
    if status is not None:
        query = query.where(Ticket.status == status)
    if limit is not None:
        query = query.limit(limit)
    rows = (await session.execute(query)).all()
    return [
        _ticket_dict(ticket, None if asset_id is None else (asset_id, name, automate_id))
        for ticket, asset_id, name, automate_id in rows
    ]


async def show_ticket(session: AsyncSession, ticket_id: int) -> dict[str, Any]:
    """One ticket with its details, fields and history."""
    row = (await session.execute(
        select(Ticket, Asset.id, Asset.name, Asset.automate_id)
        .outerjoin(Asset, Asset.id == Ticket.asset_id)
        .where(Ticket.id == ticket_id)
    )).first()
    if row is None:
        raise NotFound(f"no ticket {ticket_id}")
    ticket, asset_id, name, automate_id = row
    out = _ticket_dict(ticket, None if asset_id is None else (asset_id, name, automate_id))
    events = (await session.execute(
        select(TicketEvent).where(TicketEvent.ticket_id == ticket_id)
        .order_by(TicketEvent.id)
    )).scalars().all()
    out.update({
        "details": ticket.details,
        "team": ticket.team,
        "category": ticket.category,
        "sender_rule": ticket.sender_rule,
        "fields": ticket.fields,
        "resolved_at": _iso(ticket.resolved_at),
        "closed_at": _iso(ticket.closed_at),
        "resolution": ticket.resolution,
        "history": [
            {
                "at": _iso(event.at),
                "kind": event.kind,
                "actor": event.actor,
                "message_id": event.message_id,
                "detail": event.detail,
            }
            for event in events
        ],
    })
    return out
