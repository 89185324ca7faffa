"""`alertd db upgrade|current`: the schema's version (Alembic)."""

from __future__ import annotations

import typer

from alertd.cli.common import run, settings
from alertd.db.engine import create_engine, current_revision, head_revision, upgrade

app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)


@app.command("upgrade")
def upgrade_() -> None:
    """Bring the database schema to this alertd's version."""

    async def go() -> None:
        engine = create_engine(settings().database.url)
        try:
            before = await current_revision(engine)
            await upgrade(engine)
            after = await current_revision(engine)
        finally:
            await engine.dispose()
        if before == after:
            typer.echo(f"schema already at {after}")
        else:
            typer.echo(f"schema upgraded from {before or 'nothing'} to {after}")

    run(go())


@app.command("current")
def current() -> None:
    """Print the schema version of the database and the one this alertd needs."""

    async def go() -> None:
        engine = create_engine(settings().database.url)
        try:
            revision = await current_revision(engine)
        finally:
            await engine.dispose()
        head = head_revision()
        state = "up to date" if revision == head else "needs `alertd db upgrade`"
        typer.echo(f"database at {revision or 'nothing'}, alertd needs {head}: {state}")

    run(go())
