"""`/tickets`: list, show, resolve and close tickets over HTTP (R4.4, R6.7).

The shapes are those of `alertd tickets list|show --format json`, described
as pydantic models so `/openapi.json` says exactly what comes back.
Resolving and closing go through TicketService in one transaction, the same
code path as the command line; the technician named in the body (or `api`)
is recorded as the actor in the ticket's history.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query
from pydantic import Field

from alertd.tickets.views import list_tickets, show_ticket
from alertd.web.auth import require_token
from alertd.web.common import (
    MAX_ID,
    NO_NUL,
    Api,
    IdPath,
    Limit,
    Model,
    Offset,
    RequestModel,
    error_responses,
    text_query,
)

TicketStatus = Literal["open", "resolved", "closed"]
API_ACTOR = "api"


class AssetRef(Model):
    """The asset a ticket is linked to."""

    id: int
    name: str
    automate_id: str | None


class TicketSummary(Model):
    """A ticket as listed."""

    id: int
    type: str
    status: TicketStatus
    summary: str
    priority: int
    alert_type: str | None
    dedup_key: str
    occurrences: int
    asset: AssetRef | None = Field(description="None while the alert's asset is unknown.")
    client: str | None
    site: str | None
    matched_by: str = Field(description="How the asset was found, or why it was not.")
    automate_ticket_id: int | None = Field(
        description="The Automate ticket this ticket stands for; finishing it runs the "
                    "Ticket Finish scripts against that ticket.")
    first_seen: datetime
    last_seen: datetime


class HistoryEvent(Model):
    """One line of a ticket's history."""

    at: datetime
    kind: str
    actor: str
    message_id: int | None = Field(description="The inbox message behind it, if any.")
    detail: str


class OutboxItem(Model):
    """An Automate action the ticket queued (a Ticket Finish script run) and its fate."""

    id: int
    action: str
    label: str
    state: str = Field(description="pending, sending, verifying, unconfirmed, following, done, "
                                   "failed or cancelled.")
    attempts: int
    last_error: str | None
    outcome: str | None
    created_at: datetime
    finished_at: datetime | None


class LinkOut(Model):
    """A configured link ("custom button"), filled in for this asset."""

    name: str
    url: str


class TicketDetail(TicketSummary):
    """A ticket in full: details, fields, history, Automate actions and links."""

    details: str
    team: str | None
    category: str | None
    sender_rule: str | None
    fields: dict[str, Any]
    resolved_at: datetime | None
    closed_at: datetime | None
    resolution: str | None
    history: list[HistoryEvent]
    outbox: list[OutboxItem]
    links: list[LinkOut]


class StatusChange(RequestModel):
    """Who changes a ticket's status, and why."""

    note: str | None = Field(default=None, max_length=4000, pattern=NO_NUL,
                             description="The resolution or closing note.")
    technician: str | None = Field(default=None, max_length=200, pattern=NO_NUL,
                                   description="Who did it; `api` when not given.")

    @property
    def actor(self) -> str:
        """The name the history records."""
        return (self.technician or "").strip() or API_ACTOR


def router(api: Api) -> APIRouter:
    """The ticket routes, bound to the daemon's services."""
    routes = APIRouter(prefix="/tickets", tags=["tickets"],
                       dependencies=[Depends(require_token(api.token))],
                       responses=error_responses(401, 503))

    @routes.get("", response_model=list[TicketSummary])
    async def tickets(
        status: Annotated[TicketStatus | None, Query(description="Only this status.")] = None,
        client: Annotated[str | None, text_query("Only this client (any case).")] = None,
        asset_id: Annotated[int | None, Query(ge=1, le=MAX_ID,
                                              description="Only this asset's.")] = None,
        alert_type: Annotated[str | None, text_query("Only this alert type.")] = None,
        q: Annotated[str | None, text_query("Text in the summary (any case).")] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> list[dict[str, Any]]:
        """Tickets, newest first."""
        async with api.reading() as session:
            return await list_tickets(session, status=status, client=client, asset_id=asset_id,
                                      alert_type=alert_type, text=q, limit=limit, offset=offset)

    @routes.get("/{ticket_id}", response_model=TicketDetail, responses=error_responses(404))
    async def ticket(ticket_id: IdPath) -> dict[str, Any]:
        """One ticket with its history, its Automate actions and its links."""
        async with api.reading() as session:
            return await show_ticket(session, ticket_id, links=api.links)

    @routes.post("/{ticket_id}/resolve", response_model=TicketDetail,
                 responses=error_responses(400, 404, 409))
    async def resolve(
        ticket_id: IdPath, change: Annotated[StatusChange | None, Body()] = None,
    ) -> dict[str, Any]:
        """Resolve an open ticket (and queue its Ticket Finish scripts, when configured)."""
        change = change or StatusChange()
        async with api.writing() as session:
            await api.runtime.tickets.resolve(session, ticket_id, note=change.note,
                                              actor=change.actor)
        return await ticket(ticket_id)

    @routes.post("/{ticket_id}/close", response_model=TicketDetail,
                 responses=error_responses(400, 404, 409))
    async def close(
        ticket_id: IdPath, change: Annotated[StatusChange | None, Body()] = None,
    ) -> dict[str, Any]:
        """Close a ticket for good: a later problem opens a new ticket."""
        change = change or StatusChange()
        async with api.writing() as session:
            await api.runtime.tickets.close(session, ticket_id, note=change.note,
                                            actor=change.actor)
        return await ticket(ticket_id)

    return routes
