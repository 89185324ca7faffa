"""Script launches and ticket changes of the local Automate server (automate-api.md §3.7-3.10).

This module owns what happens behind `POST /cwa/api/v1/Batch/ScriptExecute`
and to tickets; `automate_server` owns the HTTP side (auth, faults, routes,
recording):

- `parse_launch()` checks a body against `ScheduleScriptBatchRequest` as the
  real server's model binding would: keys matched without case, unknown keys
  ignored, `EntityType` an enum name or its 0-based index, `EntityIds` a
  non-empty list of integers, exactly one of `ScriptId` / `ScriptGuid`,
  `Parameters` a list of `{Key, Value}` strings, the other known fields
  loosely typed. A problem raises `BadLaunch`, which the server answers 400.
- `run_launch()` runs a checked launch against an `AutomateData`: one
  `ScheduleScriptBatchResponse` entry per entity, a script history row on the
  computer concerned, and, for Ticket Finish scripts, the ticket finished.
  Only Computer and Ticket entities are served.
- `settle()` completes history rows that were left `Running` for a while.
- `edit_ticket()` changes a ticket as a technician or a monitor would.

`ResultStatus` and `ReasonCode` values are undocumented (§3.9): here 0/0 is
success and a refusal is `ResultStatus` 1 with one of the `REASON_*` codes
below, which are this server's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from alertd.testing.automate_data import AutomateData, Record, format_stamp, script_history_entry

ENTITY_TYPES = (
    "System", "Computer", "Site", "Company", "Probe", "NetworkDevice", "Ticket", "Group",
    "MobileDevice", "Vendor", "VendorProduct", "Possibility", "Opportunity", "Contact", "User",
    "Script", "Plugin", "Service", "ServiceBundle", "Search", "SearchFolder", "Dataview",
    "DataviewFolder", "UserFolder", "UserClass", "ScriptFolder", "RemoteMonitorTemplate",
    "ExtraField",
)
"""`ScheduleScriptBatchRequest.EntityType` in the contract's order (an index means this)."""

RESULT_SUCCESS = 0
RESULT_FAILED = 1
REASON_NONE = 0
REASON_SCRIPT_NOT_FOUND = 1
REASON_ENTITY_NOT_FOUND = 2
REASON_REFUSED = 3
REASON_UNSUPPORTED_ENTITY = 4

FINISH_BODY_KEY = "finishbody"
TICKET_ID_KEY = "ticketid"
RUNNING_MESSAGE = "Script is running."

_OBJECT_FIELDS = ("schedule", "offlineactionflags", "distributionwindow")
_BOOL_FIELDS = ("useagenttime", "includesubgroups")
_STRING_FIELDS = ("startdate", "expiredate")


class BadLaunch(ValueError):
    """A launch body the real server would refuse with 400."""


@dataclass(frozen=True, slots=True)
class LaunchRequest:
    """A checked `ScheduleScriptBatchRequest`: what to run, where, with which parameters."""

    entity_type: str
    entity_ids: tuple[int, ...]
    script_id: int | None
    script_guid: str | None
    parameters: tuple[tuple[str, str], ...] = ()

    def parameter(self, key: str) -> str | None:
        """The value of the first parameter named ``key`` (without case), if any."""
        wanted = key.lower()
        return next((value for name, value in self.parameters if name.lower() == wanted), None)


@dataclass(frozen=True, slots=True)
class Launch:
    """One request to `Batch/ScriptExecute`, as the server saw and answered it."""

    body: Any
    """The parsed JSON body (text when it was not JSON, None when empty)."""
    reference: str | None
    """The `X-Alertd-Reference` header: the client's idempotency reference."""
    status: int
    """The HTTP status answered (or, for a lost answer, the one it would have got)."""
    answered: bool
    """False when the server deliberately sat on the answer (`Faults.lose_answer_next`)."""
    at: float
    """Server time (`AutomateApp.now`) of the request."""

    @property
    def accepted(self) -> bool:
        """Whether the launch went through (200: its entities were run or refused one by one)."""
        return self.status == 200


@dataclass(frozen=True, slots=True)
class ScriptPolicy:
    """How the server's scripts behave for one launch (copied from `AutomateApp`)."""

    user: str
    at: float
    refused_script_ids: frozenset[int] = frozenset()
    script_states: Mapping[int, str] = field(default_factory=dict)
    finish_script_ids: frozenset[int] = frozenset()
    finished_status: Mapping[str, Any] = field(default_factory=lambda: {"Id": 4,
                                                                         "Name": "Resolved"})
    history_delay: float = 0.0


@dataclass(slots=True)
class Running:
    """A history row shown `Running` until ``due``, then given its final state."""

    row: Record
    due: float
    state: str
    message: str


def parse_launch(body: Any) -> LaunchRequest:
    """Check ``body`` as a `ScheduleScriptBatchRequest`; BadLaunch says what is wrong."""
    if not isinstance(body, dict):
        raise BadLaunch("The request body must be a JSON object.")
    fields = {str(key).lower(): value for key, value in body.items()}
    entity_type = _entity_type(fields.get("entitytype"))
    ids = fields.get("entityids")
    if not isinstance(ids, list) or not ids:
        raise BadLaunch("EntityIds must be a non-empty list of integers.")
    if not all(_is_int(item) for item in ids):
        raise BadLaunch("EntityIds must be a non-empty list of integers.")
    script_id, script_guid = fields.get("scriptid"), fields.get("scriptguid")
    if (script_id is None) == (script_guid is None):
        raise BadLaunch("Exactly one of ScriptId and ScriptGuid is required.")
    if script_id is not None and not _is_int(script_id):
        raise BadLaunch("ScriptId must be an integer.")
    if script_guid is not None and (not isinstance(script_guid, str) or not script_guid):
        raise BadLaunch("ScriptGuid must be a non-empty string.")
    parameters = _parameters(fields.get("parameters"))
    for name in _OBJECT_FIELDS:
        if fields.get(name) is not None and not isinstance(fields[name], dict):
            raise BadLaunch(f"{_title(name)} must be an object.")
    for name in _BOOL_FIELDS:
        if fields.get(name) is not None and not isinstance(fields[name], bool):
            raise BadLaunch(f"{_title(name)} must be true or false.")
    for name in _STRING_FIELDS:
        if fields.get(name) is not None and not isinstance(fields[name], str):
            raise BadLaunch(f"{_title(name)} must be a date and time.")
    if fields.get("priority") is not None and not _is_int(fields["priority"]):
        raise BadLaunch("Priority must be an integer.")
    return LaunchRequest(entity_type=entity_type, entity_ids=tuple(ids),
                         script_id=script_id, script_guid=script_guid, parameters=parameters)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _title(name: str) -> str:
    return {"schedule": "Schedule", "offlineactionflags": "OfflineActionFlags",
            "distributionwindow": "DistributionWindow", "useagenttime": "UseAgentTime",
            "includesubgroups": "IncludeSubGroups", "startdate": "StartDate",
            "expiredate": "ExpireDate"}[name]


def _entity_type(value: Any) -> str:
    if _is_int(value) and 0 <= value < len(ENTITY_TYPES):
        return ENTITY_TYPES[value]
    if isinstance(value, str):
        for name in ENTITY_TYPES:
            if name.lower() == value.lower():
                return name
    raise BadLaunch(f"EntityType {value!r} is not one of {', '.join(ENTITY_TYPES)}.")


def _parameters(value: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    problem = BadLaunch("Parameters must be a list of objects with string Key and Value.")
    if not isinstance(value, list):
        raise problem
    out: list[tuple[str, str]] = []
    for item in value:
        if not isinstance(item, dict):
            raise problem
        pair = {str(key).lower(): entry for key, entry in item.items()}
        key, entry = pair.get("key"), pair.get("value")
        if not isinstance(key, str) or not isinstance(entry, str):
            raise problem
        out.append((key, entry))
    return tuple(out)


def run_launch(data: AutomateData, request: LaunchRequest, policy: ScriptPolicy
               ) -> tuple[Record, list[Running]]:
    """Run ``request``: the launch's answer and the history rows left running.

    An unknown or refused script refuses every entity; an unknown entity is
    refused alone while the others run. A launch cannot know how the script
    ends: a Ticket Finish run on a computer without a usable `TicketID`
    parameter is accepted and fails in its history row, as it would on a
    real agent. A script whose configured state is `Failure` finishes
    nothing.
    """
    script, problem = _find_script(data, request, policy)
    results: list[Record] = []
    running: list[Running] = []
    for entity_id in request.entity_ids:
        refusal = problem or _entity_problem(data, request.entity_type, entity_id)
        if refusal is not None:
            results.append(_result(entity_id, RESULT_FAILED, *refusal))
            continue
        assert script is not None
        left = _run_on(data, script, request, entity_id, policy)
        if left is not None:
            running.append(left)
        results.append(_result(entity_id, RESULT_SUCCESS, REASON_NONE, ""))
    data.changed()
    answer = {"ScriptResults": results,
              "ContainsUnsuccessfulResults": any(
                  r["ResultDetails"]["ResultStatus"] != RESULT_SUCCESS for r in results)}
    return answer, running


def _result(entity_id: int, status: int, reason: int, message: str) -> Record:
    return {"EntityId": entity_id,
            "ResultDetails": {"ResultStatus": status, "ReasonCode": reason, "Message": message}}


def _find_script(data: AutomateData, request: LaunchRequest, policy: ScriptPolicy
                 ) -> tuple[Record | None, tuple[int, str] | None]:
    if request.script_id is not None:
        found = next((s for s in data.scripts if s["Id"] == str(request.script_id)), None)
        named = f"Script {request.script_id}"
    else:
        guid = str(request.script_guid).lower()
        found = next((s for s in data.scripts if str(s.get("GUID", "")).lower() == guid), None)
        named = f"Script with GUID {request.script_guid}"
    if found is None:
        return None, (REASON_SCRIPT_NOT_FOUND, f"{named} was not found.")
    if int(found["Id"]) in policy.refused_script_ids:
        return found, (REASON_REFUSED,
                       f"{named} ({found['Name']}) may not be run by {policy.user}.")
    return found, None


def _entity_problem(data: AutomateData, entity_type: str, entity_id: int
                    ) -> tuple[int, str] | None:
    if entity_type == "Ticket":
        try:
            data.ticket(entity_id)
        except KeyError:
            return REASON_ENTITY_NOT_FOUND, f"Ticket {entity_id} was not found."
        return None
    if entity_type == "Computer":
        try:
            data.computer(entity_id)
        except KeyError:
            return REASON_ENTITY_NOT_FOUND, f"Computer {entity_id} was not found."
        return None
    return (REASON_UNSUPPORTED_ENTITY,
            f"EntityType {entity_type} is not served here: only Computer and Ticket.")


def _run_on(data: AutomateData, script: Record, request: LaunchRequest, entity_id: int,
            policy: ScriptPolicy) -> Running | None:
    """Apply one entity's run; the history row, if it must show Running for a while."""
    script_id = int(script["Id"])
    state = policy.script_states.get(script_id, "Success")
    ticket: Record | None
    if request.entity_type == "Ticket":
        ticket = data.ticket(entity_id)
        computer_id = _computer_of(ticket)
        missing = ""
    else:
        computer_id = entity_id
        ticket, missing = _named_ticket(data, request)
    if state == "Failure":
        message = f"Script {script['Name']} failed."
    elif script_id not in policy.finish_script_ids:
        message = f"Script {script['Name']} completed."
    elif ticket is None:
        state, message = "Failure", missing
    else:
        body = request.parameter(FINISH_BODY_KEY) or f"Finished by script {script['Name']}"
        finish_ticket(ticket, status=policy.finished_status, body=body,
                      when=format_stamp(policy.at), author=policy.user)
        message = f"Ticket {ticket['TicketId']} finished."
    if computer_id is None:
        return None
    row = script_history_entry(
        data.next_history_id(), script_id, computer_id, script["Name"], user=policy.user,
        state=state, history_date=format_stamp(policy.at), message=message)
    data.add_history(row)
    if policy.history_delay <= 0:
        return None
    row.update(Status="Running", State="Information", DiagnosticMessage=RUNNING_MESSAGE)
    return Running(row, policy.at + policy.history_delay, state, message)


def _computer_of(ticket: Record) -> int | None:
    computer = ticket.get("Computer") or {}
    text = str(computer.get("Id", ""))
    return int(text) if text.isdigit() and int(text) > 0 else None


def _named_ticket(data: AutomateData, request: LaunchRequest) -> tuple[Record | None, str]:
    """The ticket a computer-targeted run names in its `TicketID` parameter."""
    value = request.parameter(TICKET_ID_KEY)
    if value is None:
        return None, "No TicketID parameter: no ticket to finish."
    if not value.strip().isdigit():
        return None, f"TicketID {value!r} is not a ticket number."
    try:
        return data.ticket(int(value)), ""
    except KeyError:
        return None, f"Ticket {value.strip()} was not found."


def settle(data: AutomateData, running: list[Running], now: float) -> list[Running]:
    """Complete the rows whose time has come; the ones still running."""
    due = [item for item in running if item.due <= now]
    if not due:
        return running
    for item in due:
        item.row.update(Status="Completed", State=item.state, DiagnosticMessage=item.message)
    data.changed()
    return [item for item in running if item.due > now]


def finish_ticket(ticket: Record, *, status: Mapping[str, Any], body: str, when: str,
                  author: str) -> None:
    """Finish ``ticket`` as the Ticket Finish script function does: status, stamp, comment."""
    ticket["Status"] = dict(status)
    add_comment(ticket, body, when=when, author=author)


def add_comment(ticket: Record, body: str, *, when: str, author: str) -> None:
    """Append a comment and bump `UpdateDate` to ``when``."""
    comments: list[Record] = ticket.setdefault("Comments", [])
    numbers = [int(c["Id"]) for c in comments if str(c.get("Id", "")).isdigit()]
    comments.append({"Id": str(max(numbers, default=0) + 1), "Body": body,
                     "CreatedDate": when, "From": author})
    ticket["UpdateDate"] = when


def edit_ticket(data: AutomateData, ticket_id: int, *, when: str, comment: str | None = None,
                status: tuple[int, str] | None = None, subject: str | None = None,
                author: str = "Automate") -> Record:
    """Change a ticket as a technician or a monitor would; KeyError when it is absent."""
    ticket = data.ticket(ticket_id)
    if status is not None:
        ticket["Status"] = {"Id": status[0], "Name": status[1]}
    if subject is not None:
        ticket["Subject"] = subject
    if comment is not None:
        add_comment(ticket, comment, when=when, author=author)
    ticket["UpdateDate"] = when
    data.changed()
    return ticket
