"""The Automate estate the benchmarks' alert mail comes from, and seeding it into alertd.

Five clients with their sites and computers, and seven monitors; each
benchmark picks how many computers a client has. Seeding leaves the
database as an Automate import would, so asset resolution really hits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from alertd.assets.store import add_asset, add_client, add_site
from alertd.runtime import Runtime


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """A client as Automate names it, with its sites."""

    name: str
    automate_id: int
    prefix: str
    domain: str
    sites: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Computer:
    """One Automate computer that alerts."""

    automate_id: int
    host: str
    client: ClientSpec
    site: str
    server: bool


@dataclass(frozen=True, slots=True)
class Monitor:
    """An Automate monitor: id, name, field, and the result it reports either way."""

    monitor_id: int
    name: str
    field: str
    failed: str
    success: str


CLIENTS = (
    ClientSpec("Northwind Traders", 41, "NW", "northwind.local", ("Head Office", "Warehouse")),
    ClientSpec("Contoso Ltd", 42, "CON", "contoso.local", ("HQ", "Branch Leeds", "Branch York")),
    ClientSpec("Fabrikam Inc", 43, "FAB", "fabrikam.local", ("Main Plant",)),
    ClientSpec("Tailspin Toys", 44, "TT", "tailspin.local", ("Store 1", "Store 2")),
    ClientSpec("Adventure Works", 45, "AW", "adventure-works.local", ("Office",)),
)
MONITORS = (
    Monitor(8101, "Disk - Free Space C:", "C:", "3.2 GB free (4%)", "41.7 GB free (52%)"),
    Monitor(8102, "Disk - Free Space D:", "D:", "1.1 GB free (2%)", "120.4 GB free (61%)"),
    Monitor(8117, "Service - Print Spooler", "Spooler", "Stopped", "Running"),
    Monitor(8121, "CPU - Usage", "CPU", "97% for 15 minutes", "12%"),
    Monitor(8122, "Memory - Available", "RAM", "212 MB available", "5.1 GB available"),
    Monitor(8140, "Windows Update - Pending Reboot", "Reboot", "Reboot pending for 9 days",
            "No reboot pending"),
    Monitor(8155, "Antivirus - Definitions Age", "Definitions", "Definitions 6 days old",
            "Definitions current"),
)


def computers(sizes: Sequence[int], *, first_id: int, servers: int) -> list[Computer]:
    """``sizes[i]`` computers for client i: ``servers`` servers, then workstations."""
    out: list[Computer] = []
    next_id = first_id
    for client, size in zip(CLIENTS, sizes, strict=True):
        for number in range(1, size + 1):
            server = number <= servers
            host = f"{client.prefix}-{'SRV' if server else 'WS'}{number:03d}"
            site = client.sites[number % len(client.sites)]
            out.append(Computer(next_id, host, client, site, server))
            next_id += 1
    return out


async def seed(runtime: Runtime, fleet: Sequence[Computer]) -> None:
    """The clients, sites and computers the mails name, as an Automate import leaves them."""
    now = runtime.clock.now()
    async with runtime.sessions.begin() as session:
        clients: dict[str, int] = {}
        sites: dict[tuple[str, str], int] = {}
        for spec in CLIENTS:
            clients[spec.name] = await add_client(
                session, spec.name, automate_id=str(spec.automate_id), now=now)
            for site in spec.sites:
                sites[spec.name, site] = await add_site(session, clients[spec.name], site,
                                                        now=now)
        for computer in fleet:
            await add_asset(
                session, computer.host, kind="server" if computer.server else "workstation",
                now=now, automate_kind="computer", automate_id=str(computer.automate_id),
                client_id=clients[computer.client.name],
                site_id=sites[computer.client.name, computer.site],
            )
