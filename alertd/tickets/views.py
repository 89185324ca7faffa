"""Tickets as users see them: the list and show shapes of the CLI and the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from alertd.db.tables import Asset, OutboxEntry, Ticket, TicketEvent
from alertd.errors import NotFound
from alertd.tickets.links import Links, LinkTarget

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
        "automate_ticket_id": ticket.automate_ticket_id,
        "first_seen": _iso(ticket.first_seen),
        "last_seen": _iso(ticket.last_seen),
    }


async def list_tickets(
    session: AsyncSession,
    *,
    status: str | None = None,
    client: str | None = None,
    asset_id: int | None = None,
    alert_type: str | None = None,
    text: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Tickets, newest first, narrowed by whichever filters are given.

    ``client`` compares names without case; ``text`` is a case-insensitive
    substring of the summary (`%` and `_` are plain characters).
    """
    query = (
        select(Ticket, Asset.id, Asset.name, Asset.automate_id)
        .outerjoin(Asset, Asset.id == Ticket.asset_id)
        .order_by(Ticket.id.desc())
    )
    if status is not None:
        query = query.where(Ticket.status == status)
    if client is not None:
        query = query.where(func.lower(Ticket.client_name) == func.lower(client))
    if asset_id is not None:
        query = query.where(Ticket.asset_id == asset_id)
    if alert_type is not None:
        query = query.where(Ticket.alert_type == alert_type)
    if text:
        query = query.where(Ticket.summary.icontains(text, autoescape=True))
    if offset:
        query = query.offset(offset)
    if limit is not None:
        query = query.limit(limit)
    rows = (await session.execute(query)).all()
    return [
        _ticket_dict(ticket, None if asset_id is None else (asset_id, name, automate_id))
        for ticket, asset_id, name, automate_id in rows
    ]


async def show_ticket(
    session: AsyncSession, ticket_id: int, *, links: Links | None = None
) -> dict[str, Any]:
    """One ticket with its details, fields, history, Automate actions and ``links``."""
    row = (await session.execute(
        select(Ticket, Asset.id, Asset.name, Asset.automate_id, Asset.automate_kind)
        .outerjoin(Asset, Asset.id == Ticket.asset_id)
        .where(Ticket.id == ticket_id)
    )).first()
    if row is None:
        raise NotFound(f"no ticket {ticket_id}")
    ticket, asset_id, name, automate_id, automate_kind = row
    out = _ticket_dict(ticket, None if asset_id is None else (asset_id, name, automate_id))
    events = (await session.execute(
        select(TicketEvent).where(TicketEvent.ticket_id == ticket_id)
        .order_by(TicketEvent.id)
    )).scalars().all()
    outbox = (await session.execute(
        select(OutboxEntry).where(OutboxEntry.ticket_id == ticket_id).order_by(OutboxEntry.id)
    )).scalars().all()
    target = LinkTarget(asset_id=asset_id, asset_name=name, automate_kind=automate_kind,
                        automate_id=automate_id, client=ticket.client_name,
                        site=ticket.site_name)
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
        "outbox": [
            {
                "id": entry.id,
                "action": entry.action,
                "label": entry.label,
                "state": entry.state,
                "attempts": entry.attempts,
                "last_error": entry.last_error,
                "outcome": entry.outcome,
                "created_at": _iso(entry.created_at),
                "finished_at": _iso(entry.finished_at),
            }
            for entry in outbox
        ],
        "links": [{"name": link.name, "url": link.url}
                  for link in (links.render(target) if links is not None else [])],
    })
    return out
