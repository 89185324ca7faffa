"""The fixed vocabulary of the Automate import: kinds, Automate fields, alertd asset fields.

Field mappings in `alertd.yaml` (SPEC R5.3) name an Automate kind, one of
that kind's fields from the fixed lists below (the field names of the
published Automate records, `automate-api.md` §3), and a target: one of
alertd's standard asset fields or a custom field. Pure constants, so the
settings loader can validate mappings without touching the network.
"""

from __future__ import annotations

from typing import Literal

AutomateKind = Literal["servers", "workstations", "routers", "printers", "network_devices"]
"""The kinds of asset Automate has, as the settings name them."""

KINDS: tuple[AutomateKind, ...] = (
    "servers", "workstations", "routers", "printers", "network_devices",
)

COMPUTER_KINDS: tuple[AutomateKind, ...] = ("servers", "workstations")

AUTOMATE_KIND: dict[AutomateKind, str] = {
    "servers": "computer",
    "workstations": "computer",
    "routers": "router",
    "printers": "printer",
    "network_devices": "network_device",
}
"""Which Automate id space (the `assets.automate_kind` column) each kind lives in."""

COMPUTER_TYPE: dict[AutomateKind, str] = {"servers": "Server", "workstations": "Workstation"}
"""The `Type` value of `/Computers` records of each computer kind."""

_COMPUTER_FIELDS = (
    "Id", "ComputerName", "FriendlyName", "Type", "Status", "OperatingSystemName",
    "OperatingSystemVersion", "DomainName", "SerialNumber", "AssetTag", "AssetDate",
    "WarrantyEndDate", "BiosManufacturer", "BiosFlash", "MACAddress", "LocalIPAddress",
    "GatewayIPAddress", "LastUserName", "Comment", "RemoteAgentVersion",
    "RemoteAgentLastContact", "LastHeartbeat", "LastInventoryReceived", "DateAdded",
    "LastStartup", "TotalMemory", "IsVirtualMachine", "IsVirtualHost", "IsNetworkProbe",
    "PrimaryContactName", "Client.Name", "Location.Name", "VirusScanner.Name",
)

SOURCE_FIELDS: dict[AutomateKind, tuple[str, ...]] = {
    "servers": _COMPUTER_FIELDS,
    "workstations": _COMPUTER_FIELDS,
    "routers": ("Id", "ManufacturerName", "Model", "Version", "PortType", "Guid"),
    "printers": ("Id", "ComputerId", "Name", "PortName", "Resolution", "PaperTypes", "Features"),
    "network_devices": (
        "Id", "Name", "FriendlyName", "Description", "LocalIPAddress", "MACAddress", "Status",
        "DeviceType.Name", "DetectionTemplateName", "ManufacturerName", "ModelName",
        "LastContact", "DateAdded", "ProbeName", "Location.Name", "Client.Name",
    ),
}
"""The Automate fields each kind offers to field mappings (dotted names reach into objects)."""

SECRET_FIELDS: dict[AutomateKind, frozenset[str]] = {
    "routers": frozenset({"Username", "Password"}),
    "network_devices": frozenset({"SNMPCommunityGet", "SNMPCommunitySet",
                                  "ExternalSystemCredentials"}),
}
"""Credentials Automate serves that alertd never reads, stores or logs."""

STANDARD_FIELDS: tuple[str, ...] = (
    "name", "serial", "os", "os_version", "domain", "ip_address", "gateway", "mac_address",
    "manufacturer", "model", "last_user", "status", "description", "warranty_end",
    "purchase_date", "contact",
)
"""alertd's standard asset fields; `name` and `serial` are columns, the rest live in `fields`."""

COLUMN_FIELDS = frozenset({"name", "serial"})

BUILT_IN: dict[AutomateKind, dict[str, str]] = {
    "servers": {"name": "ComputerName", "serial": "SerialNumber"},
    "workstations": {"name": "ComputerName", "serial": "SerialNumber"},
    "routers": {},
    "printers": {"name": "Name"},
    "network_devices": {"name": "Name"},
}
"""Standard fields every import fills before the configured mappings (which may override them).

The asset tag is not here: it is fixed by the guide, the serial number for
servers and workstations and the `Guid` for routers.
"""

TAG_SOURCE: dict[AutomateKind, str | None] = {
    "servers": "SerialNumber",
    "workstations": "SerialNumber",
    "routers": "Guid",
    "printers": None,
    "network_devices": None,
}
