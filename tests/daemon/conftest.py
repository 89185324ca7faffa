"""Fixtures for tests that run the real daemon."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.harness import Daemon, base_config


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Start `alertd run` children; all are killed at the end of the test."""
    started: list[Daemon] = []

    def start(database_url: str, *, wait: bool = True, env: dict[str, str] | None = None,
              **config: Any) -> Daemon:
        directory = tmp_path / f"daemon{len(started)}"
        directory.mkdir()
        daemon = Daemon(base_config(directory, database_url, **config), directory, env)
        started.append(daemon)
        return daemon.start(wait=wait)

    yield start
    for daemon in started:
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait(30)


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and key for localhost."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key
