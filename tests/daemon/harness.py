"""Running the real daemon in a child process, and talking to it like an MTA would."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alertd.runtime import Runtime, open_runtime
from alertd.settings import Settings


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Daemon:
    """One `alertd run` child process, its JSON log lines, and its ports."""

    def __init__(self, config: dict[str, Any], directory: Path,
                 env: dict[str, str] | None = None) -> None:
        self.directory = directory
        self.config_path = directory / "alertd.yaml"
        self.config = config
        self.config_path.write_text(json.dumps(config, indent=2))
        self.env = env or {}
        self.lines: list[dict[str, Any]] = []
        self.raw_output: list[str] = []
        self._changed = threading.Condition()
        self.process: subprocess.Popen[str] | None = None

    @property
    def smtp_port(self) -> int:
        return int(self.config["smtp"][0]["listen"].rpartition(":")[2])

    @property
    def http_port(self) -> int:
        return int(self.config["http"]["listen"].rpartition(":")[2])

    def start(self, *, wait: bool = True) -> Daemon:
        """Start the process and (by default) wait until it is ready."""
        environment = {k: v for k, v in os.environ.items()
                       if k not in {"ALERTD_DATABASE_URL", "ALERTD_CONFIG", "ALERTD_RULES_DIR"}}
        environment.update(self.env)
        self.lines.clear()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "alertd", "--config", str(self.config_path), "run"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment,
            cwd=self.directory,
        )
        threading.Thread(target=self._read, args=(self.process,), daemon=True).start()
        if wait:
            self.wait_for("daemon.ready")
        return self

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with self._changed:
                self.raw_output.append(line)
                try:
                    self.lines.append(json.loads(line))
                except json.JSONDecodeError:
                    self.lines.append({"event": "(not json)", "text": line})
                self._changed.notify_all()
        process.stdout.close()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, event: str, timeout: float = 30,
                 where: Callable[[dict[str, Any]], bool] = lambda line: True) -> dict[str, Any]:
        """The first log line with this event (and matching ``where``), waiting for it."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if line.get("event") == event and where(line):
                        return line
                if self.process is not None and self.process.poll() is not None:
                    raise AssertionError(f"daemon exited ({self.process.returncode}) before "
                                         f"{event}:\n{''.join(self.raw_output[-40:])}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {event} within {timeout}s:\n"
                                         f"{''.join(self.raw_output[-40:])}")
                self._changed.wait(remaining)

    def events(self, event: str) -> list[dict[str, Any]]:
        """Every log line with this event so far."""
        with self._changed:
            return [line for line in self.lines if line.get("event") == event]

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM and wait for the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """kill -9."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(30)

    def health(self) -> tuple[int, dict[str, Any]]:
        """GET /healthz: status code and body."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}/healthz")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def smtp(self) -> smtplib.SMTP:
        """A connected SMTP client."""
        client = smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=30)
        client.ehlo("test.example.net")
        return client

    def send(self, data: bytes, *, rcpt: str = "alerts@helpdesk.example.net",
             mail_from: str = "automate@example.invalid") -> str:
        """Send one mail; returns the server's reply text to DATA."""
        with self.smtp() as client:
            code, reply = client.mail(mail_from)
            assert code == 250, reply
            code, reply = client.rcpt(rcpt)
            assert code == 250, reply
            code, reply = client.data(data)
            assert code == 250, (code, reply)
            return reply.decode()

    def settings(self) -> Settings:
        """The daemon's settings, to read its database from the test."""
        return Settings.model_validate({k: v for k, v in self.config.items()
                                        if k in {"database", "rules"}})

    def read(self, query: Callable[[Runtime], Any]) -> Any:
        """Run ``query`` against the daemon's database (read-only use)."""

        async def go() -> Any:
            async with open_runtime(self.settings(), with_rules=False) as runtime:
                return await query(runtime)

        return asyncio.run(go())

    def wait_until(self, check: Callable[[], bool], timeout: float = 30) -> None:
        """Poll ``check`` until true."""
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout}s:\n"
                                     f"{''.join(self.raw_output[-30:])}")
            time.sleep(0.05)


def base_config(directory: Path, database_url: str, **extra: Any) -> dict[str, Any]:
    """A daemon configuration on free loopback ports."""
    config: dict[str, Any] = {
        "database": {"url": database_url},
        "smtp": [{"name": "main", "listen": f"127.0.0.1:{free_port()}",
                  "recipients": ["alerts@helpdesk.example.net", "@alerts.example.net"]}],
        "http": {"listen": f"127.0.0.1:{free_port()}"},
        "inbox": {"poll_interval": "200ms"},
        "logging": {"level": "info", "format": "json"},
        "shutdown_grace": "20s",
    }
    config.update(extra)
    return config


@contextmanager
def running(daemons: list[Daemon]) -> Iterator[None]:
    """Kill whatever is still running at the end of a test."""
    try:
        yield
    finally:
        for daemon in daemons:
            if daemon.process is not None and daemon.process.poll() is None:
                daemon.process.kill()
                daemon.process.wait(30)
