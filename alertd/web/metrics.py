"""`/metrics`: alertd's Prometheus metrics in the text format, no token needed (R6.5).

Counters and histograms are kept where the work happens (alertd/metrics.py
lists them). The database gauges, tickets by status and outbox entries by
state, are counted here just before rendering, with two GROUP BY queries on
a read-only session; every known status and state is set, zero when absent.
When the database cannot answer (quickly) those gauges are dropped from the
page, since a stale count would mislead, and the rest is rendered anyway.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alertd.db.engine import storage_errors
from alertd.db.tables import OutboxEntry, Ticket
from alertd.errors import StorageUnavailable
from alertd.logs import get_logger
from alertd.metrics import OUTBOX, REGISTRY, TICKETS
from alertd.outbox.store import STATES as OUTBOX_STATES
from alertd.tickets.views import TICKET_STATUSES

log = get_logger(__name__)

COUNT_TIMEOUT_S = 5.0
"""Longest wait for the counts: a scrape must not hang on a database outage."""


async def refresh_gauges(readers: async_sessionmaker[AsyncSession]) -> bool:
    """Set the ticket and outbox gauges from the database; False (and gauges cleared) if down."""
    try:
        async with asyncio.timeout(COUNT_TIMEOUT_S), storage_errors(), readers() as session:
            tickets = dict((await session.execute(
                select(Ticket.status, func.count()).group_by(Ticket.status))).all())
            outbox = dict((await session.execute(
                select(OutboxEntry.state, func.count()).group_by(OutboxEntry.state))).all())
    except (StorageUnavailable, TimeoutError) as error:
        log.warning("metrics.database_unavailable", error=str(error) or type(error).__name__)
        TICKETS.clear()
        OUTBOX.clear()
        return False
    for status in sorted({*TICKET_STATUSES, *tickets}):
        TICKETS.labels(status=status).set(tickets.get(status, 0))
    for state in sorted({*OUTBOX_STATES, *outbox}):
        OUTBOX.labels(state=state).set(outbox.get(state, 0))
    return True


def router(readers: async_sessionmaker[AsyncSession] | None) -> APIRouter:
    """The `/metrics` route; without a database only the process's own metrics are shown."""
    routes = APIRouter(tags=["monitoring"])

    @routes.get("/metrics", response_class=Response, responses={
        200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
              "description": "Prometheus text format"}})
    async def metrics() -> Response:
        """Prometheus metrics: messages processed, tickets by status, outbox, reloads."""
        if readers is not None:
            await refresh_gauges(readers)
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return routes
