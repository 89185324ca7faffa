"""What every API route shares: the daemon's services, sessions, parameter types and errors.

Errors become status codes here, in one place: NotFound 404, a refused
status change or retry 409, the database unavailable 503, bad input 422. Every route
reaches the database through `Api.reading()` or `Api.writing()`, which turn
"database unavailable" failures into StorageUnavailable, so an outage is a
503 with a plain message and never a 500.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from alertd.db.engine import storage_errors
from alertd.errors import NotFound, StorageUnavailable
from alertd.inbox.store import RetryRefused
from alertd.runtime import Runtime
from alertd.tickets.links import Links
from alertd.tickets.service import TicketStateError

MAX_ID = 2**31 - 1
"""Ids are 32-bit integers in PostgreSQL; a larger one names nothing."""
MAX_LIMIT = 1000
NO_NUL = r"^[^\x00]*$"
"""PostgreSQL text cannot hold NUL characters, so no parameter may carry one."""


@dataclass(frozen=True)
class Api:
    """The daemon's services the API works through, and its bearer token."""

    runtime: Runtime
    links: Links
    token: str | None
    """None: no token configured, so every API route answers 401."""

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A read-only session (no write lock on SQLite)."""
        async with storage_errors(), self.runtime.readers() as session:
            yield session

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits when the block ends without error."""
        async with storage_errors(), self.runtime.sessions.begin() as session:
            yield session


class Model(BaseModel):
    """Base of the API's response bodies."""


class RequestModel(BaseModel):
    """Base of the API's request bodies: unknown keys are refused (422), not ignored."""

    model_config = ConfigDict(extra="forbid")


class ErrorBody(Model):
    """What every refusal carries: a sentence saying what went wrong."""

    detail: str


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI description of a route's possible refusals."""
    described = {
        400: "The body is not readable JSON",
        401: "No bearer token, or a wrong one (or none configured)",
        404: "No such id",
        409: "The change is not allowed in the current state",
        503: "The database is unavailable; try again later",
    }
    return {code: {"model": ErrorBody, "description": described[code]} for code in codes}


IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="The record's id.")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many (1-1000).")]
Offset = Annotated[int, Query(ge=0, le=MAX_ID, description="Skip this many first.")]


def text_query(description: str) -> Any:
    """A free-text query parameter: bounded length, no NUL characters."""
    return Query(min_length=1, max_length=200, pattern=NO_NUL,
                 description=description)


def install_error_handlers(app: FastAPI) -> None:
    """Map alertd's errors to status codes with a plain message."""

    def refusal(status: int) -> Any:
        async def handler(_request: Request, error: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(error)}, status_code=status)
        return handler

    app.add_exception_handler(NotFound, refusal(404))
    app.add_exception_handler(TicketStateError, refusal(409))
    app.add_exception_handler(RetryRefused, refusal(409))

    async def unavailable(_request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"{error}; try again later"}, status_code=503,
                            headers={"Retry-After": "30"})

    app.add_exception_handler(StorageUnavailable, unavailable)

    async def invalid(_request: Request, error: Exception) -> Response:
        # FastAPI's own handler echoes the input as UTF-8, which fails (500) on a lone
        # surrogate sent as a JSON escape; ASCII-escaped JSON carries any input.
        assert isinstance(error, RequestValidationError)
        body = json.dumps({"detail": jsonable_encoder(error.errors())}, ensure_ascii=True)
        return Response(body, status_code=422, media_type="application/json")

    app.add_exception_handler(RequestValidationError, invalid)
