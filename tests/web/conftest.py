"""The HTTP API served for real: uvicorn on a free loopback port, over the test's database.

The server runs in a thread with its own event loop, as it would in the
daemon, so tests talk to it over TCP with httpx (or schemathesis' requests)
while preparing data through their own runtime on the same database.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from alertd.assets.store import add_asset, add_client, add_site
from alertd.runtime import Runtime, open_runtime
from alertd.settings import Settings
from alertd.tickets.links import Links
from alertd.web.app import Health, create_app
from alertd.web.auth import load_token
from alertd.web.common import Api
from alertd.web.server import WebServer

TOKEN = "s3cret-api-token"
AUTOMATE_URL = "https://rmm.example.net"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class ApiServer:
    """The alertd app (health, metrics, API) served by uvicorn in a thread of its own."""

    def __init__(self, settings: Settings, *, check_schema: bool = True) -> None:
        self.settings = settings
        self.check_schema = check_schema
        self.port = 0
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._serve, name="api-server", daemon=True)

    @property
    def url(self) -> str:
        """Where the server answers."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ApiServer:
        """Start serving; returns once the port is bound (or raises what went wrong)."""
        self._thread.start()
        self._ready.wait(60)
        if self._failure is not None:
            raise self._failure
        return self

    def stop(self) -> None:
        """Finish open requests and stop."""
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(60)

    def _serve(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:  # handed to the test thread by start()
            self._failure = error
            self._ready.set()

    async def _main(self) -> None:
        async with open_runtime(self.settings, with_rules=False,
                                check_schema=self.check_schema) as runtime:
            assert self.settings.http is not None
            api = Api(runtime=runtime, links=Links.from_settings(self.settings),
                      token=load_token(self.settings.http))
            app = create_app(Health(ready=lambda: True, rules_version=lambda: "test",
                                    components=dict, last_reload_ok=lambda: True), api)
            server = WebServer(app, "127.0.0.1:0")
            server.start()
            assert server.socket is not None
            self.port = int(server.socket.getsockname()[1])
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            self._ready.set()
            await server.run(self._stopping)


def api_settings(database_url: str, token_file: Path | None, **extra: Any) -> Settings:
    """Settings for the served app: the database, Automate (for the default links), the token."""
    return Settings.model_validate({
        "database": {"url": database_url},
        "automate": {"url": AUTOMATE_URL, "client_id": "alertd-tests", "username": "alertd",
                     "password_env": "ALERTD_TEST_AUTOMATE_PASSWORD_UNUSED"},
        "http": {"listen": "127.0.0.1:0",
                 **({"token_file": str(token_file)} if token_file is not None else {})},
        **extra,
    })


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    """A token file as systemd credentials write them (a trailing newline)."""
    path = tmp_path / "api-token"
    path.write_text(f"  {TOKEN}\n")
    return path


@pytest.fixture
def serve() -> Iterator[Callable[..., ApiServer]]:
    """Start API servers on given settings; all are stopped at the end of the test."""
    started: list[ApiServer] = []

    def start(settings: Settings, **kwargs: Any) -> ApiServer:
        server = ApiServer(settings, **kwargs)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(serve: Callable[..., ApiServer], database_url: str, token_file: Path) -> ApiServer:
    """The API over this test's database (SQLite file, then PostgreSQL), with the token."""
    return serve(api_settings(database_url, token_file))


@pytest.fixture
async def client(server: ApiServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the served API that sends the right token."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30,
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        yield http


@pytest.fixture
async def fleet(runtime: Runtime) -> dict[str, int]:
    """A client with a site, a server (an Automate computer), its printer and a router."""
    async with runtime.sessions.begin() as session:
        northwind = await add_client(session, "Northwind Traders", automate_id="41", now=T0)
        contoso = await add_client(session, "Contoso Ltd", automate_id="27", now=T0)
        office = await add_site(session, northwind, "Head Office", automate_id="7", now=T0)
        fs01 = await add_asset(session, "NW-FS01", kind="Server", now=T0,
                               automate_kind="computer", automate_id="2201",
                               client_id=northwind, site_id=office, serial="SN-2201",
                               fields={"os": "Windows Server 2022"})
        printer = await add_asset(session, "NW-PRN 1", kind="Printer", now=T0,
                                  automate_kind="printer", automate_id="2201:3",
                                  client_id=northwind, site_id=office, parent_id=fs01)
        router = await add_asset(session, "NW-GW", kind="Router", now=T0,
                                 automate_kind="router", automate_id="12",
                                 client_id=northwind, site_id=office)
        web01 = await add_asset(session, "CT-WEB01", kind="Server", now=T0,
                                automate_kind="computer", automate_id="3100",
                                client_id=contoso)
    return {"northwind": northwind, "contoso": contoso, "office": office, "fs01": fs01,
            "printer": printer, "router": router, "web01": web01}
