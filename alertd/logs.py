"""structlog set-up: JSON lines off a terminal, readable lines on one, secrets scrubbed.

Every stdlib logger (SQLAlchemy, Alembic, mail-parser, later httpx and
aioimaplib) goes through the same processors, so one format covers all.
Context such as the inbox id is bound per task with structlog.contextvars.
Lines below the configured level are dropped first, before any processor.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

SECRET_KEYS = frozenset({"password", "passwd", "secret", "token", "authorization",
                         "api_key", "apikey", "credentials", "auth_data"})
REDACTED = "[redacted]"


def redact_secrets(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace the values of secret-looking keys, at any depth."""
    for key in list(event):
        event[key] = _scrub(key, event[key])
    return event


def _scrub(key: str, value: Any) -> Any:
    lowered = key.lower()
    if any(secret in lowered for secret in SECRET_KEYS):
        return REDACTED
    if isinstance(value, dict):
        return {k: _scrub(str(k), v) for k, v in value.items()}
    return value


def configure(
    level: str = "info", fmt: str = "auto", stream: TextIO | None = None, *, cache: bool = False
) -> None:
    """Route structlog and stdlib logging to ``stream`` (stdout by default)."""
    out = stream or sys.stdout
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        # Lines below the level are dropped before any processor runs: a debug line on a
        # hot path (one per accepted mail) then costs a level check, not a rendered event.
        processors=[structlog.stdlib.filter_by_level, *shared,
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=cache,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if use_json else _keep,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("sqlalchemy", "alembic", "aiosqlite", "asyncio", "mail.log", "uvicorn.error",
                  "aioimaplib", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    logging.getLogger("mailparser").setLevel(logging.ERROR)


def _keep(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    return event


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A logger for module ``name``."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
