"""Rule regression cases (R3.8): a table of mails and what each must do.

A cases file names mails (paths relative to the file) and the expected
sender rule, alert type, outcome, fields, asset and ticket action. Cases
run in order against a fresh, temporary database, seeded with the assets
the file declares, so a sequence (problem, repeat, recovery) can be tested
and the result never depends on, or touches, the live database.

```yaml
assets:
  - {name: CON-DC01, kind: Server, automate_id: "1042", client: Contoso Ltd}
cases:
  - name: disk alert opens a ticket
    mail: mails/disk-failed.eml
    expect: {alert_type: automate-tagged, outcome: problem, asset: CON-DC01,
             action: new_ticket, fields: {monitor: "Disk - Free Space C:"}}
```
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from alertd.assets.resolve import AssetResolver
from alertd.assets.store import add_asset, add_client, add_site
from alertd.clock import SystemClock
from alertd.db.engine import create_engine, session_factory, upgrade
from alertd.domain import Envelope, Problem
from alertd.errors import ParseError, SettingsInvalid
from alertd.inbox.pipeline import Incoming, Pipeline
from alertd.mail.parse import parse_mail
from alertd.rules.engine import RuleSet
from alertd.tickets.service import TicketService
from alertd.yamlfile import load_yaml


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CaseAsset(_Model):
    """An asset the cases' database starts with."""

    name: str
    kind: str = "Server"
    automate_id: str | None = None
    serial: str | None = None
    asset_tag: str | None = None
    client: str | None = None
    client_automate_id: str | None = None
    site: str | None = None


class Expectation(_Model):
    """What a case's mail must do; only the keys given are checked."""

    sender_rule: str | None = None
    alert_type: str | None = None
    outcome: str | None = None
    fields: dict[str, str] | None = None
    asset: str | None = None
    """The asset name, or null for "unmatched"."""
    action: str | None = None
    state: str | None = None


class Case(_Model):
    """One mail and its expectations."""

    name: str
    mail: Path
    expect: Expectation = Field(default_factory=Expectation)


class CasesFile(_Model):
    """A cases file."""

    assets: tuple[CaseAsset, ...] = ()
    cases: tuple[Case, ...]


@dataclass
class CaseResult:
    """The verdict on one case."""

    name: str
    passed: bool
    failures: list[str] = field(default_factory=list)
    got: dict[str, Any] = field(default_factory=dict)


def load_cases(path: Path) -> CasesFile:
    """Read and validate a cases file; SettingsInvalid lists every problem with its line."""
    loaded = load_yaml(path)
    if isinstance(loaded, Problem):
        raise SettingsInvalid([loaded])
    try:
        cases = CasesFile.model_validate(loaded.data or {})
    except ValidationError as error:
        raise SettingsInvalid(loaded.problems_from(error)) from None
    problems = [
        loaded.problem(("cases", i, "mail"), f"mail file {case.mail} does not exist")
        for i, case in enumerate(cases.cases)
        if not (path.parent / case.mail).is_file()
    ]
    if problems:
        raise SettingsInvalid(problems)
    return cases


async def run_cases(
    path: Path, rules: RuleSet, *, reopen_window: timedelta, future_skew: timedelta
) -> list[CaseResult]:
    """Run every case of ``path`` in order against a fresh temporary database."""
    cases = load_cases(path)
    results: list[CaseResult] = []
    async with _scratch_database() as sessions:
        clock = SystemClock()
        pipeline = Pipeline(
            resolver=AssetResolver(),
            tickets=TicketService(reopen_window=reopen_window, clock=clock),
            future_skew=future_skew,
        )
        async with sessions.begin() as session:
            await _seed(session, cases.assets)
        for case in cases.cases:
            data = (path.parent / case.mail).read_bytes()
            received_at = datetime.now(UTC)
            try:
                parsed = parse_mail(data)
            except ParseError as error:
                results.append(_judge(case, {"state": "failed", "reason": str(error)}))
                continue
            async with sessions.begin() as session:
                [done] = await pipeline.process(
                    session, [Incoming(None, parsed, Envelope(source="cases"), received_at)],
                    rules,
                )
            decision, asset = done.decision, done.asset
            got = {
                "state": done.completion.state,
                "sender_rule": decision.sender_rule if decision else None,
                "alert_type": decision.alert_type if decision else None,
                "outcome": decision.outcome if decision else None,
                "fields": dict(decision.fields) if decision else {},
                "asset": asset.asset_name if asset is not None else None,
                "action": done.completion.action,
            }
            results.append(_judge(case, got))
    return results


def _judge(case: Case, got: dict[str, Any]) -> CaseResult:
    failures: list[str] = []
    expected = case.expect
    for name in ("state", "sender_rule", "alert_type", "outcome", "asset", "action"):
        if name not in expected.model_fields_set:
            continue
        want = getattr(expected, name)
        if got.get(name) != want:
            failures.append(f"{name}: expected {want!r}, got {got.get(name)!r}")
    for name, want in (expected.fields or {}).items():
        have = got.get("fields", {}).get(name)
        if have != want:
            failures.append(f"fields.{name}: expected {want!r}, got {have!r}")
    return CaseResult(case.name, not failures, failures, got)


async def _seed(session: Any, assets: tuple[CaseAsset, ...]) -> None:
    now = datetime.now(UTC)
    clients: dict[str, int] = {}
    sites: dict[tuple[int, str], int] = {}
    for item in assets:
        client_id = None
        site_id = None
        if item.client:
            if item.client not in clients:
                clients[item.client] = await add_client(
                    session, item.client, automate_id=item.client_automate_id, now=now)
            client_id = clients[item.client]
            if item.site:
                key = (client_id, item.site)
                if key not in sites:
                    sites[key] = await add_site(session, client_id, item.site, now=now)
                site_id = sites[key]
        await add_asset(
            session, item.name, kind=item.kind, now=now,
            automate_kind="computer" if item.automate_id else None,
            automate_id=item.automate_id, serial=item.serial, asset_tag=item.asset_tag,
            client_id=client_id, site_id=site_id,
        )


@asynccontextmanager
async def _scratch_database() -> AsyncIterator[Any]:
    with tempfile.TemporaryDirectory(prefix="alertd-cases-") as directory:
        engine = create_engine(f"sqlite:///{Path(directory) / 'cases.db'}")
        try:
            await upgrade(engine)
            yield session_factory(engine)
        finally:
            await engine.dispose()
