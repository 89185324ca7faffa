"""`alertd rules check [DIR]` and `alertd rules test MAIL.eml [--cases FILE]` (R3.5, R3.8).

Both use the daemon's own loader, parser, engine and resolver, and change
nothing: `test` works inside a transaction that is rolled back, and cases
run against a scratch database.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.engine import make_url

from alertd.cli.common import (
    OutputFormat,
    console,
    emit_fields,
    emit_json,
    emit_table,
    run,
    settings,
)
from alertd.db.engine import async_url
from alertd.domain import Envelope
from alertd.errors import EX_CONFIG, EX_FAILURE, AlertdError, NotFound
from alertd.inbox.pipeline import Incoming
from alertd.mail.parse import parse_mail
from alertd.rulecases import run_cases
from alertd.rules.explain import decision_summary, mail_summary, trace_rows
from alertd.rules.load import check_rules, load_rules
from alertd.runtime import open_runtime
from alertd.settings import Settings

app = typer.Typer(help="Check and try rules.", no_args_is_help=True)


@app.command("check")
def check(
    directory: Annotated[
        Path | None, typer.Argument(help="Rules directory (default: the configured one).")
    ] = None,
) -> int:
    """Validate a rules directory; exit 0 when it is sound, 78 with every problem otherwise."""
    target = directory or settings().rules.dir
    report = check_rules(target)
    for problem in report.general:
        typer.echo(problem.render())
    for file_report in report.files:
        verdict = "SUCCESS" if file_report.ok else "FAILED"
        typer.echo(f"Checking {file_report.path}  {verdict}")
        for problem in file_report.problems:
            typer.echo(f"  {problem.render()}")
    problems = report.problems
    if problems:
        failed = sum(1 for f in report.files if not f.ok)
        typer.echo(f"Found {len(problems)} problem(s) in {failed or 1} of "
                   f"{len(report.files)} file(s).")
        return EX_CONFIG
    ruleset = report.ruleset
    assert ruleset is not None
    typer.echo(
        f"Rules version {ruleset.version}: {len(ruleset.ticket_types)} ticket type(s), "
        f"{len(ruleset.senders)} sender(s), {len(ruleset.alert_types)} alert type(s)."
    )
    return 0


@app.command("test")
def try_rules(
    mail: Annotated[Path | None, typer.Argument(help="A mail file (.eml).")] = None,
    cases: Annotated[
        Path | None, typer.Option("--cases", help="Run a YAML table of cases instead.")
    ] = None,
    rules_dir: Annotated[
        Path | None, typer.Option("--rules", help="Rules directory (default: configured).")
    ] = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="table or json.")] = (
        OutputFormat.table
    ),
) -> int:
    """Show what one mail would do, or run a table of cases (PASS/FAIL each)."""
    loaded = settings()
    directory = rules_dir or loaded.rules.dir
    ruleset = load_rules(directory)
    if cases is not None:
        return run(_cases(cases, ruleset, loaded, output))
    if mail is None:
        raise typer.BadParameter("give a mail file, or --cases FILE")
    try:
        data = mail.read_bytes()
    except OSError as error:
        raise NotFound(f"{mail}: {error.strerror}") from None
    return run(_one(data, ruleset, loaded, _needs_scratch(loaded), output))


def _needs_scratch(loaded: Settings) -> bool:
    """Whether the configured SQLite file does not exist yet (then an empty one stands in)."""
    url = loaded.database.url
    if not url.startswith("sqlite"):
        return False
    database = make_url(async_url(url)).database
    return not database or not Path(database).exists()


async def _cases(path: Path, ruleset: Any, loaded: Settings, output: OutputFormat) -> int:
    results = await run_cases(path, ruleset, reopen_window=loaded.rules.reopen_window,
                              future_skew=loaded.rules.future_skew)
    failed = [r for r in results if not r.passed]
    if output is OutputFormat.json:
        emit_json([{"name": r.name, "passed": r.passed, "failures": r.failures, "got": r.got}
                   for r in results])
    else:
        for result in results:
            typer.echo(f"{'PASS' if result.passed else 'FAIL'}  {result.name}")
            for failure in result.failures:
                typer.echo(f"      {failure}")
        typer.echo(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return EX_FAILURE if failed else 0


async def _one(
    data: bytes, ruleset: Any, loaded: Settings, scratch: bool, output: OutputFormat
) -> int:
    parsed = parse_mail(data)
    decision = ruleset.evaluate(parsed, None)
    effect: dict[str, Any] = {}
    try:
        effect = await _dry_run(loaded, scratch, parsed, ruleset)
    except AlertdError as error:
        effect = {"asset": None, "action": None,
                  "note": f"database not consulted: {error}"}
    if output is OutputFormat.json:
        emit_json({
            "mail": dict(mail_summary(parsed)),
            "decision": dict(decision_summary(decision)),
            "fields": dict(decision.fields),
            "trace": [step.as_dict() for step in decision.trace],
            **effect,
        })
        return 0
    console.rule("Mail")
    emit_fields(mail_summary(parsed))
    console.rule("Rules")
    emit_table(None, ["stage", "rule", "result", "detail"], trace_rows(decision))
    emit_fields(decision_summary(decision))
    console.rule("Effect (nothing written)")
    emit_fields(list(effect.items()))
    return 0


async def _dry_run(
    loaded: Settings, use_scratch: bool, parsed: Any, ruleset: Any
) -> dict[str, Any]:
    """Resolve the asset and apply the ticket logic, then roll everything back."""
    scratch = tempfile.TemporaryDirectory(prefix="alertd-test-") if use_scratch else None
    try:
        target = loaded
        if scratch is not None:
            url = f"sqlite:///{Path(scratch.name) / 'empty.db'}"
            target = loaded.model_copy(update={
                "database": loaded.database.model_copy(update={"url": url, "auto_upgrade": True})
            })
        async with open_runtime(target, with_rules=False) as runtime:
            session = runtime.sessions()
            try:
                await session.begin()
                [done] = await runtime.pipeline().process(
                    session,
                    [Incoming(None, parsed, Envelope(source="rules-test"), datetime.now(UTC))],
                    ruleset,
                )
            finally:
                await session.rollback()
                await session.close()
    finally:
        if scratch is not None:
            scratch.cleanup()
    completion, asset = done.completion, done.asset
    return {
        "asset": asset.asset_name if asset is not None and asset.matched else None,
        "matched_by": asset.matched_by if asset is not None else None,
        "client": asset.client_name if asset is not None else None,
        "action": completion.action,
        "ticket_id": completion.ticket_id,
        "note": ("empty database: no assets or tickets yet" if scratch else
                 completion.reason),
    }
