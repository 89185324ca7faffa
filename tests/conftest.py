"""Shared fixtures: the real databases (a SQLite file and the real PostgreSQL), settings, runtimes.

PostgreSQL tests use the server named by ALERTD_TEST_PG_URL (`scripts/test`
sets it to the local server). Each test session gets its own database, and
every test starts from empty tables; when the variable is unset or the
server is unreachable those tests are skipped with the reason shown.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from alertd.clock import SystemClock
from alertd.db.engine import create_engine, upgrade
from alertd.db.tables import Base
from alertd.runtime import Runtime, open_runtime
from alertd.settings import Settings, bundled_rules_dir

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("ALERTD_CORPUS_DIR", REPO.parent / "shared" / "corpus"))
PG_URL_ENV = "ALERTD_TEST_PG_URL"


def corpus_dir(*parts: str) -> Path:
    """A folder of the shared mail corpus, or a skip saying where it was looked for."""
    path = CORPUS.joinpath(*parts)
    if not path.is_dir():
        pytest.skip(f"mail corpus folder {path} is absent (set ALERTD_CORPUS_DIR)")
    return path


# -- SQLite -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database, copied for each test (migrating is the slow part)."""
    path = tmp_path_factory.mktemp("template") / "alertd.db"

    async def build() -> None:
        engine = create_engine(f"sqlite:///{path}")
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(build())
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A fresh, migrated SQLite file of this test's own."""
    target = tmp_path / "alertd.db"
    shutil.copyfile(sqlite_template, target)
    return f"sqlite:///{target}"


# -- PostgreSQL -------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A migrated PostgreSQL database for this test session, dropped at the end."""
    base = os.environ.get(PG_URL_ENV)
    if not base:
        pytest.skip(f"{PG_URL_ENV} is not set: PostgreSQL tests skipped")
    name = f"alertd_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = make_url(base).set(database=name).render_as_string(hide_password=False)

    async def admin(statement: str) -> None:
        engine = create_engine(base)
        try:
            async with engine.connect() as connection:
                connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
                await connection.execute(text(statement))
        finally:
            await engine.dispose()

    async def migrate() -> None:
        engine = create_engine(url)
        await upgrade(engine)
        await engine.dispose()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except Exception as error:
        pytest.skip(f"PostgreSQL at {base} unusable: {error}")
    asyncio.run(migrate())
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def empty_pg(url: str) -> str:
    """Empty every table of the test database, restarting ids."""

    async def truncate() -> None:
        engine = create_engine(url)
        names = ", ".join(table.name for table in Base.metadata.sorted_tables)
        async with engine.begin() as connection:
            await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        await engine.dispose()

    asyncio.run(truncate())
    return url


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """The session's PostgreSQL database, emptied for this test."""
    return empty_pg(pg_database)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs twice: on a SQLite file and on the real PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(name)
    return url


# -- settings and runtimes --------------------------------------------------------


@pytest.fixture
def make_settings(database_url: str) -> Callable[..., Settings]:
    """Settings on this test's database; keyword arguments override rules settings."""

    def make(rules_dir: Path | None = None, **rules: Any) -> Settings:
        return Settings.model_validate({
            "database": {"url": database_url},
            "rules": {"dir": rules_dir or bundled_rules_dir(), **rules},
            "inbox": {"retry_backoff": timedelta(seconds=1)},
        })

    return make


@pytest.fixture
async def runtime(make_settings: Callable[..., Settings]) -> AsyncIterator[Runtime]:
    """alertd's services over this test's database and the bundled rules."""
    async with open_runtime(make_settings(), clock=SystemClock()) as opened:
        yield opened
    leftovers = [t for t in asyncio.all_tasks()
                 if t is not asyncio.current_task() and not t.done()]
    assert not leftovers, f"tasks left behind: {leftovers}"
