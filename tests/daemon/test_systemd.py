"""systemd: the shipped unit passes systemd's own checks, and the daemon speaks sd_notify."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from alertd.settings import load_settings
from tests.daemon.harness import Daemon

SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"
ALERTD = Path(sys.executable).with_name("alertd")


def installed_unit(tmp_path: Path) -> Path:
    """The shipped unit, with ExecStart pointing where alertd is installed here."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (scripts/install-test-services adds it)")
    unit = tmp_path / "alertd.service"
    unit.write_text((SYSTEMD / "alertd.service").read_text().replace("/usr/bin/alertd",
                                                                     str(ALERTD)))
    return unit


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` finds nothing to complain about."""
    result = subprocess.run(["systemd-analyze", "verify", str(installed_unit(tmp_path))],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


def test_the_unit_is_rated_2_or_lower_by_systemd_analyze_security(tmp_path: Path) -> None:
    """The hardening keeps systemd's exposure rating at 2.0 or below."""
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(installed_unit(tmp_path))],
        capture_output=True, text=True, check=False)
    match = re.search(r"Overall exposure level for alertd.service: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0


def test_the_unit_reloads_only_after_checking_rules_and_never_restart_loops() -> None:
    """ExecReload checks the rules before SIGHUP; exit 78 is not restarted; notify + watchdog."""
    text = (SYSTEMD / "alertd.service").read_text()
    reloads = re.findall(r"^ExecReload=(.*)$", text, re.MULTILINE)
    assert reloads == ["/usr/bin/alertd --config /etc/alertd/alertd.yaml rules check",
                       "/bin/kill -HUP $MAINPID"]
    for directive in ("Type=notify", "Restart=on-failure", "RestartPreventExitStatus=78",
                      "StateDirectory=alertd", "ConfigurationDirectory=alertd",
                      "NoNewPrivileges=yes", "ProtectSystem=strict", "CapabilityBoundingSet="):
        assert re.search(rf"^{re.escape(directive)}$", text, re.MULTILINE), directive
    assert re.search(r"^WatchdogSec=\d+s$", text, re.MULTILINE)
    assert re.search(r"^LoadCredential=\S+:/etc/alertd/credentials/\S+$", text, re.MULTILINE)
    assert re.search(r"^User=alertd$", text, re.MULTILINE)


def test_the_example_settings_file_is_valid() -> None:
    """The commented alertd.yaml for /etc/alertd loads without a problem."""
    settings = load_settings(SYSTEMD / "alertd.yaml", environ={})
    assert settings.smtp[0].recipients == ("alerts@helpdesk.example.net", "@alerts.example.net")


def test_the_daemon_tells_systemd_ready_reloading_watchdog_stopping(
    start_daemon: Callable[..., Daemon], sqlite_url: str, tmp_path: Path
) -> None:
    """Under Type=notify: READY=1 when listening, RELOADING=1/READY=1 on SIGHUP,
    WATCHDOG=1 at half WATCHDOG_USEC, STOPPING=1 on SIGTERM."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(20)
    received: list[str] = []

    def expect(field: str) -> None:
        while not any(field in message.split("\n") for message in received):
            received.append(sock.recv(4096).decode())

    try:
        daemon = start_daemon(sqlite_url, env={"NOTIFY_SOCKET": str(path),
                                               "WATCHDOG_USEC": "200000"})
        expect("READY=1")
        expect("WATCHDOG=1")
        received.clear()
        daemon.signal(signal.SIGHUP)
        expect("RELOADING=1")
        expect("READY=1")
        assert any(m.startswith("RELOADING=1\nMONOTONIC_USEC=") for m in received)
        assert daemon.stop() == 0
        expect("STOPPING=1")
    finally:
        sock.close()
