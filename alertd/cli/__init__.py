"""The `alertd` command line: one typer app; expected errors become a message and an exit code.

No traceback is printed for an error alertd raises on purpose; configuration
errors exit 78, storage outages 75, everything else that went wrong 1.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import click
import typer

from alertd import __version__
from alertd.cli import (
    assets,
    automate,
    db,
    ingest,
    mailboxes,
    messages,
    outbox,
    rules,
    run,
    smtp,
    tickets,
)
from alertd.cli.common import STATE, err_console
from alertd.errors import AlertdError, exit_code_for

app = typer.Typer(
    name="alertd",
    help="Alert e-mail to deduplicated, asset-linked tickets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("run")(run.run)
app.command("ingest")(ingest.ingest)
app.add_typer(messages.app, name="messages")
app.add_typer(tickets.app, name="tickets")
app.add_typer(assets.app, name="assets")
app.add_typer(rules.app, name="rules")
app.add_typer(db.app, name="db")
app.add_typer(smtp.app, name="smtp")
app.add_typer(automate.app, name="automate")
app.add_typer(mailboxes.app, name="mailboxes")
app.add_typer(outbox.app, name="outbox")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"alertd {__version__}")
        raise typer.Exit


@app.callback()
def _options(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", envvar="ALERTD_CONFIG", help="Settings file (alertd.yaml)."),
    ] = None,
    log_level: Annotated[
        str | None, typer.Option("--log-level", help="debug, info, warning or error.")
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    """alertd: alert e-mail to deduplicated, asset-linked tickets."""
    STATE.config = config
    STATE.log_level = log_level


def main() -> None:
    """Entry point of the `alertd` console script."""
    try:
        result = app(standalone_mode=False)
    except AlertdError as error:
        err_console.print(f"alertd: {error}", markup=False)
        sys.exit(exit_code_for(error))
    except typer.Abort:
        err_console.print("alertd: aborted", markup=False)
        sys.exit(1)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    sys.exit(result if isinstance(result, int) else 0)
