"""Records for the local Automate server, shaped after the published OpenAPI subset.

Builders make one record of each kind with the field names, nesting and id
types of the contract (`LabTech.Models.Computer.Id` is a string,
`Location.Id` a number, and so on), so every record validates against the
subset. `AutomateData` holds a data set; `generate()` makes a large,
deterministic one for benchmarks and demos. Router records carry a
username and password on purpose: the importer must never keep them.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any

Record = dict[str, Any]

STAMP = "2025-06-02T10:14:55"


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
    version: int = 0
    """Bumped by `changed()` so the server drops its cached query results."""

    def changed(self) -> None:
        """Say that records were edited in place."""
        self.version += 1

    def add_printer(self, record: Record) -> None:
        """Attach a printer to its computer."""
        self.printers.setdefault(str(record["ComputerId"]), []).append(record)

    @property
    def printer_count(self) -> int:
        """How many printers all computers have together."""
        return sum(len(items) for items in self.printers.values())


def generate(*, clients: int = 3, locations_per_client: int = 2, contacts_per_location: int = 2,
             computers: int = 20, servers_every: int = 5, printers: int = 5,
             routers: bool = True, network_devices: int = 0, seed: int = 1) -> AutomateData:
    """A deterministic data set of the given size (computers spread over all locations)."""
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
    return data
