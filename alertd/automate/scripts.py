"""Automate scripts as alertd sees them: the script list, a launch, its answer, its history.

A launch goes through `POST /Batch/ScriptExecute` with a
`ScheduleScriptBatchRequest` body (`automate-api.md` §3.9). Automate gives
no run id: the answer only says whether the launch was accepted
(`ContainsUnsuccessfulResults`), and what the run did shows up later as a
row in the target computer's `ScriptHistory`. Rows there have increasing
ids, so "the rows after id N" is how a launch is recognised without
relying on the server's clock or time zone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from alertd.automate.models import Json, RecordInvalid, parse_id, text

ENTITY_TYPES = {"ticket": "Ticket", "computer": "Computer"}
"""alertd's finish targets and the `EntityType` values Automate knows them by."""
LAUNCH_PRIORITY = 12
"""The launch priority a widely used client sends (the scale is undocumented)."""


@dataclass(frozen=True, slots=True)
class Script:
    """One `LabTech.Models.Script`, reduced to what choosing and launching one needs."""

    id: int
    name: str
    folder: str | None
    parameters: tuple[str, ...]
    is_computer_script: bool
    is_maintenance_script: bool
    comments: str | None

    @classmethod
    def from_api(cls, record: Json) -> Script:
        """Read a script record; its Id arrives as a string."""
        name = text(record, "Name")
        if name is None:
            raise RecordInvalid("Name is missing")
        raw_parameters = record.get("Parameters") or ()
        if not isinstance(raw_parameters, list | tuple):
            raise RecordInvalid("Parameters is not a list")
        folder = text(record, "FullFolderPath")
        if folder is None and isinstance(record.get("Folder"), Mapping):
            folder = text(record["Folder"], "Name")
        return cls(
            id=int(parse_id(record.get("Id"))),
            name=name,
            folder=folder,
            parameters=tuple(str(p) for p in raw_parameters),
            is_computer_script=bool(record.get("IsComputerScript")),
            is_maintenance_script=bool(record.get("IsMaintenanceScript")),
            comments=text(record, "Comments"),
        )


@dataclass(frozen=True, slots=True)
class ScriptLaunch:
    """What to run where: one script on one entity with its parameters."""

    script_id: int
    entity_type: str
    """`Ticket` or `Computer`."""
    entity_id: int
    parameters: tuple[tuple[str, str], ...]

    def body(self, now: datetime) -> dict[str, Any]:
        """The `ScheduleScriptBatchRequest` that runs it now."""
        return {
            "EntityType": self.entity_type,
            "EntityIds": [self.entity_id],
            "ScriptId": self.script_id,
            "Parameters": [{"Key": key, "Value": value} for key, value in self.parameters],
            "UseAgentTime": False,
            "StartDate": now.isoformat(timespec="seconds"),
            "OfflineActionFlags": {"SkipsOfflineAgents": False},
            "Priority": LAUNCH_PRIORITY,
        }


@dataclass(frozen=True, slots=True)
class LaunchResult:
    """Automate's answer to a launch (`ScheduleScriptBatchResponse`)."""

    accepted: bool
    messages: tuple[str, ...]
    raw: dict[str, Any]

    @classmethod
    def from_api(cls, data: object) -> LaunchResult:
        """Read the answer; an answer without per-entity detail (older servers) is fine."""
        if not isinstance(data, Mapping):
            raise RecordInvalid("the launch answer is not an object")
        results = data.get("ScriptResults") or []
        messages: list[str] = []
        refused = bool(data.get("ContainsUnsuccessfulResults"))
        for result in results if isinstance(results, list) else []:
            details = result.get("ResultDetails") if isinstance(result, Mapping) else None
            if not isinstance(details, Mapping):
                continue
            status = details.get("ResultStatus")
            message = str(details.get("Message") or "").strip()
            if refused and status not in (0, None):
                reason = message or f"ResultStatus {status}, ReasonCode {details.get('ReasonCode')}"
                messages.append(f"entity {result.get('EntityId')}: {reason}")
        return cls(accepted=not refused, messages=tuple(messages), raw=dict(data))


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One `LabTech.Models.ComputerScriptHistory` row: a script run on a computer."""

    id: int
    script_id: int
    status: str
    """`Running` or `Completed`."""
    state: str
    """`Success`, `Failure` or `Information`."""
    when: str | None
    message: str

    @classmethod
    def from_api(cls, record: Json) -> HistoryEntry:
        """Read a history row."""
        return cls(
            id=int(parse_id(record.get("Id"))),
            script_id=int(parse_id(record.get("ScriptId"), "ScriptId")),
            status=text(record, "Status") or "",
            state=text(record, "State") or "",
            when=text(record, "HistoryDate"),
            message=text(record, "DiagnosticMessage") or "",
        )

    @property
    def completed(self) -> bool:
        """Whether the run has finished (its State is then its outcome)."""
        return self.status.lower() == "completed"
