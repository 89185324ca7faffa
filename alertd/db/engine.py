"""The async engine, its sessions, and the schema's version.

SQLite runs in WAL mode with a busy timeout and foreign keys on. Storing
mail, which a 250 reply or an IMAP move depends on, commits with
`synchronous=FULL` (see `sqlite_writer.py`); these connections use NORMAL:
what they commit (a message's outcome together with its ticket changes) can
at worst be rolled back as a whole by a power cut, and is then simply
processed again. Write transactions start with `BEGIN IMMEDIATE`, so the one writer
takes its lock up front instead of failing half-way when a read turns into
a write; read-only sessions (`read_only=True` execution option) start a
plain deferred transaction and never block writers.
PostgreSQL is used through asyncpg. Plain `sqlite:///` and `postgresql://`
URLs are accepted; the async driver is chosen here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy.exc
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from alertd.errors import SchemaOutdated, StorageUnavailable

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30


def async_url(url: str) -> str:
    """The same database, addressed through its asyncio driver."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    if parsed.drivername in {"sqlite", "sqlite+pysqlite"}:
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername in {"postgresql", "postgresql+psycopg2", "postgresql+psycopg"}:
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(engine: AsyncEngine) -> bool:
    """Whether ``engine`` is the single-writer SQLite backend."""
    return engine.dialect.name == "sqlite"


def create_engine(
    url: str,
    *,
    pool_size: int = 5,
    busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S,
    wal_autocheckpoint: bool = True,
) -> AsyncEngine:
    """An engine for ``url`` with alertd's connection settings.

    ``wal_autocheckpoint=False`` (the daemon) leaves copying SQLite's WAL back
    into the database to the checkpoint component, outside any transaction.
    """
    target = async_url(url)
    if target.startswith("sqlite"):
        path = make_url(target).database
        if path and path != ":memory:":
            folder = Path(path).expanduser().resolve().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise StorageUnavailable(
                    f"cannot create the database folder {folder}: {error.strerror}"
                ) from error
        engine = create_async_engine(
            target, connect_args={"timeout": busy_timeout_s}, pool_size=pool_size
        )
        _configure_sqlite(engine, busy_timeout_s, 1000 if wal_autocheckpoint else 0)
        return engine
    return create_async_engine(target, pool_size=pool_size, pool_pre_ping=True)


def _configure_sqlite(engine: AsyncEngine, busy_timeout_s: float, autocheckpoint: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA wal_autocheckpoint={autocheckpoint}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


READ_ONLY = "alertd_read_only"


def session_factory(
    engine: AsyncEngine, *, read_only: bool = False
) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded values after commit (they are read for logs).

    ``read_only`` sessions never take SQLite's write lock: use them for
    listing and showing, never for changes.
    """
    bind = engine.execution_options(**{READ_ONLY: True}) if read_only else engine
    return async_sessionmaker(bind, expire_on_commit=False)


# Errors that mean "the database is not there right now", not "this query is wrong".
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.TimeoutError,
    OSError,
    asyncio.TimeoutError,
)


# PostgreSQL SQLSTATEs that mean "try again later": connection exceptions (08),
# insufficient resources (53, e.g. too many connections), the server shutting
# down or starting up (57P0x), serialization failures and deadlocks (40001,
# 40P01), lock and statement timeouts (55P03, 57014).
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53")
_TRANSIENT_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "57P04", "57P05", "40001",
                                  "40P01", "55P03", "57014"})


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` says the database is down, busy, locked or unreachable."""
    if isinstance(error, sqlalchemy.exc.DBAPIError):
        if error.connection_invalidated:
            return True
        state = getattr(error.orig, "sqlstate", None)
        if isinstance(state, str) and (
            state in _TRANSIENT_SQLSTATES or state[:2] in _TRANSIENT_SQLSTATE_CLASSES
        ):
            return True
    if isinstance(error, _UNAVAILABLE):
        return True
    name = type(error).__module__
    return name.startswith("asyncpg") and "Connection" in type(error).__name__


@asynccontextmanager
async def storage_errors() -> AsyncIterator[None]:
    """Turn "database unavailable" errors into StorageUnavailable."""
    try:
        yield
    except StorageUnavailable:
        raise
    except Exception as error:
        if is_unavailable(error):
            raise StorageUnavailable(f"database unavailable: {_short(error)}") from error
        raise


def _short(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The schema version this alertd expects."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


async def current_revision(engine: AsyncEngine) -> str | None:
    """The schema version the database is at (None when empty)."""

    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with storage_errors(), engine.connect() as connection:
        return await connection.run_sync(read)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply migrations up to ``revision``."""

    def run(connection: Connection) -> None:
        command.upgrade(_alembic_config(connection), revision)

    async with storage_errors(), engine.begin() as connection:
        await connection.run_sync(run)


async def ensure_schema(engine: AsyncEngine, *, upgrade_itself: bool) -> None:
    """Upgrade (when allowed) or insist that the schema is current."""
    current = await current_revision(engine)
    if current == head_revision():
        return
    if upgrade_itself:
        await upgrade(engine)
        return
    raise SchemaOutdated(
        f"the database schema is at {current or 'nothing'}, this alertd needs "
        f"{head_revision()}: run `alertd db upgrade`"
    )
