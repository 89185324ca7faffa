"""Automate tickets (`LabTech.Models.Ticket`) as the API-based alert source reads them.

`UpdateDate` is kept as the server's own text (local time of the Automate
server, no zone) because the poller hands it back in its next condition:
comparing Automate's stamps with Automate's stamps needs no time zone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from alertd.automate.models import Json, RecordInvalid, optional_id, parse_id, text


@dataclass(frozen=True, slots=True)
class AutomateTicket:
    """One Automate ticket, reduced to what an alert needs."""

    id: int
    subject: str
    status_id: int | None
    status: str | None
    update_date: str
    start_date: str | None
    client_id: str | None
    client: str | None
    location_id: str | None
    location: str | None
    computer_id: str | None
    computer: str | None
    priority: str | None
    category: str | None
    sender: str | None
    monitor_id: str | None
    comments: tuple[str, ...]

    @classmethod
    def from_api(cls, record: Json) -> AutomateTicket:
        """Read a ticket record; it needs a TicketId and an UpdateDate."""
        ticket_id = int(parse_id(record.get("TicketId"), "TicketId"))
        update = text(record, "UpdateDate") or text(record, "StartDate")
        if update is None:
            raise RecordInvalid("UpdateDate is missing")
        status = record.get("Status")
        status_id = optional_id(status.get("Id"), "Status.Id") if isinstance(status, Mapping) \
            else None
        comments = record.get("Comments") or []
        bodies = tuple(str(c.get("Body") or "").strip() for c in comments
                       if isinstance(c, Mapping) and str(c.get("Body") or "").strip())
        return cls(
            id=ticket_id,
            subject=text(record, "Subject") or f"Automate ticket {ticket_id}",
            status_id=int(status_id) if status_id is not None else None,
            status=text(record, "Status.Name"),
            update_date=update,
            start_date=text(record, "StartDate"),
            client_id=_id(record, "Client", "Id"),
            client=text(record, "Client.Name"),
            location_id=_id(record, "Location", "Id"),
            location=text(record, "Location.Name"),
            computer_id=_id(record, "Computer", "Id"),
            computer=text(record, "Computer.ComputerName") or text(record, "Computer.Name"),
            priority=text(record, "Priority.Name"),
            category=text(record, "CategoryName") or text(record, "Category.Name"),
            sender=text(record, "From"),
            monitor_id=optional_id(record.get("MonitorId"), "MonitorId"),
            comments=bodies,
        )


def _id(record: Json, key: str, id_key: str) -> str | None:
    nested = record.get(key)
    if not isinstance(nested, Mapping):
        return None
    return optional_id(nested.get(id_key), f"{key}.{id_key}")
