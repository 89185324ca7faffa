"""The small Automate data set the import tests run against, and what it must become.

Two clients (Contoso, Northwind) with three locations, four contacts (one
without a location), five computers (two servers), three printers on two
computers, two location routers (with credentials that must never be
stored) and one network device. Ids follow the contract's types: client and
computer ids are strings on the wire, location, router and printer ids
numbers.
"""

from __future__ import annotations

from alertd.testing import automate_data as build
from alertd.testing.automate_data import AutomateData

ROUTER_PASSWORD = "router-secret-do-not-store"
CONTOSO_ROUTER_GUID = "0f6c2a9e-7a1b-4d3c-9e55-2b8d1c4f7a10"
NORTHWIND_ROUTER_GUID = "6d1f3a52-0c8b-4e7e-a8b5-3c2d9e1f0a11"


def small() -> AutomateData:
    """A fresh copy of the small data set (tests may edit it)."""
    contoso_router = build.router(7, guid=CONTOSO_ROUTER_GUID, model="ISR 1100",
                                  password=ROUTER_PASSWORD)
    northwind_router = build.router(8, guid=NORTHWIND_ROUTER_GUID, manufacturer="Ubiquiti",
                                    model="EdgeRouter 4", password=ROUTER_PASSWORD)
    data = AutomateData(
        clients=[build.client(27, "Contoso Ltd"), build.client(41, "Northwind Traders")],
        locations=[
            build.location(41, "Bristol HQ", 27, "Contoso Ltd", router_record=contoso_router),
            build.location(42, "Leeds Branch", 27, "Contoso Ltd"),
            build.location(51, "Head Office", 41, "Northwind Traders",
                           router_record=northwind_router),
        ],
        contacts=[
            build.contact(301, "Alice", "Morgan", client_id=27, client_name="Contoso Ltd",
                          location_id=41, location_name="Bristol HQ"),
            build.contact(302, "Ben", "Okafor", client_id=27, client_name="Contoso Ltd",
                          location_id=42, location_name="Leeds Branch"),
            build.contact(311, "Carol", "Diaz", client_id=41, client_name="Northwind Traders",
                          location_id=51, location_name="Head Office"),
            build.contact(312, "Dan", "Ito", client_id=41, client_name="Northwind Traders",
                          location_id=None, location_name=None),
        ],
        computers=[
            build.computer(1042, "CON-DC01", type_="Server", client_id=27,
                           client_name="Contoso Ltd", location_id=41, location_name="Bristol HQ",
                           serial="CZJ1234ABC",
                           os="Microsoft Windows Server 2022 Standard x64",
                           last_user="CONTOSO\\administrator"),
            build.computer(1187, "CON-WS-014", client_id=27, client_name="Contoso Ltd",
                           location_id=41, location_name="Bristol HQ", serial="5CG2345XYZ",
                           last_user="CONTOSO\\alice.morgan"),
            build.computer(1203, "CON-LT-022", client_id=27, client_name="Contoso Ltd",
                           location_id=42, location_name="Leeds Branch", serial="PF3ABCD1",
                           os="Microsoft Windows 10 Pro x64", last_user="CONTOSO\\ben.okafor"),
            build.computer(2201, "NW-FS01", type_="Server", client_id=41,
                           client_name="Northwind Traders", location_id=51,
                           location_name="Head Office", serial="NW-SRV-0001",
                           os="Microsoft Windows Server 2019 Standard x64"),
            build.computer(2305, "NW-WS17", client_id=41, client_name="Northwind Traders",
                           location_id=51, location_name="Head Office", serial="NW-WS-0017",
                           last_user="NORTHWIND\\carol"),
        ],
        routers=[contoso_router, northwind_router],
        network_devices=[
            build.network_device(5310, "CON-SW01", client_id=27, client_name="Contoso Ltd",
                                 location_id=41, location_name="Bristol HQ"),
        ],
    )
    data.add_printer(build.printer(1, 1187, "HP LaserJet M404 (Bristol Office)"))
    data.add_printer(build.printer(2, 1187, "Microsoft Print to PDF", port="PORTPROMPT:"))
    data.add_printer(build.printer(1, 2201, "Kyocera ECOSYS M2540dn", port="10.51.0.20"))
    return data


IMPORT = {
    "default_site": "Unassigned",
    "top_level": "Managed Clients",
    "asset_types": {"servers": "Server", "workstations": "Workstation", "routers": "Router",
                    "printers": "Printer"},
    "fields": [
        {"kind": "servers", "from": "OperatingSystemName", "to": {"asset_field": "os"}},
        {"kind": "workstations", "from": "OperatingSystemName", "to": {"asset_field": "os"}},
        {"kind": "workstations", "from": "LastUserName",
         "to": {"custom_field": "Last User", "create": True}},
        {"kind": "printers", "from": "PortName", "to": {"asset_field": "ip_address"}},
        {"kind": "routers", "from": "Version", "to": {"custom_field": "Firmware",
                                                        "create": True}},
    ],
}
"""The `automate.import` settings most tests use."""

EXPECTED_ASSETS = {
    # (automate_kind, automate_id): (name, kind, asset_tag, client, site, parent automate id)
    ("computer", "1042"): ("CON-DC01", "Server", "CZJ1234ABC", "Contoso Ltd", "Bristol HQ",
                           None),
    ("computer", "1187"): ("CON-WS-014", "Workstation", "5CG2345XYZ", "Contoso Ltd",
                           "Bristol HQ", None),
    ("computer", "1203"): ("CON-LT-022", "Workstation", "PF3ABCD1", "Contoso Ltd",
                           "Leeds Branch", None),
    ("computer", "2201"): ("NW-FS01", "Server", "NW-SRV-0001", "Northwind Traders",
                           "Head Office", None),
    ("computer", "2305"): ("NW-WS17", "Workstation", "NW-WS-0017", "Northwind Traders",
                           "Head Office", None),
    ("printer", "1187:1"): ("HP LaserJet M404 (Bristol Office)", "Printer", None,
                            "Contoso Ltd", "Bristol HQ", "1187"),
    ("printer", "1187:2"): ("Microsoft Print to PDF", "Printer", None, "Contoso Ltd",
                            "Bristol HQ", "1187"),
    ("printer", "2201:1"): ("Kyocera ECOSYS M2540dn", "Printer", None, "Northwind Traders",
                            "Head Office", "2201"),
    ("router", "7"): ("Cisco Systems ISR 1100 (Bristol HQ)", "Router", CONTOSO_ROUTER_GUID,
                      "Contoso Ltd", "Bristol HQ", None),
    ("router", "8"): ("Ubiquiti EdgeRouter 4 (Head Office)", "Router", NORTHWIND_ROUTER_GUID,
                      "Northwind Traders", "Head Office", None),
}
