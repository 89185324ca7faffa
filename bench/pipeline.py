"""How fast alertd turns alert mail into tickets, as a ratio to parsing the same mail.

The limit is mail-parser's `parse_from_bytes` alone: every message goes
through it, so no pipeline can beat it. Against it this script measures the
full pipeline on a SQLite file and on PostgreSQL: store the raw mails in the
durable inbox (`accept_many` in batches of 100, as the IMAP source does),
then drain the inbox with one worker (parse, rules, asset lookup, ticket
dedup, one JSON log line per message into /dev/null, loggers cached as in
`alertd run`), with the bundled rules and default settings.

The mails are realistic Automate alerts built with `tests/mails.py`: both
shapes (about 70 % tagged template, 30 % default monitor text), ~300
computers across five clients, several monitors, mostly FAILED repeats with
some SUCCESS recoveries and a little flapping, increasing Dates and unique
Message-IDs. The database is seeded with the matching clients, sites and
computers first, so asset resolution really hits.

Each configuration runs in a child process of its own (this script, with a
hidden `--child` argument), so peak RSS is per configuration and no run
inherits another's warm caches. The limit and the pipelines run
interleaved, `--rounds` times, and medians are reported, so that the noise
of this machine hits the limit and alertd alike (TESTING-NOTES.md). After
every pipeline run the database is checked: every message `done`, the
ticket actions and the number of tickets exactly as the mail stream implies,
every ticket linked to its asset. Anything off is printed and the exit
status is 1.

    .venv/bin/python bench/pipeline.py [--mails 10000] [--rounds 3] [--pg-url URL] [--skip-pg]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import mailparser  # noqa: E402
from common import fmt_rate, median_of, render, version_of  # noqa: E402
from fleet import CLIENTS, MONITORS, Computer, Monitor, seed  # noqa: E402
from fleet import computers as fleet_computers  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from alertd import logs  # noqa: E402
from alertd.db.engine import create_engine  # noqa: E402
from alertd.db.tables import Message, Ticket  # noqa: E402
from alertd.domain import Envelope, RawMessage  # noqa: E402
from alertd.runtime import Runtime, open_runtime  # noqa: E402
from alertd.settings import RulesSettings, Settings, bundled_rules_dir  # noqa: E402
from tests.mails import automate_monitor, automate_tagged  # noqa: E402

PG_URL_ENV = "ALERTD_TEST_PG_URL"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
RESULT_PREFIX = "BENCH-RESULT "
"""Marks the child's one JSON line on stdout."""

ACCEPT_BATCH = 100
"""Mails per `accept_many`, as the IMAP source stores one FETCH batch."""
SEED = 20240917
"""Every child generates the same mail stream."""
TAGGED_SHARE = 0.7

GOAL_SQLITE_RATE = 1000.0
"""mails/s, full pipeline on SQLite, on the 2-core machine kind."""
GOAL_PEAK_RSS_MB = 150.0

PARSE = "parse-only"
SQLITE = "sqlite"
POSTGRESQL = "postgresql"
LABELS = {
    PARSE: "parse-only (limit)",
    SQLITE: "pipeline, SQLite",
    POSTGRESQL: "pipeline, PostgreSQL",
}


# -- the mail stream ------------------------------------------------------------------


def computers() -> list[Computer]:
    """The ~300 computers of all clients, a few servers then workstations each."""
    return fleet_computers((110, 80, 55, 35, 20), first_id=1001, servers=4)


@dataclass
class Workload:
    """The mails, in arrival order, and what processing them must produce."""

    mails: list[bytes]
    computers: list[Computer]
    actions: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    """Mails by shape and by status."""
    tickets: int = 0
    open_tickets: int = 0


def generate(count: int, *, reopen_window: timedelta) -> Workload:
    """A deterministic alert stream, and the ticket actions it implies.

    Mostly FAILED repeats of the problems in progress, about one in ten a
    SUCCESS recovery, a few stray recoveries (nothing open), and some
    flapping (a recovered problem failing again within the reopen window).
    """
    rng = random.Random(SEED)
    fleet = computers()
    gaps = [max(1, round(rng.expovariate(1 / 8))) for _ in range(count)]
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=sum(gaps) + 600)

    failing: list[tuple[int, int]] = []
    failing_set: set[tuple[int, int]] = set()
    recent: list[tuple[int, int]] = []
    open_keys: set[tuple[int, int]] = set()
    resolved_at: dict[tuple[int, int], datetime] = {}
    workload = Workload(mails=[], computers=fleet)

    def random_pair() -> tuple[int, int]:
        return rng.randrange(len(fleet)), rng.randrange(len(MONITORS))

    for index in range(count):
        at += timedelta(seconds=gaps[index])
        roll = rng.random()
        if roll < 0.02 and recent:
            pair, status = rng.choice(recent), "FAILED"
        elif roll < 0.03:
            pair, status = random_pair(), "SUCCESS"
            if pair in failing_set:
                status = "FAILED"
        elif roll < 0.12 or not failing:
            pair, status = random_pair(), "FAILED"
        else:
            pair = rng.choice(failing)
            status = "SUCCESS" if rng.random() < 0.1 else "FAILED"

        if status == "FAILED" and pair not in failing_set:
            failing.append(pair)
            failing_set.add(pair)
        elif status == "SUCCESS" and pair in failing_set:
            failing.remove(pair)
            failing_set.discard(pair)
            recent = [*recent[-19:], pair]

        workload.actions[_expected_action(pair, status, at, open_keys, resolved_at,
                                          reopen_window, workload)] += 1
        tagged = rng.random() < TAGGED_SHARE
        workload.kinds.update(["tagged" if tagged else "monitor text", status])
        workload.mails.append(_mail(fleet[pair[0]], MONITORS[pair[1]], status, at, index,
                                    tagged=tagged))
    workload.open_tickets = len(open_keys)
    return workload


def _expected_action(
    pair: tuple[int, int], status: str, at: datetime, open_keys: set[tuple[int, int]],
    resolved_at: dict[tuple[int, int], datetime], reopen_window: timedelta,
    workload: Workload,
) -> str:
    """What SPEC R4.3 says this alert does (Dates only increase, so nothing is stale)."""
    if status == "SUCCESS":
        if pair not in open_keys:
            return "recovery_without_ticket"
        open_keys.discard(pair)
        resolved_at[pair] = at
        return "resolved"
    if pair in open_keys:
        return "occurrence"
    open_keys.add(pair)
    resolved = resolved_at.pop(pair, None)
    if resolved is not None and at - resolved <= reopen_window:
        return "reopened"
    workload.tickets += 1
    return "new_ticket"


def _mail(
    computer: Computer, monitor: Monitor, status: str, at: datetime, index: int, *,
    tagged: bool,
) -> bytes:
    result = monitor.failed if status == "FAILED" else monitor.success
    message_id = f"bench.{SEED}.{index:07d}"
    if tagged:
        return automate_tagged(
            status, date=at, computer_id=computer.automate_id, monitor=monitor.name,
            field=monitor.field, client=computer.client.name,
            client_id=computer.client.automate_id, host=computer.host, site=computer.site,
            result=result, message_id=message_id,
        )
    return automate_monitor(
        status, date=at, monitor=monitor.name, field=monitor.field,
        client=computer.client.name, host=computer.host, site=computer.site, result=result,
        message_id=message_id,
    )


# -- one measurement, in a child process ---------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident set size (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_parse(count: int) -> dict[str, Any]:
    """The limit: mail-parser over every mail, nothing else."""
    workload = generate(count, reopen_window=RulesSettings().reopen_window)
    mails = workload.mails
    gc.collect()
    started = time.perf_counter()
    for data in mails:
        mailparser.parse_from_bytes(data)
    elapsed = time.perf_counter() - started
    return {"config": PARSE, "ok": True, "problems": [], "rate": count / elapsed,
            "seconds": elapsed, "peak_rss_mb": peak_rss_mb()}


def measure_pipeline(kind: str, count: int, pg_url: str) -> dict[str, Any]:
    """The full pipeline on a fresh SQLite file or a fresh PostgreSQL database."""
    with open(os.devnull, "w") as devnull:
        logs.configure("info", "json", devnull, cache=True)  # as `alertd run` configures it
        if kind == SQLITE:
            with tempfile.TemporaryDirectory(prefix="alertd-bench-") as directory:
                url = f"sqlite:///{Path(directory) / 'alertd.db'}"
                return asyncio.run(_pipeline(kind, url, count))
        name = f"alertd_bench_{os.getpid()}"
        url = make_url(pg_url).set(database=name).render_as_string(hide_password=False)
        asyncio.run(_pg_admin(pg_url, f'CREATE DATABASE "{name}"'))
        try:
            return asyncio.run(_pipeline(kind, url, count))
        finally:
            asyncio.run(_pg_admin(pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _pg_admin(base_url: str, statement: str) -> None:
    engine = create_engine(base_url)
    try:
        async with engine.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def _pipeline(kind: str, url: str, count: int) -> dict[str, Any]:
    settings = Settings.model_validate({
        "database": {"url": url, "auto_upgrade": True},
        "rules": {"dir": str(bundled_rules_dir())},
    })
    workload = generate(count, reopen_window=settings.rules.reopen_window)
    async with open_runtime(settings) as runtime:
        await _seed(runtime, workload.computers)
        worker = runtime.worker()
        gc.collect()

        started = time.perf_counter()
        for start in range(0, count, ACCEPT_BATCH):
            received_at = datetime.now(UTC)
            await runtime.store.accept_many([
                RawMessage(Envelope(source="imap:alerts", mailbox="alerts", uidvalidity=1,
                                    uid=index + 1), workload.mails[index], received_at)
                for index in range(start, min(start + ACCEPT_BATCH, count))
            ])
        accepted = time.perf_counter()
        drained: Counter[str] = Counter()
        while (report := await worker.drain()).processed:
            drained.update(report.by_state)
        finished = time.perf_counter()

        outcome = await _check(runtime, workload, drained)
    return {
        "config": kind, **outcome,
        "rate": count / (finished - started),
        "accept_rate": count / (accepted - started),
        "drain_rate": count / (finished - accepted),
        "seconds": finished - started,
        "peak_rss_mb": peak_rss_mb(),
    }


async def _seed(runtime: Runtime, fleet: Sequence[Computer]) -> None:
    await seed(runtime, fleet)


async def _check(runtime: Runtime, workload: Workload, drained: Counter[str]) -> dict[str, Any]:
    """Read the outcome back and compare it with what the mail stream implies."""
    count = len(workload.mails)
    async with runtime.sessions() as session:
        states = dict((await session.execute(
            select(Message.state, func.count()).group_by(Message.state))).tuples().all())
        actions = dict((await session.execute(
            select(Message.action, func.count()).group_by(Message.action))).tuples().all())
        tickets = dict((await session.execute(
            select(Ticket.status, func.count()).group_by(Ticket.status))).tuples().all())
        unlinked = (await session.execute(
            select(func.count()).select_from(Ticket).where(Ticket.asset_id.is_(None))
        )).scalar_one()
    total_tickets = sum(tickets.values())
    problems: list[str] = []
    if states != {"done": count}:
        problems.append(f"message states {states}, expected all {count} done")
    if dict(drained) != {"done": count}:
        problems.append(f"the worker reported {dict(drained)}, expected {count} done")
    if actions != dict(workload.actions):
        problems.append(f"actions {actions}, expected {dict(workload.actions)}")
    if total_tickets != workload.tickets:
        problems.append(f"{total_tickets} tickets, expected {workload.tickets}")
    if tickets.get("open", 0) != workload.open_tickets:
        problems.append(f"{tickets.get('open', 0)} open tickets, "
                        f"expected {workload.open_tickets}")
    if unlinked:
        problems.append(f"{unlinked} tickets not linked to an asset")
    return {"ok": not problems, "problems": problems, "states": states, "actions": actions,
            "tickets": total_tickets, "ticket_status": tickets, "unlinked": unlinked}


def child(kind: str, count: int, pg_url: str) -> int:
    """Measure one configuration and print its result as one JSON line."""
    result = measure_parse(count) if kind == PARSE else measure_pipeline(kind, count, pg_url)
    print(RESULT_PREFIX + json.dumps(result, default=str), flush=True)
    return 0


# -- the parent: rounds, medians, the table --------------------------------------------


def run_child(kind: str, count: int, pg_url: str) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter and read its result."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind,
               "--mails", str(count), "--pg-url", pg_url]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line.removeprefix(RESULT_PREFIX))
            return result
    lines = [line for line in done.stderr.strip().splitlines()
             if line.strip() and not line.startswith("(Background on this error")]
    tail = lines[-1] if lines else "no output"
    return {"config": kind, "ok": False, "crashed": True,
            "problems": [f"the child exited {done.returncode}: {tail}"]}


def pg_unusable(url: str) -> str | None:
    """Why PostgreSQL at ``url`` cannot be used, or None when it answers."""

    async def probe() -> None:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    try:
        asyncio.run(asyncio.wait_for(probe(), timeout=10))
    except Exception as error:  # noqa: BLE001 - any failure means "skip it, say why"
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return f"{type(error).__name__}: {first}"
    return None


def safe_url(url: str) -> str:
    """``url`` without its password, for printing."""
    return make_url(url).render_as_string(hide_password=True)








def main(argv: Sequence[str] | None = None) -> int:
    """Run the rounds, print the table, the checks and the goals; 1 when a check failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--mails", type=int, default=10_000, help="mails per run (10000)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds; medians are reported (3)")
    parser.add_argument("--pg-url", default=os.environ.get(PG_URL_ENV) or DEFAULT_PG_URL,
                        help=f"PostgreSQL server to create a scratch database on "
                             f"(${PG_URL_ENV}, else {DEFAULT_PG_URL})")
    parser.add_argument("--skip-pg", action="store_true", help="leave PostgreSQL out")
    parser.add_argument("--child", choices=[PARSE, SQLITE, POSTGRESQL], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mails < 1 or args.rounds < 1:
        parser.error("--mails and --rounds must be at least 1")
    if args.child:
        return child(args.child, args.mails, args.pg_url)

    configs = [PARSE, SQLITE]
    pg_skipped: str | None = "--skip-pg given" if args.skip_pg else pg_unusable(args.pg_url)
    if pg_skipped is None:
        configs.append(POSTGRESQL)
    results: dict[str, list[dict[str, Any]]] = {config: [] for config in configs}
    ratios: dict[str, list[float]] = {config: [] for config in configs}

    sample = generate(args.mails, reopen_window=RulesSettings().reopen_window)
    mix = ", ".join(f"{n:,} {kind}" for kind, n in sorted(sample.kinds.items()))
    print(f"alertd pipeline benchmark: {args.mails:,} generated Automate alert mails ({mix}; "
          f"{len(sample.computers)} computers in {len(CLIENTS)} clients, {len(MONITORS)} "
          f"monitors), {args.rounds} interleaved round(s), each configuration in its own "
          f"process; {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
          f"mail-parser {version_of('mail-parser')}", flush=True)
    del sample
    for round_number in range(args.rounds):
        shift = round_number % len(configs)
        for config in configs[shift:] + configs[:shift]:
            result = run_child(config, args.mails, args.pg_url)
            results[config].append(result)
            print(f"  round {round_number + 1}/{args.rounds}  {config:<10} "
                  f"{fmt_rate(result.get('rate')):>7} mails/s  "
                  f"peak RSS {result.get('peak_rss_mb', 0):.0f} MB"
                  + ("" if result["ok"] else "  FAILED: " + "; ".join(result["problems"])),
                  file=sys.stderr)
        limit = results[PARSE][-1].get("rate")
        for config in configs:
            rate = results[config][-1].get("rate")
            if limit and rate:
                ratios[config].append(rate / limit)

    header = ["configuration", "mails/s (median)", "ratio to parse-only", "accept mails/s",
              "drain mails/s", "peak RSS MB"]
    rows: list[list[str]] = []
    for config in configs:
        runs = results[config]
        ratio = statistics.median(ratios[config]) if ratios[config] else None
        rss = max((r["peak_rss_mb"] for r in runs if "peak_rss_mb" in r), default=None)
        rows.append([
            LABELS[config], fmt_rate(median_of(runs, "rate")),
            "-" if ratio is None else f"{ratio:.2f}x",
            fmt_rate(median_of(runs, "accept_rate")), fmt_rate(median_of(runs, "drain_rate")),
            "-" if rss is None else f"{rss:.0f}",
        ])
    if pg_skipped is not None:
        rows.append([LABELS[POSTGRESQL], f"skipped ({safe_url(args.pg_url)}): {pg_skipped}"])
    print()
    render(header, rows)
    print("ratio: median over rounds of (pipeline rate / parse-only rate of the same round); "
          "peak RSS: highest over rounds")

    failed = _print_checks(results, configs)
    _print_goals(results)
    return 1 if failed else 0


def _print_checks(results: dict[str, list[dict[str, Any]]], configs: Sequence[str]) -> bool:
    """One line per pipeline configuration; whether any run failed its checks."""
    failed = False
    print()
    for config in configs:
        if config == PARSE:
            continue
        runs = results[config]
        bad = [r for r in runs if not r["ok"]]
        last = runs[-1]
        if bad:
            failed = True
            for number, run in enumerate(runs, start=1):
                if not run["ok"]:
                    print(f"check {config}, round {number}: WRONG: "
                          + "; ".join(run["problems"]))
            continue
        actions = ", ".join(f"{name} {n:,}" for name, n in sorted(last["actions"].items()))
        status = ", ".join(f"{name} {n:,}" for name, n in sorted(last["ticket_status"].items()))
        states = ", ".join(f"{name} {n:,}" for name, n in sorted(last["states"].items()))
        print(f"check {config}: OK in all {len(runs)} round(s): messages {states}; "
              f"{last['tickets']:,} tickets ({status}), all linked to assets; "
              f"actions: {actions}")
    for run in results[PARSE]:
        if not run["ok"]:
            failed = True
            print("parse-only run failed: " + "; ".join(run["problems"]))
    return failed


def _print_goals(results: dict[str, list[dict[str, Any]]]) -> None:
    sqlite_rate = median_of(results[SQLITE], "rate")
    pipeline_rss = [r["peak_rss_mb"] for config in (SQLITE, POSTGRESQL)
                    for r in results.get(config, []) if "peak_rss_mb" in r]
    rss = max(pipeline_rss, default=None)
    rate_met = sqlite_rate is not None and sqlite_rate >= GOAL_SQLITE_RATE
    rss_met = rss is not None and rss < GOAL_PEAK_RSS_MB
    print(f"\nGoals: full pipeline on SQLite >= {GOAL_SQLITE_RATE:,.0f} mails/s: "
          f"{'met' if rate_met else 'NOT met'} ({fmt_rate(sqlite_rate)}); "
          f"peak RSS < {GOAL_PEAK_RSS_MB:.0f} MB: {'met' if rss_met else 'NOT met'} "
          f"({'-' if rss is None else f'{rss:.0f}'} MB, highest pipeline run)")




if __name__ == "__main__":
    sys.exit(main())
