"""Every operation in `/openapi.json`, fed generated input by schemathesis: never a 5xx.

The API is served over a database holding a few tickets, assets and
messages, so generated ids sometimes hit real rows. Every request carries
the valid token, so the routes themselves are exercised, not just the
token check. On PostgreSQL, where NUL characters and 64-bit ids are
refused by the server, this also proves such input is a 422 and not a 500.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance

from alertd.assets.store import add_asset, add_client
from alertd.runtime import open_runtime
from tests.conftest import empty_pg
from tests.helpers import deliver_and_process
from tests.mails import automate_tagged
from tests.web.conftest import T0, TOKEN, ApiServer, api_settings

EXAMPLES = 100
"""Generated cases per operation: enough to reach every parameter, bounded in time."""


def seeded(database_url: str, directory: Path) -> Iterator[schemathesis.BaseSchema]:
    """Serve the API over ``database_url`` with some data in it, and load its schema."""

    async def seed() -> None:
        async with open_runtime(api_settings(database_url, None)) as runtime:
            async with runtime.sessions.begin() as session:
                client = await add_client(session, "Northwind Traders", automate_id="41", now=T0)
                await add_asset(session, "NW-FS01", kind="Server", now=T0,
                                automate_kind="computer", automate_id="2201", client_id=client)
            for computer in (2201, 1, 2):
                await deliver_and_process(runtime, automate_tagged(
                    "FAILED", date=T0, computer_id=computer, host=f"HOST-{computer}"))
            await deliver_and_process(runtime, b"\r\n\r\n")

    asyncio.run(seed())
    token_file = directory / "api-token"
    token_file.write_text(TOKEN)
    server = ApiServer(api_settings(database_url, token_file)).start()
    try:
        yield schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    finally:
        server.stop()


@pytest.fixture(scope="module")
def sqlite_schema(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[schemathesis.BaseSchema]:
    """The API's schema, served over a SQLite file."""
    directory = tmp_path_factory.mktemp("openapi-sqlite")
    shutil.copyfile(sqlite_template, directory / "alertd.db")
    yield from seeded(f"sqlite:///{directory / 'alertd.db'}", directory)


@pytest.fixture(scope="module")
def pg_schema(
    pg_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[schemathesis.BaseSchema]:
    """The API's schema, served over the real PostgreSQL."""
    yield from seeded(empty_pg(pg_database), tmp_path_factory.mktemp("openapi-pg"))


OPERATIONS = [
    ("GET", "/tickets"), ("GET", "/tickets/{ticket_id}"), ("POST", "/tickets/{ticket_id}/resolve"),
    ("POST", "/tickets/{ticket_id}/close"), ("GET", "/assets"), ("GET", "/assets/{asset_id}"),
    ("GET", "/messages"), ("GET", "/messages/{message_id}"),
    ("POST", "/messages/{message_id}/retry"), ("GET", "/metrics"), ("GET", "/healthz"),
]


def fuzz(schema: schemathesis.BaseSchema, method: str, path: str) -> None:
    """Run generated requests, valid and invalid, against one operation, with the token."""
    operation = schema[path][method]
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                      operation.as_strategy(GenerationMode.NEGATIVE))

    @given(case=cases)
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def no_server_error(case: Any) -> None:
        response = case.call(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        assert response.status_code < 500, (case.method, case.formatted_path, case.query,
                                            case.body, response.text)
        case.validate_response(response, checks=[not_a_server_error, status_code_conformance,
                                                 content_type_conformance])

    no_server_error()


def test_the_list_covers_every_operation(sqlite_schema: schemathesis.BaseSchema) -> None:
    """The operations fuzzed below are all the schema has (a new route joins the list)."""
    described = {(method.upper(), path)
                 for path, item in sqlite_schema.raw_schema["paths"].items() for method in item}
    assert described == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_no_operation_answers_5xx_on_sqlite(
    sqlite_schema: schemathesis.BaseSchema, method: str, path: str
) -> None:
    """Generated paths, queries and bodies never make the API fail (SQLite)."""
    fuzz(sqlite_schema, method, path)


@pytest.mark.postgres
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_no_operation_answers_5xx_on_postgresql(
    pg_schema: schemathesis.BaseSchema, method: str, path: str
) -> None:
    """Generated paths, queries and bodies never make the API fail (PostgreSQL)."""
    fuzz(pg_schema, method, path)
