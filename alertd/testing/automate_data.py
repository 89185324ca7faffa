"""Records for the local Automate server, shaped after the published OpenAPI subset.

Builders make one record of each kind with the field names, nesting and id
types of the contract (`LabTech.Models.Computer.Id` is a string,
`Location.Id` a number, and so on), so every record validates against the
subset. `AutomateData` holds a data set; `generate()` makes a large,
deterministic one for benchmarks and demos. Router records carry a
username and password on purpose: the importer must never keep them.

Tickets, scripts and script history follow automate-api.md §3.7-3.10: a
`LabTech.Models.Ticket` names its computer with a string id (as
`LabTech.Models.Computer` does, unlike the integer in §6.7's example), a
`LabTech.Models.Script` has a string `Id`, and a
`LabTech.Models.ComputerScriptHistory` row has integer ids. Every data set
holds, unless told otherwise, the two placeholder Ticket Finish scripts of
§6.8 and three ordinary computer scripts.

Time stamps are naive, as Automate serialises its server times: whole
seconds print without a fraction, others with up to seven digits, the way
.NET's `FFFFFFF` format trims them (`format_stamp`).
"""

from __future__ import annotations

import random
import uuid
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

Record = dict[str, Any]

STAMP = "2025-06-02T10:14:55"
ALERTS_FROM = "alerts@helpdesk.example.net"
TICKET_FINISH_ID = 6401
TICKET_FINISH_WITH_COMMENT_ID = 6402
TICKETS_FOLDER = "Maintenance\\Tickets"
_GUIDS = uuid.UUID("5b0f3c1e-2d4a-4e6b-9c8d-7a1f0e2d3c4b")
_FOLDER_GUIDS = {TICKETS_FOLDER: "6d1f3a52-0c8b-4e7e-a8b5-3c2d9e1f0a11"}

TICKET_FIELDS = frozenset({
    "TicketId", "Client", "Computer", "Status", "Subject", "Priority", "User", "DueDate",
    "StartDate", "ContactDate", "UpdateDate", "From", "CC", "SupportLevel", "Category",
    "CategoryId", "CategoryName", "Location", "ExternalId", "MonitorId", "Guid", "Agent",
    "NetworkDevice", "Comments",
})
"""Top-level fields of `LabTech.Models.Ticket`, which conditions may name."""
SCRIPT_FIELDS = frozenset({
    "Id", "Folder", "Name", "Comments", "IsComputerScript", "IsLocationScript",
    "IsMaintenanceScript", "IsFunctionScript", "IsOffline", "IgnoreForMobileDevices",
    "IsPublicSharable", "IsUserResponse", "IsSystemScript", "IsMobileDeviceScript",
    "IsNetworkDeviceScript", "IsContactScript", "Version", "GUID", "Parameters",
    "EditPermission", "Permission", "AutomationTime", "UpdateDate", "UpdatedBy",
    "FullFolderPath", "ScriptData",
})
"""Top-level fields of `LabTech.Models.Script`."""
SCRIPT_HISTORY_FIELDS = frozenset({
    "Id", "ScriptId", "ComputerId", "Name", "User", "Status", "State", "HistoryDate",
    "DiagnosticMessage",
})
"""Top-level fields of `LabTech.Models.ComputerScriptHistory`."""


def format_stamp(epoch_seconds: float) -> str:
    """A naive UTC stamp as Automate prints one: no zone, fraction only when non-zero."""
    moment = datetime.fromtimestamp(epoch_seconds, UTC).replace(tzinfo=None)
    text = moment.isoformat(timespec="seconds")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text


def _later(stamp: str, **delta: float) -> str:
    """``stamp`` moved by a timedelta, printed in the same style."""
    moment = datetime.fromisoformat(stamp).replace(tzinfo=UTC) + timedelta(**delta)
    return format_stamp(moment.timestamp())


def client(client_id: int, name: str, **extra: Any) -> Record:
    """A `LabTech.Models.Client` (its Id is a string in the contract)."""
    return {
        "Id": str(client_id), "Name": name, "Company": name, "Address1": "1 High Street",
        "City": "Bristol", "State": "", "ZipCode": "BS1 4AB", "Country": "United Kingdom",
        "PhoneNumber": "+44 117 496 0000", "Comment": "", "ExternalId": "0",
        "NewTicketNotificationEmail": "alerts@helpdesk.example.net",
        "UsesInHouseSupportStaff": False, "IsHiddenFromAllInclusiveGroup": False, **extra,
    }


def router(router_id: int, *, guid: str | None = None, manufacturer: str = "Cisco Systems",
           model: str = "ISR 1100", username: str = "admin",
           password: str = "router-secret-do-not-store",  # noqa: S107 - test data the importer must drop
           ) -> Record:
    """A `LabTech.Models.Router`, credentials included as the real route serves them."""
    return {
        "Id": router_id, "ManufacturerName": manufacturer, "Model": model, "Version": "17.3",
        "PortType": "Ethernet", "Username": username, "Password": password,
        "Guid": guid or str(uuid.UUID(int=router_id)),
    }


def location(location_id: int, name: str, client_id: int, client_name: str,
             *, router_record: Record | None = None) -> Record:
    """A `Contracts.Clients.Location`, with its client and (optionally) its router."""
    record: Record = {
        "Id": location_id, "LocationId": location_id, "Name": name, "Address1": "12 Harbour St",
        "City": "Bristol", "ZipCode": "BS1 4AB", "Country": "United Kingdom",
        "PhoneNumber": "+44 117 496 0000", "ProbeId": 0, "ExternalId": 0, "RouterPort": 0,
        "ScriptUsername": "", "ScriptPassword": "", "Comments": "",
        "Client": {"Id": str(client_id), "Name": client_name},
    }
    if router_record is not None:
        record["Router"] = router_record
    return record


def contact(contact_id: int, first: str, last: str, *, client_id: int, client_name: str,
            location_id: int | None, location_name: str | None, email: str | None = None
            ) -> Record:
    """A v2 `Contracts.Clients.Contact` (`ContactId` a number, `Client.ClientId`)."""
    record: Record = {
        "ContactId": contact_id, "FirstName": first, "LastName": last,
        "EmailAddress": email or f"{first}.{last}@example.invalid".lower(),
        "PhoneNumber": "+44 117 496 0001", "MobileNumber": "",
        "Client": {"ClientId": client_id, "Name": client_name},
        "IsManaged": True, "IsActivated": True,
        "DateCreated": "2023-03-14T09:12:00", "LastUpdateDate": "2025-01-20T16:40:00",
    }
    if location_id is not None:
        record["Location"] = {"Id": location_id, "LocationId": location_id,
                              "Name": location_name or ""}
    return record


def contact_v1(record: Record) -> Record:
    """The same contact in the v1 contract (`Id` a string, `Email`, `Client.Id`)."""
    out: Record = {
        "Id": str(record["ContactId"]), "FirstName": record["FirstName"],
        "LastName": record["LastName"], "Email": record.get("EmailAddress", ""),
        "PhoneNumber": record.get("PhoneNumber", ""),
        "Client": {"Id": str(record["Client"]["ClientId"]), "Name": record["Client"]["Name"]},
    }
    if "Location" in record:
        out["Location"] = {"Id": record["Location"]["Id"], "Name": record["Location"]["Name"]}
    return out


def computer(computer_id: int, name: str, *, type_: str = "Workstation", client_id: int,
             client_name: str, location_id: int | None, location_name: str | None = None,
             serial: str | None = None, os: str = "Microsoft Windows 11 Pro x64",
             last_user: str = "", inventory: str = STAMP, **extra: Any) -> Record:
    """A `LabTech.Models.Computer` (its Id is a string in the contract)."""
    record: Record = {
        "Id": str(computer_id), "ComputerName": name, "FriendlyName": "", "Type": type_,
        "Status": "Online", "OperatingSystemName": os, "OperatingSystemVersion": "10.0.22631",
        "DomainName": "CORP", "SerialNumber": serial or f"SN{computer_id:08d}",
        "AssetTag": "", "BiosManufacturer": "HPE", "MACAddress": "00-15-5D-0A-01-42",
        "LocalIPAddress": "10.10.0.10", "GatewayIPAddress": "203.0.113.24",
        "RemoteAgentLastContact": STAMP, "LastHeartbeat": STAMP,
        "LastInventoryReceived": inventory, "IsVirtualMachine": False,
        "IsNetworkProbe": False, "LastUserName": last_user,
        "OpenPortsTCP": [135, 445], "OpenPortsUDP": [137], "UserAccounts": ["Administrator"],
        "Client": {"Id": str(client_id), "Name": client_name},
        **extra,
    }
    if location_id is not None:
        record["Location"] = {"Id": location_id, "Name": location_name or ""}
    return record


def printer(printer_id: int, computer_id: int, name: str, port: str = "10.10.0.50") -> Record:
    """A `LabTech.Models.ComputerPrinter`."""
    return {
        "Id": printer_id, "ComputerId": computer_id, "Name": name, "PortName": port,
        "Resolution": "600x600", "PaperTypes": ["A4", "Letter"], "Features": ["Duplex"],
    }


def network_device(device_id: int, name: str, *, client_id: int, client_name: str,
                   location_id: int, location_name: str, device_type: str = "Switch") -> Record:
    """A `LabTech.Models.NetworkDevice` (no GUID exists on this model)."""
    return {
        "Id": str(device_id), "Name": name, "FriendlyName": "", "Description": "",
        "LocalIPAddress": "10.10.0.2", "MACAddress": "00-1B-21-AA-BB-CC", "Status": "Online",
        "DeviceType": {"Id": 4, "Name": device_type}, "ManufacturerName": "Cisco Systems",
        "ModelName": "C9200", "DetectionTemplateName": "Generic SNMP", "LastContact": STAMP,
        "SNMPCommunityGet": "public-secret", "IsSNMPv2cSupported": True, "ProbeId": 0,
        "Client": {"Id": str(client_id), "Name": client_name},
        "Location": {"Id": location_id, "Name": location_name},
    }


def ticket_comment(comment_id: int, body: str, *, created: str = STAMP,
                   from_: str = "Automate", user: str | None = None) -> Record:
    """A `LabTech.Models.TicketComment` (its Id is a string in the contract)."""
    record: Record = {"Id": str(comment_id), "Body": body, "CreatedDate": created,
                      "From": from_}
    if user is not None:
        record["User"] = {"Name": user}
    return record


def ticket(ticket_id: int, subject: str, *, client_id: int, client_name: str,
           location_id: int, location_name: str, computer_id: int, computer_name: str,
           status_id: int = 1, status_name: str = "New", update_date: str = STAMP,
           start_date: str | None = None, comments: Iterable[str | Record] = (),
           monitor_id: int = 0, from_: str = ALERTS_FROM,
           priority: tuple[int, str] = (3, "Medium"),
           category: tuple[int, str] | None = None, **extra: Any) -> Record:
    """A `LabTech.Models.Ticket` (§6.7); a comment given as text becomes a TicketComment.

    The status names are guesses (automate-api.md §3.7): 1 New, 2 Open,
    3 Stalled are "not finished"; the server's finished status is settable.
    """
    started = start_date or update_date
    notes = [
        ticket_comment(n, item, created=started) if isinstance(item, str) else item
        for n, item in enumerate(comments, start=1)
    ]
    record: Record = {
        "TicketId": ticket_id, "Subject": subject, "From": from_, "CC": "",
        "Status": {"Id": status_id, "Name": status_name},
        "Priority": {"Id": priority[0], "Name": priority[1]},
        "SupportLevel": 1, "StartDate": started, "UpdateDate": update_date,
        "DueDate": _later(started, days=1), "MonitorId": monitor_id, "ExternalId": 0,
        "Guid": str(uuid.uuid5(_GUIDS, f"ticket:{ticket_id}")),
        "Client": {"Id": str(client_id), "Name": client_name},
        "Location": {"Id": location_id, "Name": location_name},
        "Computer": {"Id": str(computer_id), "ComputerName": computer_name},
        "Comments": notes,
        **extra,
    }
    if category is not None:
        record.update(Category={"Id": category[0], "Name": category[1]},
                      CategoryId=category[0], CategoryName=category[1])
    return record


def script(script_id: int, name: str, *, parameters: Sequence[str] = (),
           folder: str = TICKETS_FOLDER, is_computer_script: bool = False,
           is_maintenance_script: bool = True, comments: str = "", version: int = 1,
           guid: str | None = None, **extra: Any) -> Record:
    """A `LabTech.Models.Script` (v1 list contract: `Id` a string, `Parameters` strings)."""
    parent, _, folder_name = folder.rpartition("\\")
    return {
        "Id": str(script_id), "Name": name, "Comments": comments,
        "FullFolderPath": folder,
        "Folder": {"Id": _folder_id(folder), "ParentId": _folder_id(parent) if parent else "0",
                   "Name": folder_name, "GUID": _FOLDER_GUIDS.get(
                       folder, str(uuid.uuid5(_GUIDS, f"folder:{folder}")))},
        "IsComputerScript": is_computer_script, "IsLocationScript": False,
        "IsMaintenanceScript": is_maintenance_script, "IsFunctionScript": False,
        "IsOffline": False, "IsSystemScript": False, "IsNetworkDeviceScript": False,
        "IsContactScript": False, "IsMobileDeviceScript": False, "IsUserResponse": False,
        "IsPublicSharable": False, "IgnoreForMobileDevices": True,
        "Version": version, "GUID": guid or str(uuid.uuid5(_GUIDS, f"script:{script_id}")),
        "Parameters": list(parameters), "EditPermission": [], "Permission": [],
        "AutomationTime": 0, "UpdateDate": STAMP, "UpdatedBy": "admin",
        **extra,
    }


def _folder_id(path: str) -> str:
    """The folder ids of §6.8 for the tickets folder; stable made-up ones elsewhere."""
    known = {"Maintenance": "200", TICKETS_FOLDER: "212"}
    return known.get(path, str(300 + zlib.crc32(path.encode()) % 700))


def default_scripts() -> list[Record]:
    """The two Ticket Finish scripts of §6.8 (placeholders) and three ordinary scripts."""
    return [
        script(5101, "Restart Spooler", folder="Maintenance\\Printers",
               is_computer_script=True, is_maintenance_script=False,
               comments="Restarts the print spooler service"),
        script(5102, "Disk Cleanup", folder="Maintenance\\Disk", is_computer_script=True,
               is_maintenance_script=False, parameters=["Drive"],
               comments="Removes temporary files"),
        script(5103, "Reboot If Pending", folder="Maintenance\\Patching",
               is_computer_script=True, is_maintenance_script=False,
               comments="Reboots when Windows Update waits for one"),
        script(TICKET_FINISH_ID, "Ticket Finish", parameters=["TicketID"], version=3,
               guid="a3c4e1f2-5b6d-4e7f-8a9b-0c1d2e3f4a5b",
               comments="Finishes an Automate ticket (placeholder description)"),
        script(TICKET_FINISH_WITH_COMMENT_ID, "Ticket Finish With Comment",
               parameters=["TicketID", "FinishBody"], version=2,
               guid="b4d5f203-6c7e-4f80-9bac-1d2e3f4a5b6c",
               comments="Finishes an Automate ticket with a finish body "
                        "(placeholder description)"),
    ]


def script_history_entry(history_id: int, script_id: int, computer_id: int, name: str, *,
                         user: str = "alertd-integrator", status: str = "Completed",
                         state: str = "Success", history_date: str = STAMP,
                         message: str = "") -> Record:
    """A `LabTech.Models.ComputerScriptHistory` row (`Status` Running or Completed)."""
    return {
        "Id": history_id, "ScriptId": script_id, "ComputerId": computer_id, "Name": name,
        "User": user, "Status": status, "State": state, "HistoryDate": history_date,
        "DiagnosticMessage": message,
    }


@dataclass
class AutomateData:
    """Everything one Automate server holds, by route."""

    clients: list[Record] = field(default_factory=list)
    locations: list[Record] = field(default_factory=list)
    contacts: list[Record] = field(default_factory=list)
    computers: list[Record] = field(default_factory=list)
    printers: dict[str, list[Record]] = field(default_factory=dict)
    """Printers by computer id (as a string)."""
    routers: list[Record] = field(default_factory=list)
    network_devices: list[Record] = field(default_factory=list)
    tickets: list[Record] = field(default_factory=list)
    scripts: list[Record] = field(default_factory=default_scripts)
    script_history: dict[str, list[Record]] = field(default_factory=dict)
    """Script history rows by computer id (as a string)."""
    version: int = 0
    """Bumped by `changed()` so the server drops its cached query results."""
    _ticket_index: dict[int, Record] = field(default_factory=dict, repr=False, compare=False)
    _indexed: tuple[int, int] = field(default=(-1, -1), repr=False, compare=False)
    _last_history_id: int | None = field(default=None, repr=False, compare=False)

    def changed(self) -> None:
        """Say that records were edited in place."""
        self.version += 1

    def ticket(self, ticket_id: int) -> Record:
        """The ticket with this id; KeyError when there is none.

        Lookups go through an index rebuilt after `changed()` or when the
        list grows, so a benchmark with many tickets stays fast.
        """
        if self._indexed != (self.version, len(self.tickets)):
            self._ticket_index = {int(t["TicketId"]): t for t in self.tickets}
            self._indexed = (self.version, len(self.tickets))
        return self._ticket_index[int(ticket_id)]

    def add_ticket(self, record: Record) -> None:
        """Add a ticket (as a monitor or a technician would open one)."""
        self.tickets.append(record)
        self.changed()

    def computer(self, computer_id: int | str) -> Record:
        """The computer with this id; KeyError when there is none."""
        wanted = str(computer_id)
        for record in self.computers:
            if record["Id"] == wanted:
                return record
        raise KeyError(computer_id)

    def script(self, script_id: int | str) -> Record:
        """The script with this id; KeyError when there is none."""
        wanted = str(script_id)
        for record in self.scripts:
            if record["Id"] == wanted:
                return record
        raise KeyError(script_id)

    def next_history_id(self) -> int:
        """A script history id no row has yet (ids are unique across computers)."""
        if self._last_history_id is None:
            self._last_history_id = max(
                (int(row["Id"]) for rows in self.script_history.values() for row in rows),
                default=90000)
        self._last_history_id += 1
        return self._last_history_id

    def add_history(self, record: Record) -> None:
        """Append a script history row to its computer's list."""
        self.script_history.setdefault(str(record["ComputerId"]), []).append(record)
        if self._last_history_id is not None:
            self._last_history_id = max(self._last_history_id, int(record["Id"]))
        self.changed()

    def add_printer(self, record: Record) -> None:
        """Attach a printer to its computer."""
        self.printers.setdefault(str(record["ComputerId"]), []).append(record)

    @property
    def printer_count(self) -> int:
        """How many printers all computers have together."""
        return sum(len(items) for items in self.printers.values())


def generate(*, clients: int = 3, locations_per_client: int = 2, contacts_per_location: int = 2,
             computers: int = 20, servers_every: int = 5, printers: int = 5,
             routers: bool = True, network_devices: int = 0, tickets: int = 0,
             seed: int = 1) -> AutomateData:
    """A deterministic data set of the given size (computers spread over all locations).

    ``tickets`` open tickets (status New or Open) sit on computers taken in
    turn, with ids from 10001 and update stamps seven seconds apart.
    """
    if tickets and not computers:
        raise ValueError("tickets need computers to sit on")
    rng = random.Random(seed)  # noqa: S311 - test data, not cryptography
    data = AutomateData()
    places: list[tuple[int, str, int, str]] = []
    for c in range(1, clients + 1):
        client_name = f"Client {c:04d}"
        data.clients.append(client(c, client_name))
        for n in range(1, locations_per_client + 1):
            location_id = c * 100 + n
            router_record = router(location_id) if routers else None
            if router_record is not None:
                data.routers.append(router_record)
            name = f"Site {n} of {client_name}"
            data.locations.append(location(location_id, name, c, client_name,
                                           router_record=router_record))
            places.append((c, client_name, location_id, name))
            for k in range(contacts_per_location):
                contact_id = location_id * 100 + k
                data.contacts.append(contact(contact_id, f"User{k}", f"L{location_id}",
                                             client_id=c, client_name=client_name,
                                             location_id=location_id, location_name=name))
    for i in range(1, computers + 1):
        c, client_name, location_id, name = places[(i - 1) % len(places)]
        kind = "Server" if i % servers_every == 0 else "Workstation"
        data.computers.append(computer(
            i, f"{'SRV' if kind == 'Server' else 'WS'}-{i:06d}", type_=kind, client_id=c,
            client_name=client_name, location_id=location_id, location_name=name,
            last_user=f"CORP\\user{i % 97}",
        ))
    owners = rng.sample(range(1, computers + 1), min(printers, computers)) if computers else []
    for n, owner in enumerate(owners, start=1):
        data.add_printer(printer(n, owner, f"Printer {n:06d}", port=f"10.{n % 250}.0.50"))
    for d in range(1, network_devices + 1):
        c, client_name, location_id, name = places[(d - 1) % len(places)]
        data.network_devices.append(network_device(
            d, f"SW-{d:05d}", client_id=c, client_name=client_name, location_id=location_id,
            location_name=name))
    monitors = ("Disk - Free Space C:", "Service - Spooler", "CPU - Usage", "Memory - Free")
    opened = datetime.fromisoformat("2025-06-02T08:00:00").replace(tzinfo=UTC).timestamp()
    for t in range(1, tickets + 1):
        host = data.computers[(t * 7 - 1) % len(data.computers)]
        monitor = monitors[t % len(monitors)]
        when = format_stamp(opened + t * 7)
        place = f"{host['Client']['Name']}\\{host['ComputerName']}"
        data.tickets.append(ticket(
            10000 + t, f"FAILED - {monitor} - {place} [CWA:{host['Id']}]",
            client_id=int(host["Client"]["Id"]), client_name=host["Client"]["Name"],
            location_id=host["Location"]["Id"], location_name=host["Location"]["Name"],
            computer_id=int(host["Id"]), computer_name=host["ComputerName"],
            status_id=2 if t % 5 == 0 else 1, status_name="Open" if t % 5 == 0 else "New",
            update_date=when, monitor_id=7000 + t % len(monitors),
            comments=[f"{monitor} FAILED on {place} at {host['Location']['Name']}."],
        ))
    return data
