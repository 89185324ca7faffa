"""Talking to systemd: sd_notify over $NOTIFY_SOCKET, and the watchdog (SPEC R6.6).

READY=1 once listeners are bound, RELOADING=1/READY=1 around a rules reload,
STOPPING=1 on shutdown, WATCHDOG=1 at half the interval systemd asks for.
Without $NOTIFY_SOCKET (not under systemd) every call does nothing.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time

from alertd.logs import get_logger

log = get_logger(__name__)


class SystemdNotifier:
    """Sends sd_notify messages when run under systemd's Type=notify."""

    def __init__(self, address: str | None) -> None:
        self.address = address

    @classmethod
    def from_environment(cls) -> SystemdNotifier:
        """The notifier for $NOTIFY_SOCKET (a no-op one when unset)."""
        return cls(os.environ.get("NOTIFY_SOCKET") or None)

    def notify(self, *fields: str) -> None:
        """Send `KEY=value` lines; failures are logged, never raised."""
        if not self.address:
            return
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(target)
                sock.sendall("\n".join(fields).encode())
        except OSError as error:
            log.warning("systemd.notify_failed", error=str(error), message=fields[0])

    def reloading(self) -> None:
        """Tell systemd a reload started (with the monotonic time it asks for)."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")


class Watchdog:
    """Proves the event loop is alive: WATCHDOG=1 at half of WATCHDOG_USEC.

    It does not look at the database on purpose: an outage is handled by
    retries, and a restart would not cure it.
    """

    name = "watchdog"

    def __init__(self, notifier: SystemdNotifier) -> None:
        self.notifier = notifier
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.interval = int(usec) / 2_000_000 if usec.isdigit() and mine else None

    async def run(self, stopping: asyncio.Event) -> None:
        """Ping until stopping (or just wait, when systemd wants no watchdog)."""
        if self.interval is None:
            await stopping.wait()
            return
        while not stopping.is_set():
            self.notifier.notify("WATCHDOG=1")
            try:
                await asyncio.wait_for(stopping.wait(), timeout=self.interval)
            except TimeoutError:
                continue
