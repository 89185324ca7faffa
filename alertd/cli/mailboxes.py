"""`alertd mailboxes check [NAME...]`: can alertd log into each configured IMAP mailbox?

For every mailbox under `imap:` (or the ones named), it connects the way the
daemon does, logs in, and examines the folder read-only, then prints the
server, folder, message count, whether the server offers IDLE, MOVE and
UIDPLUS, and either OK or the problem in plain words, with notes on how
alertd works around what the server lacks. Nothing on the server changes,
and the database is not touched.

Exit status: 0 when every mailbox is usable, 78 when one has a configuration
problem (wrong password, missing folder, untrusted certificate), 75 when one
cannot be reached, 1 for anything else.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.text import Text

from alertd.cli.common import OutputFormat, console, emit_json, emit_table, run, settings
from alertd.errors import EX_CONFIG, EX_FAILURE, EX_OK, EX_TEMPFAIL, NotFound
from alertd.sources.imap_check import MailboxCheck, check_mailbox

app = typer.Typer(help="IMAP mailboxes: check that alertd can drain them.",
                  no_args_is_help=True)

_SEVERITY = (EX_CONFIG, EX_TEMPFAIL, EX_FAILURE)


@app.command("check")
def check(
    names: Annotated[list[str] | None, typer.Argument(
        help="Mailbox names to check (default: every configured mailbox).")] = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="table or json.")] = (
        OutputFormat.table
    ),
) -> None:
    """Log into each mailbox; report folder, message count, capabilities and problems."""
    mailboxes = settings().imap
    if names:
        unknown = sorted(set(names) - {mailbox.name for mailbox in mailboxes})
        if unknown:
            raise NotFound(f"no mailbox named {', '.join(unknown)} under imap: in the settings")
        mailboxes = tuple(mailbox for mailbox in mailboxes if mailbox.name in names)
    if not mailboxes:
        console.print("no IMAP mailboxes are configured (add them under imap: in alertd.yaml)")
        raise typer.Exit(EX_OK)

    async def go() -> list[MailboxCheck]:
        return list(await asyncio.gather(*(check_mailbox(mailbox) for mailbox in mailboxes)))

    results = run(go())
    if output is OutputFormat.json:
        emit_json([result.as_dict() for result in results])
    else:
        _print(results)
    codes = {result.exit_code() for result in results}
    raise typer.Exit(next((code for code in _SEVERITY if code in codes), EX_OK))


def _yes(value: bool | None) -> str:
    return "" if value is None else ("yes" if value else "no")


def _print(results: list[MailboxCheck]) -> None:
    emit_table(None, ["mailbox", "server", "security", "folder", "messages", "IDLE", "MOVE",
                      "UIDPLUS", "status"], [
        (result.name, result.server, result.security, result.folder, result.messages,
         _yes(result.capabilities.get("IDLE")), _yes(result.capabilities.get("MOVE")),
         _yes(result.capabilities.get("UIDPLUS")), "OK" if result.ok else "FAILED")
        for result in results
    ])
    for result in results:
        for problem in result.problems:
            line = Text(f"{result.name}: ", style="bold")
            line.append("problem: ", style="bold red")
            line.append(problem)
            console.print(line)
        for note in result.notes:
            line = Text(f"{result.name}: ", style="bold")
            line.append(f"note: {note}")
            console.print(line)
