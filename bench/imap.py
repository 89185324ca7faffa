"""How fast alertd drains an IMAP mailbox, as a ratio to a bare aioimaplib client fetching it.

All four measurements run against one local Dovecot started here (the test
suite's own set-up, `tests/sources/dovecot.py`: loopback, its own config and
base directory), over TLS, with a fresh account and a full INBOX for every
run. The mails are the Automate alert stream of `bench/pipeline.py`
(`--mails`, 5,000 by default: ~0.7 KB each, both shapes, ~300 computers,
repeats, recoveries, flapping), dropped into the Maildir and synced by one
SELECT before anything is timed.

- **Limit, bare fetch**: aioimaplib alone, the way a minimal client drains a
  folder: connect, log in, SELECT, UID SEARCH ALL, then `UID FETCH
  (BODY.PEEK[])` in batches of alertd's `batch_size` (50), keeping nothing.
- **Reference, bare fetch and move**: the same bare client, also moving
  every mail to Processed as alertd does (UID MOVE of up to 250 UIDs over a
  second connection while the first goes on fetching), keeping nothing:
  what the server's own work of moving the mail leaves for any client that
  moves. For information; the goal's ratio stays against the bare fetch.
- **alertd drain**: the real poller component (`ImapPoller`) on a fresh SQLite
  database, until the folder is empty: every batch fetched (same batch size),
  stored in the durable inbox (up to 250 fetched mails per transaction),
  then moved to Processed in commands of up to 250 UIDs (over the poller's
  second connection, while the fetching goes on), the cursor saved.
  Rate = mails stored per second, from the component's start (connect, login
  and creating Processed included) to its first wait for new mail.
- **Mailbox to tickets**: the poller and one inbox worker together, as in
  `alertd run`, on a fresh SQLite database seeded with the clients, sites and
  computers the mails name; from start until every mail is processed. The
  outcome is checked as `bench/pipeline.py` checks it (every message done,
  the ticket actions exactly as the stream implies, every ticket linked).

Each run is a child process of its own (this script with a hidden
`--child`); the four run interleaved, `--rounds` times; the table shows
medians, and the drain ratio is the median over rounds of (drain rate /
bare-fetch rate of the same round); alertd's ratio to the bare fetch and
move is printed below the table. Goals (printed, met or not): drain ratio
0.7 or better; mailbox to tickets 1,000 mails/s or more.

    .venv/bin/python bench/imap.py [--mails 5000] [--rounds 3] [--batch-size 50]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import aioimaplib  # noqa: E402
from common import fmt_rate, median_of, render, version_of  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from alertd import logs  # noqa: E402
from alertd.db.tables import Message  # noqa: E402
from alertd.runtime import open_runtime  # noqa: E402
from alertd.settings import ImapMailboxSettings, RulesSettings, Settings  # noqa: E402
from alertd.sources.imap import ImapPoller  # noqa: E402
from alertd.sources.imap_client import ACTION_CHUNK, uid_set  # noqa: E402
from tests.sources.dovecot import Dovecot  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_pipeline", REPO / "bench" / "pipeline.py")
assert _spec is not None
assert _spec.loader is not None
pipeline = importlib.util.module_from_spec(_spec)
sys.modules["bench_pipeline"] = pipeline  # its dataclasses look their module up
_spec.loader.exec_module(pipeline)

RESULT_PREFIX = "BENCH-RESULT "
BARE, BARE_MOVE, DRAIN, TICKETS = "bare", "bare+move", "drain", "tickets"
LABELS = {
    BARE: "bare aioimaplib fetch (limit)",
    BARE_MOVE: "bare fetch and move (reference)",
    DRAIN: "alertd drain: fetch, store, move",
    TICKETS: "alertd mailbox -> tickets",
}
GOAL_RATIO = 0.7
GOAL_TICKETS = 1000.0


# -- one measurement, in a child process ---------------------------------------------


def mailbox(job: dict[str, Any], batch_size: int) -> ImapMailboxSettings:
    """alertd's settings for the job's account (TLS, the test CA, defaults otherwise)."""
    return ImapMailboxSettings.model_validate({
        "name": "bench", "host": "127.0.0.1", "port": job["port"], "security": "tls",
        "ca_file": job["ca_file"], "user": job["user"], "password_env": "BENCH_IMAP_PASSWORD",
        "batch_size": batch_size, "poll_interval": timedelta(hours=1),
    })


async def _bare_login(job: dict[str, Any]) -> aioimaplib.IMAP4_SSL:
    """A bare aioimaplib session on the job's INBOX."""
    import ssl

    context = ssl.create_default_context(cafile=job["ca_file"])
    client = aioimaplib.IMAP4_SSL(host="127.0.0.1", port=job["port"], timeout=60,
                                  ssl_context=context)
    await client.wait_hello_from_server()
    await client.login(job["user"], os.environ["BENCH_IMAP_PASSWORD"])
    await client.select("INBOX")
    return client


async def bare(job: dict[str, Any], batch_size: int, *, move: bool = False) -> dict[str, Any]:
    """The limit: fetch every mail in batches with aioimaplib, keep nothing; with ``move``,
    the reference: also move every `ACTION_CHUNK` fetched over a second connection, as alertd
    does."""
    started = time.perf_counter()
    client = await _bare_login(job)
    mover = await _bare_login(job) if move else None
    if mover is not None:
        await mover.create("Processed")
    response = await client.uid_search("ALL", charset=None)
    uids = [int(word) for word in response.lines[0].split()]
    to_move: asyncio.Queue[list[int] | None] = asyncio.Queue()

    async def move_fetched() -> None:
        assert mover is not None
        while (chunk := await to_move.get()) is not None:
            await mover.uid("move", uid_set(chunk), "Processed")

    moving = asyncio.create_task(move_fetched()) if mover is not None else None
    fetched = 0
    waiting: list[int] = []
    for start in range(0, len(uids), batch_size):
        chunk = uids[start:start + batch_size]
        response = await client.uid("fetch", uid_set(chunk), "(BODY.PEEK[])")
        fetched += sum(1 for line in response.lines if isinstance(line, bytearray))
        if moving is not None:
            waiting += chunk
            if len(waiting) >= ACTION_CHUNK:
                to_move.put_nowait(waiting)
                waiting = []
    if moving is not None:
        if waiting:
            to_move.put_nowait(waiting)
        to_move.put_nowait(None)
        await moving
    elapsed = time.perf_counter() - started
    await client.logout()
    problems = [] if fetched == job["count"] else [f"fetched {fetched} of {job['count']}"]
    if mover is not None:
        status = await mover.status("INBOX", "(MESSAGES)")
        await mover.logout()
        left = status.lines[0].decode(errors="replace")
        if "MESSAGES 0)" not in left:
            problems.append(f"not all moved: {left}")
    return {"ok": not problems, "problems": problems, "rate": fetched / elapsed,
            "seconds": elapsed}


async def drain(job: dict[str, Any], batch_size: int, database: str) -> dict[str, Any]:
    """The poller alone, until the folder is drained into stored messages."""
    settings = Settings.model_validate({"database": {"url": database}})
    async with open_runtime(settings, with_rules=False) as runtime:
        poller = ImapPoller(runtime, mailbox(job, batch_size))
        stopping = asyncio.Event()
        started = time.perf_counter()
        task = asyncio.create_task(poller.run(stopping))
        waiting = asyncio.create_task(poller.waiting.wait())
        await asyncio.wait([task, waiting], return_when=asyncio.FIRST_COMPLETED)
        elapsed = time.perf_counter() - started
        waiting.cancel()
        stopping.set()
        await task
        async with runtime.sessions() as session:
            count = (await session.execute(select(func.count()).select_from(Message)))
            stored = count.scalar_one()
    problems = [] if stored == job["count"] else [f"stored {stored} of {job['count']}"]
    return {"ok": not problems, "problems": problems, "rate": stored / elapsed,
            "seconds": elapsed}


async def tickets(job: dict[str, Any], batch_size: int, database: str) -> dict[str, Any]:
    """Poller and inbox worker together, until every mail is processed."""
    settings = Settings.model_validate({"database": {"url": database}})
    workload = pipeline.generate(job["count"], reopen_window=settings.rules.reopen_window)
    async with open_runtime(settings) as runtime:
        await pipeline._seed(runtime, workload.computers)
        poller = ImapPoller(runtime, mailbox(job, batch_size))
        worker = runtime.worker()
        stopping = asyncio.Event()
        started = time.perf_counter()
        tasks = [asyncio.create_task(poller.run(stopping)),
                 asyncio.create_task(worker.run(stopping))]
        done = 0
        while done < job["count"] and not any(task.done() for task in tasks):
            await asyncio.sleep(0.05)
            async with runtime.sessions() as session:
                done = (await session.execute(
                    select(func.count()).select_from(Message)
                    .where(Message.state.in_(("done", "ignored", "failed"))))).scalar_one()
        elapsed = time.perf_counter() - started
        stopping.set()
        await asyncio.gather(*tasks)
        async with runtime.sessions() as session:
            states = Counter(dict((await session.execute(
                select(Message.state, func.count()).group_by(Message.state))).tuples().all()))
        outcome = await pipeline._check(runtime, workload, states)
    return {**outcome, "rate": job["count"] / elapsed, "seconds": elapsed}


def child(kind: str, job: dict[str, Any], batch_size: int) -> int:
    """Measure one run and print its result as one JSON line."""
    with open(os.devnull, "w") as devnull:
        logs.configure("info", "json", devnull)
        if kind in (BARE, BARE_MOVE):
            result = asyncio.run(bare(job, batch_size, move=kind == BARE_MOVE))
        else:
            with tempfile.TemporaryDirectory(prefix="alertd-bench-") as directory:
                database = f"sqlite:///{Path(directory) / 'alertd.db'}"
                measure = drain if kind == DRAIN else tickets
                result = asyncio.run(measure(job, batch_size, database))
    print(RESULT_PREFIX + json.dumps({"config": kind, **result}, default=str), flush=True)
    return 0


# -- the parent: the server, the rounds, the table --------------------------------------


def prepare(server: Dovecot, mails: Sequence[bytes]) -> dict[str, Any]:
    """A fresh account with ``mails`` in its INBOX, synced by one SELECT (not timed)."""
    user = server.add_user()
    server.drop_mail(user, mails)

    async def sync() -> None:
        client = aioimaplib.IMAP4(host="127.0.0.1", port=server.plain_port, timeout=120)
        await client.wait_hello_from_server()
        await client.login(user.name, user.password)
        await client.select("INBOX")
        await client.logout()

    asyncio.run(sync())
    return {"user": user.name, "password": user.password, "port": server.tls_port,
            "ca_file": str(server.cert), "count": len(mails)}


def run_child(kind: str, job: dict[str, Any], batch_size: int) -> dict[str, Any]:
    """One measurement in a fresh interpreter."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind,
               "--job", json.dumps({k: v for k, v in job.items() if k != "password"}),
               "--batch-size", str(batch_size)]
    environment = {**os.environ, "BENCH_IMAP_PASSWORD": job["password"]}
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False,
                          env=environment)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line.removeprefix(RESULT_PREFIX))
            return result
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    return {"config": kind, "ok": False,
            "problems": [f"the child exited {done.returncode}: "
                         f"{lines[-1] if lines else 'no output'}"]}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the rounds and print the table and the goals; 1 when a run went wrong."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--mails", type=int, default=5000, help="mails per run (5000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--batch-size", type=int, default=50,
                        help="mails per FETCH, for the limit and for alertd (50)")
    parser.add_argument("--child", choices=[BARE, BARE_MOVE, DRAIN, TICKETS],
                        help=argparse.SUPPRESS)
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, json.loads(args.job), args.batch_size)

    workload = pipeline.generate(args.mails, reopen_window=RulesSettings().reopen_window)
    size = sum(len(mail) for mail in workload.mails) / len(workload.mails)
    print(f"alertd IMAP benchmark: {args.mails:,} Automate alert mails (mean {size:,.0f} "
          f"bytes) per run from a local Dovecot over TLS, FETCH batches of "
          f"{args.batch_size}, {args.rounds} interleaved round(s), each run in its own "
          f"process on a fresh account (and SQLite file); {os.cpu_count()} CPUs, Python "
          f"{sys.version.split()[0]}, aioimaplib {version_of('aioimaplib')}",
          flush=True)
    kinds = [BARE, BARE_MOVE, DRAIN, TICKETS]
    results: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    ratios: list[float] = []
    move_ratios: list[float] = []
    reference_ratios: list[float] = []
    server = Dovecot()
    server.start()
    try:
        for number in range(args.rounds):
            shift = number % len(kinds)
            for kind in kinds[shift:] + kinds[:shift]:
                job = prepare(server, workload.mails)
                result = run_child(kind, job, args.batch_size)
                results[kind].append(result)
                print(f"  round {number + 1}/{args.rounds}  {kind:<8} "
                      f"{fmt_rate(result.get('rate')):>7} mails/s"
                      + ("" if result["ok"] else "  FAILED: " + "; ".join(result["problems"])),
                      file=sys.stderr, flush=True)
            limit, rate = results[BARE][-1].get("rate"), results[DRAIN][-1].get("rate")
            if limit and rate:
                ratios.append(rate / limit)
            reference = results[BARE_MOVE][-1].get("rate")
            if limit and reference:
                move_ratios.append(reference / limit)
            if reference and rate:
                reference_ratios.append(rate / reference)
    finally:
        server.close()

    ratio = statistics.median(ratios) if ratios else None
    header = ["measurement", "mails/s (median)", "seconds (median)", "ratio to bare fetch"]
    rows = []
    for kind in kinds:
        runs = results[kind]
        rows.append([
            LABELS[kind], fmt_rate(median_of(runs, "rate")),
            f"{median_of(runs, 'seconds') or 0:.2f}",
            _ratio_cell(kind, ratio, move_ratios),
        ])
    print()
    render(header, rows)
    print("ratio: median over rounds of (rate / bare fetch rate of the same round)")
    if reference_ratios:
        print("alertd drain / bare fetch and move (what storing costs next to the same server "
              f"work): {statistics.median(reference_ratios):.2f}x")

    failed = False
    for kind in kinds:
        for number, run in enumerate(results[kind], start=1):
            if not run["ok"]:
                failed = True
                print(f"check {kind}, round {number}: WRONG: " + "; ".join(run["problems"]))
    last = results[TICKETS][-1]
    if last.get("ok"):
        actions = ", ".join(f"{name} {n:,}" for name, n in sorted(last["actions"].items()))
        print(f"check tickets: OK: {last['tickets']:,} tickets, all linked to assets; "
              f"actions: {actions}")
    tickets_rate = median_of(results[TICKETS], "rate")
    ratio_met = ratio is not None and ratio >= GOAL_RATIO
    tickets_met = tickets_rate is not None and tickets_rate >= GOAL_TICKETS
    print(f"\nGoals: drain ratio >= {GOAL_RATIO}: {'met' if ratio_met else 'NOT met'} "
          f"({'-' if ratio is None else f'{ratio:.2f}'}); mailbox to tickets >= "
          f"{GOAL_TICKETS:,.0f} mails/s: {'met' if tickets_met else 'NOT met'} "
          f"({fmt_rate(tickets_rate)})")
    return 1 if failed else 0


def _ratio_cell(kind: str, ratio: float | None, move_ratios: Sequence[float]) -> str:
    """The table's ratio to the bare fetch for one measurement."""
    if kind == BARE:
        return "1.00x"
    if kind == BARE_MOVE:
        return f"{statistics.median(move_ratios):.2f}x" if move_ratios else "-"
    if kind == DRAIN and ratio is not None:
        return f"{ratio:.2f}x"
    return "-"


if __name__ == "__main__":
    sys.exit(main())
