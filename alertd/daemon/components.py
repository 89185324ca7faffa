"""What the supervisor runs: named components, each wrapped in a guard.

A component is anything with a `name` and an `async run(stopping)` that
returns only after `stopping` is set (SMTP listener, IMAP poller, inbox
worker, import scheduler, web server…). Components handle their own
transient errors with backoff; only bugs reach the guard, which logs them,
records the failure and sets `stopping`, so one crash drains the others
instead of cutting them off.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from alertd.logs import get_logger

log = get_logger(__name__)


class Component(Protocol):
    """A long-lived part of the daemon."""

    name: str

    async def run(self, stopping: asyncio.Event) -> None:
        """Work until ``stopping`` is set, then finish the unit of work in hand and return."""
        ...


@dataclass
class ComponentStates:
    """What each component is doing, for /healthz and the exit status."""

    states: dict[str, str] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)

    def set(self, name: str, state: str) -> None:
        """Record ``name``'s state: starting, running, stopped, failed…"""
        self.states[name] = state


async def guard(
    component: Component,
    stopping: asyncio.Event,
    states: ComponentStates,
    *,
    failing: asyncio.Event | None = None,
) -> None:
    """Run ``component``; on a crash or an early exit, log it and stop the daemon.

    ``failing`` is the event a failure sets (default: ``stopping``); the HTTP
    endpoint runs on a later stop event but still stops the daemon if it fails.
    """
    name = component.name
    stop_all = failing or stopping
    with structlog.contextvars.bound_contextvars(component=name):
        states.set(name, "running")
        try:
            await component.run(stopping)
        except asyncio.CancelledError:
            states.set(name, "cancelled")
            raise
        except Exception:
            states.set(name, "failed")
            states.failed.append(name)
            log.exception("component.failed")
            stop_all.set()
            return
        if not stopping.is_set():
            states.set(name, "failed")
            states.failed.append(name)
            log.error("component.exited", reason="returned before the daemon was stopping")
            stop_all.set()
            return
        states.set(name, "stopped")
