"""Which Ticket Finish launches a resolved ticket gets: pure, from settings and the ticket.

A configured script runs only when the ticket has what it needs: the
Automate ticket id for a script aimed at the ticket, the computer id for
one aimed at the computer, and every id its parameters name. Otherwise it
is skipped with a reason the ticket's history shows, so an admin can see
why nothing reached Automate. Parameters are rendered when the ticket is
resolved, so a later edit of the ticket does not change what runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from alertd.automate.scripts import ENTITY_TYPES
from alertd.settings import AutomateFinishScript
from alertd.templates import Template

_IDS = {"automate_ticket_id": "an Automate ticket id", "computer_id": "an Automate computer id"}


@dataclass(frozen=True, slots=True)
class TicketFacts:
    """What finish-script templates can say about a resolved ticket."""

    ticket_id: int
    automate_ticket_id: int | None
    computer_id: int | None
    resolution: str
    technician: str
    resolved_at: datetime
    summary: str = ""
    client: str | None = None
    site: str | None = None
    asset: str | None = None
    alert_type: str | None = None

    def values(self) -> dict[str, str]:
        """Placeholder values; absent ones render empty."""
        raw: dict[str, object] = {
            "automate_ticket_id": self.automate_ticket_id, "computer_id": self.computer_id,
            "ticket_id": self.ticket_id, "resolution": self.resolution,
            "technician": self.technician, "summary": self.summary, "client": self.client,
            "site": self.site, "asset": self.asset, "alert_type": self.alert_type,
            "resolved_at": self.resolved_at.isoformat(timespec="seconds"),
        }
        return {key: "" if value is None else str(value) for key, value in raw.items()}


@dataclass(frozen=True, slots=True)
class PlannedLaunch:
    """One script launch to queue for a ticket."""

    label: str
    script_id: int | None
    script_name: str | None
    entity_type: str
    entity_id: int
    computer_id: int | None
    parameters: tuple[tuple[str, str], ...]
    follow_up: bool


@dataclass(frozen=True, slots=True)
class Skipped:
    """A configured script that cannot run for this ticket, and why."""

    label: str
    reason: str


@dataclass(frozen=True, slots=True)
class _Script:
    settings: AutomateFinishScript
    parameters: tuple[tuple[str, Template], ...]
    needs: frozenset[str]


class FinishPlan:
    """The configured Ticket Finish scripts, templates parsed once."""

    def __init__(self, scripts: Sequence[AutomateFinishScript]) -> None:
        self._scripts: list[_Script] = []
        for script in scripts:
            parameters = tuple((key, Template.parse(value))
                               for key, value in script.parameters.items())
            used = frozenset().union(*(t.fields for _, t in parameters)) & _IDS.keys()
            target = "automate_ticket_id" if script.target == "ticket" else "computer_id"
            self._scripts.append(_Script(script, parameters, used | {target}))

    @property
    def enabled(self) -> bool:
        """Whether any script is configured."""
        return bool(self._scripts)

    def plan(self, facts: TicketFacts) -> list[PlannedLaunch | Skipped]:
        """The launches for one resolved ticket, in configured order."""
        values = facts.values()
        out: list[PlannedLaunch | Skipped] = []
        for script in self._scripts:
            label = script.settings.label
            missing = sorted(name for name in script.needs if not values[name])
            if missing:
                needed = " and ".join(_IDS[name] for name in missing)
                out.append(Skipped(label, f"{label} needs {needed}; this ticket has none"))
                continue
            entity_id = (facts.automate_ticket_id if script.settings.target == "ticket"
                         else facts.computer_id)
            assert entity_id is not None
            out.append(PlannedLaunch(
                label=label,
                script_id=script.settings.id,
                script_name=script.settings.name,
                entity_type=ENTITY_TYPES[script.settings.target],
                entity_id=entity_id,
                computer_id=facts.computer_id,
                parameters=tuple((key, t.render(values)) for key, t in script.parameters),
                follow_up=script.settings.follow_up,
            ))
        return out
