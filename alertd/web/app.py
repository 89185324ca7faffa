"""The FastAPI application: `/healthz` for monitors and load balancers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from alertd import __version__


@dataclass
class Health:
    """What /healthz reports, read live from the running daemon."""

    ready: Callable[[], bool]
    rules_version: Callable[[], str]
    components: Callable[[], dict[str, str]]
    last_reload_ok: Callable[[], bool]


def create_app(health: Health) -> FastAPI:
    """The application, bound to the daemon's live state."""
    app = FastAPI(title="alertd", version=__version__, docs_url=None, redoc_url=None)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """Ready (200) or not (503), the rules version and each component's state."""
        components = health.components()
        ready = health.ready() and all(state == "running" for state in components.values())
        body: dict[str, Any] = {
            "ready": ready,
            "version": __version__,
            "rules_version": health.rules_version(),
            "rules_last_reload_ok": health.last_reload_ok(),
            "components": components,
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    return app
