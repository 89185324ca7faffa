"""`alertd run`: the daemon, on alertd.yaml or on its embedded defaults (SPEC R6.1, R6.2)."""

from __future__ import annotations

import asyncio
import sys

from alertd import logs
from alertd.cli.common import STATE
from alertd.daemon.supervisor import run_daemon
from alertd.settings import load_settings


def run() -> int:
    """Run alertd: SMTP listener, inbox workers, rules reload, health endpoint."""
    settings = load_settings(STATE.config)
    level = STATE.log_level or settings.logging.level
    logs.configure(level=level, fmt=settings.logging.format, stream=sys.stdout, cache=True)
    return asyncio.run(run_daemon(settings))
