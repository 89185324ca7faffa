"""`alertd smtp hash-password USER`: a line for the SMTP AUTH users file."""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer

from alertd.sources.smtp_auth import hash_password

app = typer.Typer(help="SMTP listener helpers.", no_args_is_help=True)


@app.command("hash-password")
def hash_password_command(
    user: Annotated[str, typer.Argument(help="The user name the MTA authenticates as.")],
) -> None:
    """Read a password (prompted on a terminal, else from standard input) and print
    `user:hash`, ready for the file named by `auth.users_file`."""
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise typer.BadParameter("the passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise typer.BadParameter("an empty password is not allowed")
    typer.echo(f"{user}:{hash_password(password)}")
