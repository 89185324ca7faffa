"""systemd/alertd-import.service and .timer: valid, hardened, and running `import all`."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from alertd.automate.client import AutomateClient
from alertd.settings import AutomateSettings
from tests.automate.conftest import PASSWORD, automate_section

SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"
ALERTD = Path(sys.executable).with_name("alertd")


def installed(tmp_path: Path) -> tuple[Path, Path]:
    """Both units in a folder, ExecStart pointing where alertd is installed here."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (scripts/install-test-services adds it)")
    service = tmp_path / "alertd-import.service"
    timer = tmp_path / "alertd-import.timer"
    service.write_text((SYSTEMD / "alertd-import.service").read_text()
                       .replace("/usr/bin/alertd", str(ALERTD)))
    timer.write_text((SYSTEMD / "alertd-import.timer").read_text())
    return service, timer


def test_the_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts the service and its timer."""
    service, timer = installed(tmp_path)
    result = subprocess.run(["systemd-analyze", "verify", str(service), str(timer)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


def test_the_import_service_is_hardened(tmp_path: Path) -> None:
    """systemd's exposure rating stays at 2.0 or below; dedicated user, credential, strict FS."""
    service, _ = installed(tmp_path)
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", str(service)],
                            capture_output=True, text=True, check=False)
    match = re.search(r"Overall exposure level for alertd-import.service: (\d+\.\d+)",
                      result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0
    text = (SYSTEMD / "alertd-import.service").read_text()
    for directive in ("Type=oneshot", "DynamicUser=yes", "User=alertd",
                      "LoadCredential=automate:/etc/alertd/credentials/automate",
                      "ProtectSystem=strict", "NoNewPrivileges=yes", "CapabilityBoundingSet=",
                      "ExecStart=/usr/bin/alertd --config /etc/alertd/alertd.yaml automate "
                      "import all"):
        assert re.search(rf"^{re.escape(directive)}$", text, re.MULTILINE), directive
    timer = (SYSTEMD / "alertd-import.timer").read_text()
    assert re.search(r"^OnCalendar=hourly$", timer, re.MULTILINE)
    assert re.search(r"^Persistent=true$", timer, re.MULTILINE)


async def test_a_relative_password_file_is_read_from_the_credentials_directory(
    tmp_path: Path,
) -> None:
    """`password_file: automate` finds systemd's credential in $CREDENTIALS_DIRECTORY."""
    (tmp_path / "automate").write_text(PASSWORD + "\n")
    section = automate_section("https://rmm.example.net", password_env=None,
                               password_file="automate")
    client = AutomateClient(AutomateSettings.model_validate(section),
                            environ={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert client._password() == PASSWORD
