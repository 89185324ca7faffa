"""The FastAPI application: `/healthz`, `/metrics` and the token-protected API (R6.5, R6.7).

`create_app` assembles the parts: health and metrics are open (monitors and
Prometheus scrape them); tickets, assets and messages need the bearer token
(`auth.py`). `/openapi.json` describes every route and shape; the
interactive docs pages are off, the daemon serves no HTML.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from alertd import __version__
from alertd.web import assets, messages, metrics, tickets
from alertd.web.common import Api, install_error_handlers


@dataclass
class Health:
    """What /healthz reports, read live from the running daemon."""

    ready: Callable[[], bool]
    rules_version: Callable[[], str]
    components: Callable[[], dict[str, str]]
    last_reload_ok: Callable[[], bool]


def create_app(health: Health, api: Api | None = None) -> FastAPI:
    """The application, bound to the daemon's live state; ``api`` adds /metrics' counts and
    the API routes (without it they are absent)."""
    app = FastAPI(
        title="alertd", version=__version__, docs_url=None, redoc_url=None,
        description="Alert tickets, the assets they are linked to, and the durable inbox. "
                    "Every route but /healthz and /metrics needs `Authorization: Bearer "
                    "<token>` (http.token_file or http.token_env).",
    )
    install_error_handlers(app)

    @app.get("/healthz", tags=["monitoring"], responses={503: {"description": "Not ready"}})
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

    app.include_router(metrics.router(api.runtime.readers if api is not None else None))
    if api is not None:
        app.include_router(tickets.router(api))
        app.include_router(assets.router(api))
        app.include_router(messages.router(api))
    return app
