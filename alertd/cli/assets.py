"""`alertd assets list`: the assets alerts are matched against (R4.1)."""

from __future__ import annotations

from typing import Annotated

import typer

from alertd.assets.store import list_assets
from alertd.cli.common import OutputFormat, database_session, emit_json, emit_table, run

app = typer.Typer(help="Assets (brought in by the Automate import).", no_args_is_help=True)


@app.command("list")
def list_(
    limit: Annotated[int | None, typer.Option(help="At most this many.")] = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="table or json.")] = (
        OutputFormat.table
    ),
) -> None:
    """List assets with their client, site and Automate id."""

    async def go() -> None:
        async with database_session() as (_, session):
            rows = await list_assets(session, limit=limit)
        if output is OutputFormat.json:
            emit_json([row.as_dict() for row in rows])
            return
        emit_table(
            "Assets",
            ["id", "name", "kind", "automate id", "asset tag", "client", "site", "parent"],
            ([r.id, r.name, r.kind, r.automate_id, r.asset_tag, r.client, r.site, r.parent_id]
             for r in rows),
        )

    run(go())
