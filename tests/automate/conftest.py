"""Fixtures for the Automate tests: the local Automate over real HTTP, settings, clients, runtimes.

The server is `alertd.testing.automate_server`, started inside the test's
event loop on a loopback port with uvicorn's signal handling off. Retry
back-offs go through a recording sleep, so tests that provoke 429s and
500s check the delays asked for without waiting them out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from alertd.automate.client import AutomateClient
from alertd.runtime import Runtime, open_runtime
from alertd.settings import AutomateSettings, Settings, bundled_rules_dir
from alertd.testing.automate_server import (
    DEFAULT_CLIENT_ID,
    AutomateApp,
    AutomateUser,
    RunningServer,
    serve,
)
from tests.automate.data import IMPORT, small

PASSWORD = "s3cret-integrator-password"
PASSWORD_ENV = "ALERTD_TEST_AUTOMATE_PASSWORD"
ENVIRON = {PASSWORD_ENV: PASSWORD}


@pytest.fixture
def automate_state() -> AutomateApp:
    """The local Automate's state: the small data set and its users, recording exchanges."""
    return AutomateApp(
        data=small(),
        users=[
            AutomateUser("alertd-integrator", PASSWORD),
            AutomateUser("mfa-user", PASSWORD, mfa=True),
            AutomateUser("limited", PASSWORD, denied=frozenset({"computers", "routers"})),
        ],
    )


@pytest.fixture
async def automate(automate_state: AutomateApp) -> AsyncIterator[RunningServer]:
    """The local Automate served over HTTP on a loopback port."""
    async with serve(automate_state) as running:
        yield running


class Sleeps:
    """A stand-in for asyncio.sleep that records each delay and yields once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


@pytest.fixture
def sleeps() -> Sleeps:
    """The recording sleep the clients in these tests back off with."""
    return Sleeps()


def automate_section(url: str, **overrides: Any) -> dict[str, Any]:
    """An `automate:` settings section for the local server."""
    section: dict[str, Any] = {
        "url": url, "client_id": DEFAULT_CLIENT_ID, "username": "alertd-integrator",
        "password_env": PASSWORD_ENV, "max_rate": "10000/s", "max_concurrency": 4,
        "retries": 4, "import": IMPORT,
    }
    section.update(overrides)
    return section


@pytest.fixture
def make_automate(automate: RunningServer) -> Callable[..., AutomateSettings]:
    """AutomateSettings for the local server; keyword arguments override keys."""

    def make(**overrides: Any) -> AutomateSettings:
        return AutomateSettings.model_validate(automate_section(automate.url, **overrides))

    return make


@pytest.fixture
def client_for(sleeps: Sleeps) -> Callable[[AutomateSettings], AutomateClient]:
    """An AutomateClient (to use with `async with`) that backs off through ``sleeps``."""

    def make(settings: AutomateSettings) -> AutomateClient:
        return AutomateClient(settings, sleep=sleeps, environ=ENVIRON)

    return make


@pytest.fixture
def import_settings(database_url: str, automate: RunningServer) -> Callable[..., Settings]:
    """Settings on this test's database (SQLite, then PostgreSQL) with the local Automate."""

    def make(rules_dir: Path | None = None, **overrides: Any) -> Settings:
        return Settings.model_validate({
            "database": {"url": database_url},
            "rules": {"dir": rules_dir or bundled_rules_dir()},
            "automate": automate_section(automate.url, **overrides),
        })

    return make


@pytest.fixture
async def automate_runtime(import_settings: Callable[..., Settings]) -> AsyncIterator[Runtime]:
    """alertd's services over this test's database, configured for the local Automate."""
    async with open_runtime(import_settings()) as opened:
        yield opened
