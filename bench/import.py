"""Benchmark: importing a large Automate into alertd, then re-importing it unchanged (R5.4).

One run starts the local Automate server (`alertd.testing.automate_server`)
in its own process with N computers (a fifth of them servers) and M
printers, then, in this process:

1. the first import (`import all`: clients, sites, users, computers, one
   `/Computers/{id}/Printers` request per computer, routers) into a fresh
   database;
2. a re-import of the same, unchanged data;
3. the floor: the same HTTP requests (every computer page and every printer
   request) made with a bare httpx client and no processing at all, so the
   import is reported as a ratio against what the HTTP exchange alone costs
   on this machine in the same run.

It prints time, records per second, requests per second and peak RSS of
this process after each phase, and the server's peak RSS. Goals (issue 5):
first import under 60 s, re-import under half of that, peak RSS under
300 MB.

    .venv/bin/python bench/import.py                      # 50,000 computers, 10,000 printers
    .venv/bin/python bench/import.py --computers 5000 --printers 1000
    .venv/bin/python bench/import.py --database postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from alertd.assets.importer import Importer
from alertd.automate.client import COMPUTER_HEAVY_FIELDS, AutomateClient
from alertd.db.engine import create_engine, upgrade
from alertd.db.tables import Asset
from alertd.runtime import open_runtime
from alertd.settings import Settings
from alertd.testing.automate_server import DEFAULT_CLIENT_ID

PASSWORD = "bench-password"


def peak_rss_mb(pid: int | None = None) -> float:
    """Peak resident memory of this process (or ``pid``), in MB."""
    if pid is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "alertd.testing.automate_server", "--port", str(port),
        "--computers", str(args.computers), "--printers", str(args.printers),
        "--clients", str(args.clients), "--locations-per-client", "2",
        "--password", PASSWORD, "--quiet",
    ]
    server = subprocess.Popen(command)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("the local Automate server exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server
        except OSError:
            time.sleep(0.1)
    server.terminate()
    raise SystemExit("the local Automate server did not start within 120 s")


async def prepare_database(url: str | None, folder: Path) -> tuple[str, str | None]:
    """A fresh migrated database: a SQLite file, or a new database on the given PostgreSQL."""
    if url is None:
        path = folder / "bench.db"
        engine = create_engine(f"sqlite:///{path}")
        await upgrade(engine)
        await engine.dispose()
        return f"sqlite:///{path}", None
    name = f"alertd_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url)
    async with admin.connect() as connection:
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    target = make_url(url).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(target)
    await upgrade(engine)
    await engine.dispose()
    return target, name


async def drop_database(url: str, name: str) -> None:
    admin = create_engine(url)
    async with admin.connect() as connection:
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


def settings_for(database: str, port: int, args: argparse.Namespace) -> Settings:
    return Settings.model_validate({
        "database": {"url": database},
        "automate": {
            "url": f"http://127.0.0.1:{port}", "client_id": DEFAULT_CLIENT_ID,
            "username": "alertd-integrator", "password_env": "ALERTD_BENCH_AUTOMATE_PASSWORD",
            "max_concurrency": args.concurrency, "max_rate": args.rate,
            "import": {
                "default_site": "Unassigned",
                "asset_types": {"servers": "Server", "workstations": "Workstation",
                                "printers": "Printer", "routers": "Router"},
                "fields": [
                    {"kind": "servers", "from": "OperatingSystemName",
                     "to": {"asset_field": "os"}},
                    {"kind": "workstations", "from": "OperatingSystemName",
                     "to": {"asset_field": "os"}},
                    {"kind": "workstations", "from": "LastUserName",
                     "to": {"custom_field": "Last User", "create": True}},
                ],
            },
        },
    })


async def floor(port: int, args: argparse.Namespace) -> tuple[float, int]:
    """The same requests with a bare httpx client, no parsing or database: the HTTP limit."""
    base = f"http://127.0.0.1:{port}/cwa/api/v1"
    limits = httpx.Limits(max_connections=args.concurrency,
                          max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(limits=limits, headers={"ClientId": DEFAULT_CLIENT_ID}) as http:
        login = await http.post(f"{base}/apitoken",
                                json={"Username": "alertd-integrator", "Password": PASSWORD})
        http.headers["Authorization"] = f"Bearer {login.json()['AccessToken']}"
        started = time.perf_counter()
        ids: list[str] = []
        requests = 0
        for computer_type in ("Server", "Workstation"):
            page = 1
            while True:
                response = await http.get(f"{base}/Computers", params={
                    "page": page, "pageSize": 1000, "condition": f"Type = '{computer_type}'",
                    "orderBy": "Id asc", "excludeFields": ",".join(COMPUTER_HEAVY_FIELDS)})
                requests += 1
                items = response.json()
                ids.extend(item["Id"] for item in items)
                if len(items) < 1000:
                    break
                page += 1
        queue = list(reversed(ids))

        async def worker() -> None:
            nonlocal requests
            while queue:
                computer_id = queue.pop()
                await http.get(f"{base}/Computers/{computer_id}/Printers",
                               params={"page": 1, "pageSize": 1000})
                requests += 1

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        return time.perf_counter() - started, requests


async def bench(args: argparse.Namespace) -> None:
    os.environ["ALERTD_BENCH_AUTOMATE_PASSWORD"] = PASSWORD
    port = free_port()
    print(f"starting the local Automate: {args.computers} computers, {args.printers} printers, "
          f"{args.clients} clients ...", flush=True)
    server = start_server(port, args)
    try:
        with tempfile.TemporaryDirectory() as folder:
            database, created = await prepare_database(args.database, Path(folder))
            try:
                settings = settings_for(database, port, args)
                assert settings.automate is not None
                backend = make_url(database).get_backend_name()
                print(f"database: {backend}; max_concurrency={args.concurrency}, "
                      f"max_rate={args.rate}", flush=True)
                results: list[dict[str, Any]] = []
                async with open_runtime(settings, with_rules=False) as runtime, \
                        AutomateClient(settings.automate) as client:
                    for label in ("first import", "re-import"):
                        started = time.perf_counter()
                        report = await Importer(runtime, client).run("all")
                        seconds = time.perf_counter() - started
                        assert report.error is None, report.error
                        records = sum(k.total for k in report.kinds)
                        written = sum(k.created + k.updated for k in report.kinds)
                        results.append({"label": label, "seconds": seconds,
                                        "records": records, "written": written,
                                        "requests": report.requests,
                                        "rss": peak_rss_mb()})
                    async with runtime.sessions() as session:
                        assets = (await session.execute(
                            select(func.count()).select_from(Asset))).scalar_one()
                floor_seconds, floor_requests = await floor(port, args)
            finally:
                if created is not None and args.database is not None:
                    await drop_database(args.database, created)
        server_rss = peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)

    print(f"assets in the database after the run: {assets}")
    print(f"{'phase':<14}{'seconds':>9}{'records':>9}{'written':>9}{'rec/s':>9}"
          f"{'requests':>10}{'req/s':>8}{'peak RSS MB':>13}")
    for row in results:
        print(f"{row['label']:<14}{row['seconds']:>9.1f}{row['records']:>9}{row['written']:>9}"
              f"{row['records'] / row['seconds']:>9.0f}{row['requests']:>10}"
              f"{row['requests'] / row['seconds']:>8.0f}{row['rss']:>13.0f}")
    print(f"{'http floor':<14}{floor_seconds:>9.1f}{'':>9}{'':>9}{'':>9}{floor_requests:>10}"
          f"{floor_requests / floor_seconds:>8.0f}")
    first, again = results
    print(f"first import / http floor: {first['seconds'] / floor_seconds:.2f}x; "
          f"re-import / first import: {again['seconds'] / first['seconds']:.2f}; "
          f"server peak RSS: {server_rss:.0f} MB")
    goals = [
        ("first import under 60 s", first["seconds"] < 60),
        ("re-import under half the first", again["seconds"] < first["seconds"] / 2),
        ("peak RSS under 300 MB", max(r["rss"] for r in results) < 300),
    ]
    print("goals: " + "; ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in goals))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--computers", type=int, default=50_000)
    parser.add_argument("--printers", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=3,
                        help="automate.max_concurrency (a loopback server is fastest near 3)")
    parser.add_argument("--rate", default="100000/s",
                        help="automate.max_rate (real servers: keep it near 20/s)")
    parser.add_argument("--database", help="a PostgreSQL URL to bench on instead of SQLite")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
