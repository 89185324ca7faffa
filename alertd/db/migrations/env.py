"""Alembic environment: migrations always run on a connection alertd hands in."""

from __future__ import annotations

from alembic import context

import alertd.sources.imap_state  # noqa: F401 - its table belongs to the schema too
from alertd.db.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `alertd db upgrade`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
