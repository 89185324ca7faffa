"""How fast alertd's SMTP listener accepts alert mail, as a ratio to a do-nothing aiosmtpd sink.

The limit is an aiosmtpd `SMTP` server whose DATA hook answers "250 OK" and
keeps nothing, run like alertd runs its listener (`loop.create_server`, the
same aiosmtpd options where they cost CPU). Against it this script measures
`alertd run` itself: a child process on a fresh SQLite database with the
bundled rules and default inbox settings, so every 250 comes only after the
mail is committed to the durable inbox, and the inbox worker turns the mail
into tickets in the same process while it is being received, as in
production. The database is seeded with the clients, sites and computers the
mails name first, so asset resolution really hits.

Both servers get the same load from a client written here on raw asyncio
streams (greeting, EHLO, then MAIL FROM / RCPT TO / DATA / dot-stuffed body,
one command at a time, no pipelining), like an MTA relaying to them:

- **Throughput**: the mails over `--connections` connections (8), as fast as
  the server answers; mails acknowledged with 250 per second of wall time
  from the first connect to the last 250.
- **Latency at a fixed offered rate**: a second, distinct set of as many mails,
  mail i released at t0 + i / `--rate` (500/s) to whichever connection is
  free; latency runs from the scheduled release to the 250, so queueing
  counts, as the sending MTA sees it. p50 and p99.

The mails are distinct ~2 KB Automate alerts in the tagged template
(`tests/mails.py`), padded with the Received headers and `Key: value` lines
a relayed Automate mail carries, from several hundred computers; all are
built before anything is timed. Every reply must be 250; anything else is
counted and reported.

A third server, for information, is the same sink reading MAIL FROM and RCPT
TO paths as alertd's listener does (one regular expression for the plain
`<local@domain>` form instead of the stdlib header parser aiosmtpd runs per
path): alertd's rate against it is what the durable accept itself costs next
to the same dialogue, printed below the table. The goal's ratio stays against
the stock sink.

The sinks and alertd run interleaved, `--rounds` times, each round a fresh
child process (and for alertd a fresh database), so the noise of this
machine hits both alike (TESTING-NOTES.md); the table shows medians and the
ratio is the median over rounds of (alertd rate / sink rate of the same
round). After its throughput phase alertd's inbox is read (through alertd's
own code) to show how far its worker had got; before the latency phase the
worker is let finish, and at the end every mail that got 250 must be in the
database exactly once and processed. Anything off is printed and the exit
status is 1.

    .venv/bin/python bench/smtp.py [--mails 5000] [--rounds 3] [--rate 500] [--connections 8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aiosmtpd.smtp import SMTP  # noqa: E402
from common import fmt_rate, median_of, render, version_of  # noqa: E402
from fleet import CLIENTS, MONITORS, Computer, Monitor, seed  # noqa: E402
from fleet import computers as fleet_computers  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from alertd.db.tables import Message, Ticket  # noqa: E402
from alertd.runtime import open_runtime  # noqa: E402
from alertd.settings import Settings, SmtpListenerSettings, bundled_rules_dir  # noqa: E402
from alertd.sources.smtp import MAX_LINE, PlainPathReader  # noqa: E402
from tests.mails import automate_tagged  # noqa: E402

SINK_READY = "BENCH-SINK-PORT "
"""The sink child's first line on stdout, with the port it listens on."""
SEED = 20241125
"""Every run generates the same mail stream."""
MAIL_SIZE = 2048
"""Bytes per mail (each is padded to this, give or take a byte)."""
SENDER = "automate@example.invalid"
"""The From of the bundled Automate rules."""
RECIPIENT = "alerts@helpdesk.example.net"
HELO = b"EHLO relay.helpdesk.example.net\r\n"
DRAIN_TIMEOUT_S = 300.0
"""Longest wait for alertd's worker to finish the mail it was given."""

GOAL_RATIO = 0.85
"""alertd accept rate / sink accept rate, same load, same round."""
GOAL_P99_MS = 25.0
"""p99 accept latency at the fixed offered rate."""

SINK = "sink"
SINK_PATHS = "sink+p"
ALERTD = "alertd"
LABELS = {SINK: "aiosmtpd sink (limit)", SINK_PATHS: "sink with alertd's path reader",
          ALERTD: "alertd run (SQLite)"}


# -- the mail stream ------------------------------------------------------------------


DESCRIPTION = (
    "This alert was generated by a ConnectWise Automate remote monitor. The monitor runs on "
    "the agent at the interval set in its monitor template and reports a FAILED state when "
    "the condition is outside the configured threshold, and a SUCCESS state once the "
    "condition has returned to normal. Please review the computer, the recent event logs "
    "and any scheduled maintenance before acting on this alert, and record what was done "
    "in the ticket so the next engineer on call can follow the history of this device. "
    "Alerts for devices in a maintenance window are suppressed by the Automate server. "
)


def computers() -> list[Computer]:
    """The 400 computers of all clients, a few servers then workstations each."""
    return fleet_computers((140, 110, 70, 50, 30), first_id=2001, servers=6)


@dataclass
class Workload:
    """The DATA payloads of both phases, ready to write, and what they are made of."""

    burst: list[bytes]
    """Distinct mails for the throughput phase."""
    paced: list[bytes]
    """Another, distinct set for the latency phase."""
    computers: list[Computer]
    sizes: list[int]
    statuses: Counter[str] = field(default_factory=Counter)


def generate(count: int) -> Workload:
    """2 × ``count`` distinct alert mails, dot-stuffed and terminated, in sending order.

    Mostly FAILED repeats of the problems in progress, about one in ten a
    SUCCESS recovery, and new problems now and then; Dates increase and every
    Message-ID is unique.
    """
    rng = random.Random(SEED)
    fleet = computers()
    total = 2 * count
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=3 * total + 600)
    failing: list[tuple[int, int]] = []
    failing_set: set[tuple[int, int]] = set()
    sizes: list[int] = []
    statuses: Counter[str] = Counter()
    payloads: list[bytes] = []
    for index in range(total):
        at += timedelta(seconds=rng.randint(1, 5))
        if rng.random() < 0.15 or not failing:
            pair = (rng.randrange(len(fleet)), rng.randrange(len(MONITORS)))
            status = "SUCCESS" if pair in failing_set and rng.random() < 0.5 else "FAILED"
        else:
            pair = rng.choice(failing)
            status = "SUCCESS" if rng.random() < 0.1 else "FAILED"
        if status == "FAILED" and pair not in failing_set:
            failing.append(pair)
            failing_set.add(pair)
        elif status == "SUCCESS" and pair in failing_set:
            failing.remove(pair)
            failing_set.discard(pair)
        mail = _mail(fleet[pair[0]], MONITORS[pair[1]], status, at, index, rng)
        sizes.append(len(mail))
        statuses[status] += 1
        payloads.append(data_payload(mail))
    return Workload(payloads[:count], payloads[count:], fleet, sizes, statuses)


def _mail(computer: Computer, monitor: Monitor, status: str, at: datetime, index: int,
          rng: random.Random) -> bytes:
    """One tagged Automate alert, as it arrives relayed, padded to about MAIL_SIZE bytes."""
    client = computer.client
    stamp = at.strftime("%a, %d %b %Y %H:%M:%S +0000")
    queue_id = f"{rng.getrandbits(40):010X}"
    received = (
        f"Received: from rmm.example.invalid (rmm.example.invalid [192.0.2.10])\r\n"
        f"\tby mx1.helpdesk.example.net (Postfix) with ESMTPS id {queue_id}\r\n"
        f"\tfor <{RECIPIENT}>; {stamp}\r\n"
        f"Received: from AUTOMATE01 (127.0.0.1) by AUTOMATE01 (127.0.0.1)\r\n"
        f"\twith Microsoft SMTP Server id 15.1.2507.6; {stamp}\r\n"
        f"Return-Path: <{SENDER}>\r\n"
        f"X-Mailer: ConnectWise Automate 2023.12.0.63\r\n"
        f"X-Automate-MonitorID: {monitor.monitor_id}\r\n"
        f"X-Priority: 3"
    )
    mail = automate_tagged(
        status, date=at, computer_id=computer.automate_id, monitor=monitor.name,
        field=monitor.field, client=client.name, client_id=client.automate_id,
        host=computer.host, site=computer.site,
        result=monitor.failed if status == "FAILED" else monitor.success, sender=SENDER,
        message_id=f"smtp-bench.{SEED}.{index:07d}.{queue_id}", extra_headers=received,
    )
    octet = computer.automate_id % 250 + 2
    extra = [
        f"When: {at:%m/%d/%Y %I:%M:%S %p}",
        f"MonitorID: {monitor.monitor_id}",
        "Operating System: " + ("Microsoft Windows Server 2019 Standard x64" if computer.server
                                else "Microsoft Windows 11 Pro x64"),
        "Agent Version: 2023.12.0.63",
        f"Domain: {client.domain}",
        f"Local IP Address: 10.{client.automate_id}.{octet // 100}.{octet}",
        f"Router Address: 203.0.113.{client.automate_id}",
        f"Last Logged In User: {client.prefix}\\user{computer.automate_id % 97:02d}",
        f"Last Contact: {at - timedelta(seconds=rng.randint(5, 300)):%m/%d/%Y %I:%M:%S %p}",
        "Manufacturer: Dell Inc.",
        "Model: " + ("PowerEdge R650" if computer.server else "OptiPlex 7010"),
        f"Serial Number: {rng.getrandbits(28):07X}",
        f"Alert Template: {client.prefix} - Default - Create Ticket",
        "Ticket Category: Monitoring",
    ]
    head, _, body = mail.partition(b"\r\n\r\n")
    fields_end = body.index(b"\r\n\r\n")
    body = (body[:fields_end] + b"\r\n" + "\r\n".join(extra).encode() + body[fields_end:])
    mail = head + b"\r\n\r\n" + body
    return mail + _padding(MAIL_SIZE - len(mail))


def _padding(room: int) -> bytes:
    """A description paragraph of exactly ``room`` bytes (nothing when it does not fit)."""
    if room < 4:
        return b""
    lines = [b""]  # the blank line that starts the paragraph
    room -= 2
    for line in textwrap.wrap(DESCRIPTION * (1 + room // len(DESCRIPTION)), 72):
        if room < 3:
            break
        text = line[: room - 2].rstrip()
        lines.append(text.encode())
        room -= len(text) + 2
    return b"\r\n".join(lines) + b"\r\n"


def data_payload(mail: bytes) -> bytes:
    """``mail`` as sent after DATA: CRLF lines, dot-stuffed, ending in `.` on its own line."""
    if not mail.endswith(b"\r\n"):
        mail += b"\r\n"
    stuffed = mail.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed + b".\r\n"


# -- the sink: a child process ---------------------------------------------------------


class _SinkSession(SMTP):
    line_length_limit = MAX_LINE
    """As alertd's sessions."""


class _SinkPathsSession(PlainPathReader, _SinkSession):
    """The sink, reading MAIL / RCPT paths as alertd's listener does: what alertd's durable
    accept costs next to the same dialogue."""


class SinkHandler:
    """Accepts every mail and keeps nothing."""

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        return "250 OK"


async def serve_sink(kind: str) -> None:
    """Serve on a free loopback port, in alertd's style, until SIGTERM."""
    defaults = SmtpListenerSettings()
    handler = SinkHandler()
    loop = asyncio.get_running_loop()
    session = _SinkPathsSession if kind == SINK_PATHS else _SinkSession
    server = await loop.create_server(
        lambda: session(
            handler, data_size_limit=defaults.max_size, enable_SMTPUTF8=True,
            decode_data=False, ident="bench-sink", timeout=defaults.timeout.total_seconds(),
        ),
        "127.0.0.1", 0,
    )
    stopping = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    print(SINK_READY + str(server.sockets[0].getsockname()[1]), flush=True)
    await stopping.wait()
    server.close()


# -- the servers under test, seen from the parent --------------------------------------


@dataclass
class Target:
    """A server child process: the sink or `alertd run`."""

    kind: str
    process: subprocess.Popen[bytes]
    port: int
    directory: Path
    settings: Settings | None = None
    """alertd's database and rules, to read its inbox."""
    log_path: Path | None = None

    def cpu_seconds(self) -> float:
        """User + system CPU the child has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> float | None:
        """The child's peak resident set size (VmHWM), while it still runs."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return None

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM and wait for the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(30)
            return -9


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sink(directory: Path, kind: str) -> Target:
    """The sink (``kind``: SINK or SINK_PATHS) in a fresh interpreter; returns once it listens."""
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--child-sink", kind],
        stdout=subprocess.PIPE, stderr=(directory / "sink.err").open("wb"), cwd=REPO,
    )
    assert process.stdout is not None
    first = process.stdout.readline().decode()
    if not first.startswith(SINK_READY):
        process.kill()
        process.wait(30)
        raise RuntimeError(f"the sink did not start: {(directory / 'sink.err').read_text()}")
    return Target(kind, process, int(first.removeprefix(SINK_READY)), directory)


def alertd_config(directory: Path, port: int) -> dict[str, Any]:
    """`alertd.yaml` (as JSON) for one round: fresh SQLite file, bundled rules, defaults."""
    return {
        "database": {"url": f"sqlite:///{directory / 'alertd.db'}"},
        "rules": {"dir": str(bundled_rules_dir())},
        "smtp": [{"name": "main", "listen": f"127.0.0.1:{port}",
                  "recipients": [RECIPIENT, "@alerts.example.net"]}],
        "http": None,
        "logging": {"level": "info", "format": "json"},
    }


def start_alertd(directory: Path, fleet: Sequence[Computer]) -> Target:
    """Seed a fresh database, start `alertd run` on it and wait for `daemon.ready`.

    Its JSON log goes to a file in the round's directory, read for
    `daemon.ready` and, after the round, for warnings and errors: the
    parent spends no CPU on it while it is measuring.
    """
    port = free_port()
    config = alertd_config(directory, port)
    settings = Settings.model_validate({k: config[k] for k in ("database", "rules")})
    asyncio.run(_seed(settings, fleet))
    config_path = directory / "alertd.yaml"
    config_path.write_text(json.dumps(config, indent=2))
    log_path = directory / "alertd.log"
    environment = {k: v for k, v in os.environ.items()
                   if k not in {"ALERTD_DATABASE_URL", "ALERTD_CONFIG", "ALERTD_RULES_DIR"}}
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "alertd", "--config", str(config_path), "run"],
            stdout=log_file, stderr=subprocess.STDOUT, env=environment, cwd=directory,
        )
    target = Target(ALERTD, process, port, directory, settings, log_path)
    deadline = time.monotonic() + 60
    while b'"daemon.ready"' not in log_path.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            target.stop()
            tail = log_path.read_text(errors="replace").strip().splitlines()[-20:]
            raise RuntimeError("alertd run did not become ready:\n" + "\n".join(tail))
        time.sleep(0.02)
    return target


async def _seed(settings: Settings, fleet: Sequence[Computer]) -> None:
    """The clients, sites and computers the mails name, as an Automate import leaves them."""
    async with open_runtime(settings, with_rules=False) as runtime:
        await seed(runtime, fleet)


def log_problems(path: Path) -> Counter[str]:
    """alertd's warning and error lines, counted by event."""
    found: Counter[str] = Counter()
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if '"level": "warning"' not in line and '"level": "error"' not in line:
                continue
            try:
                found[str(json.loads(line).get("event"))] += 1
            except json.JSONDecodeError:
                found["(not json)"] += 1
    return found


# -- the load: an SMTP client on raw asyncio streams ------------------------------------


class SmtpError(Exception):
    """The server closed the connection or answered something unexpected outside a mail."""


class Client:
    """One SMTP connection, one command at a time (no pipelining), as an MTA relays."""

    MAIL = f"MAIL FROM:<{SENDER}>\r\n".encode()
    RCPT = f"RCPT TO:<{RECIPIENT}>\r\n".encode()

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Client:
        """Connect, read the greeting, say EHLO."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        code, text = await client.reply()
        if code != 220:
            raise SmtpError(f"greeting: {text}")
        code, text = await client.command(HELO)
        if code != 250:
            raise SmtpError(f"EHLO: {text}")
        return client

    async def reply(self) -> tuple[int, str]:
        """One reply, all its lines; the code and the last line."""
        while True:
            line = await self.reader.readline()
            if not line.endswith(b"\n"):
                raise SmtpError("connection closed")
            if line[3:4] != b"-":
                return int(line[:3]), line.rstrip().decode(errors="replace")

    async def command(self, line: bytes) -> tuple[int, str]:
        """Send one command and read its reply."""
        self.writer.write(line)
        return await self.reply()

    async def send(self, payload: bytes) -> tuple[int, str]:
        """One mail; the reply to its data, or the first refusal before it."""
        for line, expected in ((self.MAIL, 250), (self.RCPT, 250), (b"DATA\r\n", 354)):
            code, text = await self.command(line)
            if code != expected:
                await self.command(b"RSET\r\n")
                return code, text
        self.writer.write(payload)
        return await self.reply()

    async def close(self) -> None:
        """QUIT and hang up."""
        with contextlib.suppress(SmtpError, OSError):
            await self.command(b"QUIT\r\n")
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


def _refusal(text: str) -> str:
    """A reply without the parts that differ per mail (queue ids)."""
    return text.split(" queued as ")[0][:80]


async def burst(port: int, payloads: Sequence[bytes], connections: int) -> dict[str, Any]:
    """Throughput: every mail, ``connections`` at a time, as fast as the server answers."""
    pending = iter(range(len(payloads)))
    refused: Counter[str] = Counter()
    acked = 0
    last_ack = 0.0

    async def connection() -> None:
        nonlocal acked, last_ack
        client = await Client.open(port)
        try:
            for index in pending:
                code, text = await client.send(payloads[index])
                if code == 250:
                    acked += 1
                    last_ack = time.perf_counter()
                else:
                    refused[_refusal(text)] += 1
        finally:
            await client.close()

    started = time.perf_counter()
    outcomes = await asyncio.gather(*(connection() for _ in range(connections)),
                                    return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            refused[f"connection lost: {type(outcome).__name__}: {outcome}"] += 1
    elapsed = (last_ack or time.perf_counter()) - started
    return {"acked": acked, "refused": dict(refused),
            "unsent": len(payloads) - acked - sum(refused.values()),
            "seconds": elapsed, "rate": acked / elapsed if acked else 0.0}


async def paced(port: int, payloads: Sequence[bytes], connections: int,
                rate: float) -> dict[str, Any]:
    """Latency: mail i released at t0 + i / rate to whichever connection is free."""
    clients = [await Client.open(port) for _ in range(connections)]
    loop = asyncio.get_running_loop()
    released: asyncio.Queue[int | None] = asyncio.Queue()
    latencies: list[float] = []
    refused: Counter[str] = Counter()
    count = len(payloads)
    t0 = loop.time() + 0.05
    last_reply = t0

    async def release() -> None:
        index = 0
        while index < count:
            due = min(count, int((loop.time() - t0) * rate) + 1)
            while index < due:
                released.put_nowait(index)
                index += 1
            if index < count:
                await asyncio.sleep(max(0.0, t0 + index / rate - loop.time()))
        for _ in clients:
            released.put_nowait(None)

    async def work(client: Client) -> None:
        nonlocal last_reply
        try:
            while (index := await released.get()) is not None:
                code, text = await client.send(payloads[index])
                last_reply = loop.time()
                if code == 250:
                    latencies.append(last_reply - (t0 + index / rate))
                else:
                    refused[_refusal(text)] += 1
        finally:
            await client.close()

    outcomes = await asyncio.gather(release(), *(work(c) for c in clients),
                                    return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            refused[f"connection lost: {type(outcome).__name__}: {outcome}"] += 1
    latencies.sort()
    return {"acked": len(latencies), "refused": dict(refused),
            "unsent": count - len(latencies) - sum(refused.values()),
            "offered": rate, "achieved": len(latencies) / max(last_reply - t0, 1e-9),
            "p50_ms": percentile(latencies, 0.50) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000,
            "max_ms": (latencies[-1] if latencies else 0.0) * 1000}


def percentile(ordered: Sequence[float], share: float) -> float:
    """Nearest-rank percentile of sorted values (0 when there are none)."""
    if not ordered:
        return 0.0
    rank = max(1, min(len(ordered), round(share * len(ordered) + 0.5)))
    return ordered[rank - 1]


# -- alertd's inbox, read through its own code -----------------------------------------


async def inbox_state(settings: Settings) -> dict[str, Any]:
    """Messages by state, and tickets (and how many are linked to no asset)."""
    async with (open_runtime(settings, with_rules=False, check_schema=False) as runtime,
                runtime.sessions() as session):
        states: dict[str, int] = {str(state): int(n) for state, n in (await session.execute(
            select(Message.state, func.count()).group_by(Message.state))).all()}
        tickets = (await session.execute(select(func.count()).select_from(Ticket))).scalar_one()
        unlinked = (await session.execute(
            select(func.count()).select_from(Ticket).where(Ticket.asset_id.is_(None))
        )).scalar_one()
    waiting = sum(n for state, n in states.items() if state in {"received", "processing"})
    return {"states": states, "messages": sum(states.values()), "waiting": waiting,
            "processed": sum(states.values()) - waiting, "tickets": tickets,
            "unlinked": unlinked}


async def wait_drained(settings: Settings, limit_s: float) -> tuple[dict[str, Any], float]:
    """The inbox once nothing waits any more (or at the timeout), and how long that took."""
    started = time.perf_counter()
    while True:
        state = await inbox_state(settings)
        elapsed = time.perf_counter() - started
        if not state["waiting"] or elapsed > limit_s:
            return state, elapsed
        await asyncio.sleep(0.1)


# -- one round of one server -----------------------------------------------------------


def measure(kind: str, workload: Workload, connections: int, rate: float) -> dict[str, Any]:
    """Start a fresh server, run the throughput and latency phases on it, stop it."""
    with tempfile.TemporaryDirectory(prefix="alertd-bench-smtp-") as name:
        directory = Path(name)
        target = (start_alertd(directory, workload.computers) if kind == ALERTD
                  else start_sink(directory, kind))
        try:
            result = asyncio.run(_phases(target, workload, connections, rate))
            result["peak_rss_mb"] = target.peak_rss_mb()
        finally:
            status = target.stop()
        result["exit_status"] = status
        if target.log_path is not None:
            result["log_problems"] = dict(log_problems(target.log_path))
    result["problems"] = _problems(kind, result, len(workload.burst) + len(workload.paced))
    result["ok"] = not result["problems"]
    return result


async def _phases(target: Target, workload: Workload, connections: int,
                  rate: float) -> dict[str, Any]:
    cpu_before, client_before = target.cpu_seconds(), _own_cpu()
    throughput = await burst(target.port, workload.burst, connections)
    cpu = target.cpu_seconds() - cpu_before
    client_cpu = _own_cpu() - client_before
    result: dict[str, Any] = {
        "kind": target.kind, "throughput": throughput, "rate": throughput["rate"],
        "server_cpu_ms": cpu * 1000 / max(throughput["acked"], 1),
        "server_cpu_share": cpu / throughput["seconds"],
        "client_cpu_share": client_cpu / throughput["seconds"],
    }
    if target.settings is not None:
        result["after_burst"] = await inbox_state(target.settings)
        drained, waited = await wait_drained(target.settings, DRAIN_TIMEOUT_S)
        result["burst_drained_after_s"] = waited
        result["after_drain"] = drained
    latency = await paced(target.port, workload.paced, connections, rate)
    result["latency"] = latency
    result["p50_ms"], result["p99_ms"] = latency["p50_ms"], latency["p99_ms"]
    if target.settings is not None:
        result["final"], _ = await wait_drained(target.settings, DRAIN_TIMEOUT_S)
    return result


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _problems(kind: str, result: dict[str, Any], sent: int) -> list[str]:
    """Anything that makes the figures of this run untrustworthy."""
    problems: list[str] = []
    for phase in ("throughput", "latency"):
        outcome = result[phase]
        if outcome["refused"] or outcome["unsent"]:
            problems.append(f"{phase}: {sum(outcome['refused'].values())} mails not answered "
                            f"250 ({outcome['refused']}), {outcome['unsent']} not sent")
    if kind == ALERTD:
        acked = result["throughput"]["acked"] + result["latency"]["acked"]
        final = result["final"]
        if final["messages"] != acked:
            problems.append(f"{final['messages']} messages in the inbox, {acked} got 250")
        if final["states"] != {"done": acked}:
            problems.append(f"message states {final['states']}, expected all {acked} done")
        if final["unlinked"]:
            problems.append(f"{final['unlinked']} tickets not linked to an asset")
        if result["exit_status"] != 0:
            problems.append(f"alertd run exited {result['exit_status']} on SIGTERM")
        if result.get("log_problems"):
            problems.append(f"alertd logged warnings/errors: {result['log_problems']}")
    elif result["exit_status"] != 0:
        problems.append(f"the sink exited {result['exit_status']}")
    if not problems and result["throughput"]["acked"] + result["latency"]["acked"] != sent:
        problems.append("not every mail was acknowledged")
    return problems


# -- the parent: rounds, medians, the table --------------------------------------------






def fmt_ms(value: float | None) -> str:
    """Milliseconds with one decimal."""
    return "-" if value is None else f"{value:.1f}"




def main(argv: Sequence[str] | None = None) -> int:
    """Run the rounds, print the table, the worker lines and the goals; 1 when a run failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--mails", type=int, default=5_000,
                        help="mails per phase: the throughput burst, and again the paced "
                             "latency run (5000)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds; medians are reported (3)")
    parser.add_argument("--rate", type=float, default=500.0,
                        help="offered mails/s in the latency phase (500)")
    parser.add_argument("--connections", type=int, default=8,
                        help="concurrent SMTP connections (8)")
    parser.add_argument("--child-sink", choices=[SINK, SINK_PATHS], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_sink:
        asyncio.run(serve_sink(args.child_sink))
        return 0
    if args.mails < 1 or args.rounds < 1 or args.connections < 1 or args.rate <= 0:
        parser.error("--mails, --rounds, --connections and --rate must be positive")

    workload = generate(args.mails)
    sizes = sorted(workload.sizes)
    mix = ", ".join(f"{n:,} {status}" for status, n in sorted(workload.statuses.items()))
    print(f"alertd SMTP accept benchmark: {args.mails:,} mails per phase over "
          f"{args.connections} connections, latency at {args.rate:,.0f} mails/s offered; "
          f"{2 * args.mails:,} distinct tagged Automate alerts of {sizes[0]:,}-{sizes[-1]:,} "
          f"bytes ({mix}; {len(workload.computers)} computers in {len(CLIENTS)} clients, "
          f"{len(MONITORS)} monitors); {args.rounds} interleaved round(s), each server a fresh "
          f"child process; {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
          f"aiosmtpd {version_of('aiosmtpd')}", flush=True)

    configs = [SINK, SINK_PATHS, ALERTD]
    results: dict[str, list[dict[str, Any]]] = {config: [] for config in configs}
    ratios: list[float] = []
    ratios_same_paths: list[float] = []
    for round_number in range(args.rounds):
        order = configs if round_number % 2 == 0 else configs[::-1]
        for config in order:
            try:
                result = measure(config, workload, args.connections, args.rate)
            except Exception as error:  # noqa: BLE001 - report the round, go on with the next
                result = {"kind": config, "ok": False,
                          "problems": [f"{type(error).__name__}: {error}"]}
            results[config].append(result)
            _progress(round_number, args.rounds, config, result)
        sink_rate = results[SINK][-1].get("rate")
        alertd_rate = results[ALERTD][-1].get("rate")
        paths_rate = results[SINK_PATHS][-1].get("rate")
        if sink_rate and alertd_rate:
            ratios.append(alertd_rate / sink_rate)
        if paths_rate and alertd_rate:
            ratios_same_paths.append(alertd_rate / paths_rate)

    ratio = statistics.median(ratios) if ratios else None
    ratio_same_paths = statistics.median(ratios_same_paths) if ratios_same_paths else None
    header = ["server", "accept mails/s (median)", "ratio to sink",
              f"p50 ms @ {args.rate:,.0f}/s", f"p99 ms @ {args.rate:,.0f}/s",
              "server CPU ms/mail", "not 250", "peak RSS MB"]
    rows: list[list[str]] = []
    for config in configs:
        runs = results[config]
        failures = sum(sum(r[phase]["refused"].values()) + r[phase]["unsent"]
                       for r in runs for phase in ("throughput", "latency") if phase in r)
        rss = max((r["peak_rss_mb"] for r in runs if r.get("peak_rss_mb")), default=None)
        rows.append([
            LABELS[config], fmt_rate(median_of(runs, "rate")),
            _ratio_cell(config, runs, results[SINK], ratio),
            fmt_ms(median_of(runs, "p50_ms")), fmt_ms(median_of(runs, "p99_ms")),
            fmt_ms(median_of(runs, "server_cpu_ms")), f"{failures:,}",
            "-" if rss is None or config != ALERTD else f"{rss:.0f}",
        ])
    print()
    render(header, rows)
    print("ratio: median over rounds of (alertd rate / sink rate of the same round); "
          "latency: from scheduled release to the 250, queueing included; server CPU: "
          "the child's user+system time during the throughput phase per mail (alertd's "
          "includes its inbox worker); peak RSS: VmHWM of the alertd child, highest over rounds")
    if ratio_same_paths is not None:
        print(f"alertd / sink with alertd's path reader (what the durable accept itself costs, "
              f"same dialogue): {ratio_same_paths:.2f}x")

    failed = _print_worker(results[ALERTD])
    for config in configs:
        for number, run in enumerate(results[config], start=1):
            if not run["ok"]:
                failed = True
                print(f"{config}, round {number}: WRONG: " + "; ".join(run["problems"]))
    _print_goals(ratio, median_of(results[ALERTD], "p99_ms"), args.rate)
    return 1 if failed else 0


def _ratio_cell(config: str, runs: Sequence[dict[str, Any]],
                sink_runs: Sequence[dict[str, Any]], ratio: float | None) -> str:
    """The "ratio to sink" cell: alertd's is the goal's median of per-round ratios."""
    if config == SINK:
        return "1.00x"
    if config == ALERTD:
        return "-" if ratio is None else f"{ratio:.2f}x"
    pairs = [run["rate"] / sink["rate"] for run, sink in zip(runs, sink_runs, strict=True)
             if run.get("rate") and sink.get("rate")]
    return f"{statistics.median(pairs):.2f}x" if pairs else "-"


def _progress(round_number: int, rounds: int, config: str, result: dict[str, Any]) -> None:
    if "throughput" not in result:
        print(f"  round {round_number + 1}/{rounds}  {config:<6} FAILED: "
              + "; ".join(result["problems"]), file=sys.stderr)
        return
    latency = result["latency"]
    worker = ""
    if "after_burst" in result:
        worker = (f"  worker: {result['after_burst']['processed']:,} processed at the last "
                  f"250, drained {result['burst_drained_after_s']:.1f} s later")
    print(f"  round {round_number + 1}/{rounds}  {config:<6} {result['rate']:>7,.0f} mails/s "
          f"(server CPU {result['server_cpu_share']:.0%}, client CPU "
          f"{result['client_cpu_share']:.0%})  @{latency['offered']:,.0f}/s: p50 "
          f"{latency['p50_ms']:.1f} ms, p99 {latency['p99_ms']:.1f} ms, max "
          f"{latency['max_ms']:.1f} ms, achieved {latency['achieved']:,.0f}/s{worker}"
          + ("" if result["ok"] else "  WRONG: " + "; ".join(result["problems"])),
          file=sys.stderr, flush=True)


def _print_worker(runs: Sequence[dict[str, Any]]) -> bool:
    """One line per alertd round: how far the inbox worker had got; whether any run failed."""
    print()
    failed = False
    for number, run in enumerate(runs, start=1):
        if "after_burst" not in run:
            failed = True
            continue
        burst_state, final = run["after_burst"], run["final"]
        states = ", ".join(f"{state} {n:,}" for state, n in sorted(final["states"].items()))
        rest = ("" if not burst_state["waiting"] else
                f", the rest {run['burst_drained_after_s']:.1f} s later")
        latency = run["latency"]
        behind = ("" if latency["achieved"] >= 0.95 * latency["offered"] else
                  f"; in the latency phase it kept up with only {latency['achieved']:,.0f} of "
                  f"{latency['offered']:,.0f} mails/s offered, so its latency grew all along")
        print(f"alertd round {number}: at the last 250 of the burst its worker had processed "
              f"{burst_state['processed']:,} of {burst_state['messages']:,} mails into "
              f"{burst_state['tickets']:,} tickets{rest}; at the end {final['messages']:,} "
              f"messages ({states}), {final['tickets']:,} tickets"
              + ("" if final["unlinked"] else ", all linked to assets") + behind)
    return failed


def _print_goals(ratio: float | None, p99: float | None, rate: float) -> None:
    ratio_met = ratio is not None and ratio >= GOAL_RATIO
    p99_met = p99 is not None and p99 < GOAL_P99_MS
    print(f"\nGoals: alertd / sink >= {GOAL_RATIO:.2f}: {'met' if ratio_met else 'NOT met'} "
          f"({'-' if ratio is None else f'{ratio:.2f}'}); alertd p99 at {rate:,.0f} mails/s "
          f"< {GOAL_P99_MS:.0f} ms: {'met' if p99_met else 'NOT met'} ({fmt_ms(p99)} ms)")




if __name__ == "__main__":
    sys.exit(main())
