"""`alertd automate check`: one clear line each for URL, TLS, credentials, ClientId, permissions.

Against the local Automate over real HTTP (and HTTPS with a self-signed
certificate), through the check function and through the real command line.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from alertd.automate.check import CheckLine, run_checks
from alertd.automate.client import AutomateClient
from alertd.settings import AutomateSettings
from alertd.testing.automate_server import AutomateApp, RunningServer, serve
from tests.automate.conftest import ENVIRON, PASSWORD, PASSWORD_ENV, Sleeps, automate_section

MakeSettings = Callable[..., AutomateSettings]


async def check(settings: AutomateSettings, sleeps: Sleeps) -> dict[str, CheckLine]:
    """Run the checks; lines by aspect."""
    async with AutomateClient(settings, sleep=sleeps, environ=ENVIRON) as client:
        return {line.aspect: line for line in await run_checks(client)}


def statuses(lines: dict[str, CheckLine]) -> list[str]:
    """The status of each line, in order."""
    return [lines[a].status for a in ("url", "tls", "credentials", "client_id", "permissions")]


async def test_a_working_set_up_passes_every_line(make_automate: MakeSettings,
                                                  sleeps: Sleeps) -> None:
    """Five OKs, each saying what was found."""
    lines = await check(make_automate(), sleeps)
    assert statuses(lines) == ["ok"] * 5
    assert lines["tls"].message == "not used (plain http to a loopback address)"
    assert lines["credentials"].message.startswith("user 'alertd-integrator' logged in, valid "
                                                   "until ")
    assert lines["client_id"].message == "ClientId accepted (Automate 2025.5.0.5)"
    assert lines["permissions"].message == "can read Clients, Locations, Contacts, Computers, " \
                                           "Routers"


async def test_a_wrong_password_fails_the_credentials_line(make_automate: MakeSettings,
                                                           automate: RunningServer,
                                                           sleeps: Sleeps) -> None:
    """URL and TLS pass, credentials fail with the reason, the rest is skipped."""
    async with AutomateClient(make_automate(), sleep=sleeps,
                              environ={PASSWORD_ENV: "wrong"}) as client:
        lines = {line.aspect: line for line in await run_checks(client)}
    assert statuses(lines) == ["ok", "ok", "fail", "skipped", "skipped"]
    assert "refused the login of user 'alertd-integrator' (HTTP 401)" in \
        lines["credentials"].message


async def test_an_mfa_user_fails_the_credentials_line(make_automate: MakeSettings,
                                                      sleeps: Sleeps) -> None:
    """The MFA case has its own message."""
    lines = await check(make_automate(username="mfa-user"), sleeps)
    assert statuses(lines) == ["ok", "ok", "fail", "skipped", "skipped"]
    assert "needs a second factor (MFA)" in lines["credentials"].message


async def test_a_client_id_automate_refuses_fails_the_client_id_line(
    make_automate: MakeSettings, sleeps: Sleeps,
) -> None:
    """Logged in, but data calls are refused: the ClientId line says so."""
    lines = await check(make_automate(client_id="00000000-0000-0000-0000-000000000000"), sleeps)
    assert statuses(lines) == ["ok", "ok", "ok", "fail", "skipped"]
    assert "does not accept the ClientId header" in lines["client_id"].message


async def test_an_html_page_fails_the_url_line(make_automate: MakeSettings,
                                               automate_state: AutomateApp,
                                               sleeps: Sleeps) -> None:
    """A sign-in page where the API should be."""
    automate_state.faults.html = True
    lines = await check(make_automate(), sleeps)
    assert statuses(lines) == ["fail", "skipped", "skipped", "skipped", "skipped"]
    assert "answered with an HTML page" in lines["url"].message


async def test_missing_permissions_are_listed(make_automate: MakeSettings,
                                              sleeps: Sleeps) -> None:
    """The user's class cannot read computers or routers: the permissions line names them."""
    lines = await check(make_automate(username="limited"), sleeps)
    assert statuses(lines) == ["ok", "ok", "ok", "ok", "fail"]
    assert lines["permissions"].message.startswith(
        "the user's class cannot read Computers, Routers (HTTP 403)")


async def test_an_unreachable_server_fails_the_url_line(sleeps: Sleeps) -> None:
    """Connection refused."""
    settings = AutomateSettings.model_validate(automate_section("http://127.0.0.1:9",
                                                                retries=0))
    lines = await check(settings, sleeps)
    assert statuses(lines) == ["fail", "skipped", "skipped", "skipped", "skipped"]
    assert lines["url"].message.startswith("cannot connect to http://127.0.0.1:9")


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost (openssl)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (scripts/install-test-services installs it)")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


async def test_tls_is_verified_and_a_private_ca_needs_ca_file(
    automate_state: AutomateApp, certificate: tuple[Path, Path], sleeps: Sleeps,
) -> None:
    """Self-signed: the TLS line fails and suggests ca_file; with ca_file all lines pass."""
    cert, key = certificate
    async with serve(automate_state, ssl_certfile=str(cert), ssl_keyfile=str(key)) as running:
        untrusted = await check(AutomateSettings.model_validate(
            automate_section(running.url, retries=0)), sleeps)
        trusted = await check(AutomateSettings.model_validate(
            automate_section(running.url, ca_file=str(cert))), sleeps)
    assert statuses(untrusted) == ["ok", "fail", "skipped", "skipped", "skipped"]
    assert "certificate verify failed" in untrusted["tls"].message
    assert "automate.ca_file" in untrusted["tls"].message
    assert statuses(trusted) == ["ok"] * 5
    assert trusted["tls"].message.endswith("certificate verified for localhost")
    assert trusted["tls"].message.startswith("TLSv1.")


async def alertd(config: Path, *args: str, password: str = PASSWORD
                 ) -> tuple[int, str, str]:
    """Run the real `alertd` command line, without blocking the loop the server runs in."""
    env = {**os.environ, PASSWORD_ENV: password}
    env.pop("ALERTD_DATABASE_URL", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "alertd", "--config", str(config), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def write_config(tmp_path: Path, section: dict[str, Any], database: str | None = None) -> Path:
    """An alertd.yaml with this automate section."""
    path = tmp_path / "alertd.yaml"
    content: dict[str, Any] = {"automate": section}
    content["database"] = {"url": database or f"sqlite:///{tmp_path / 'alertd.db'}"}
    with path.open("w") as out:
        YAML().dump(json.loads(json.dumps(content)), out)
    return path


async def test_the_command_prints_a_line_each_and_exits_by_the_first_failure(
    automate: RunningServer, automate_state: AutomateApp, tmp_path: Path,
) -> None:
    """0 when all pass; 78 for wrong password, MFA, ClientId and an HTML page, each worded."""
    good = write_config(tmp_path, automate_section(automate.url))
    code, out, _ = await alertd(good, "automate", "check")
    assert code == 0
    assert [line.split()[:2] for line in out.splitlines()] == [
        ["url", "OK"], ["tls", "OK"], ["credentials", "OK"], ["client_id", "OK"],
        ["permissions", "OK"]]

    wrong, wrong_out, _ = await alertd(good, "automate", "check", password="nope")
    mfa_config = write_config(tmp_path, automate_section(automate.url, username="mfa-user"))
    mfa, mfa_out, _ = await alertd(mfa_config, "automate", "check")
    id_config = write_config(tmp_path, automate_section(automate.url, client_id="unknown"))
    client_id, id_out, _ = await alertd(id_config, "automate", "check")
    automate_state.faults.html = True
    html, html_out, _ = await alertd(good, "automate", "check")
    assert (wrong, mfa, client_id, html) == (78, 78, 78, 78)
    assert "credentials  FAIL    Automate refused the login of user 'alertd-integrator'" \
        in wrong_out
    assert "credentials  FAIL    user 'mfa-user' needs a second factor (MFA)" in mfa_out
    assert "client_id    FAIL    Automate answered 401 to PatchInformation even with a fresh " \
           "token" in id_out
    assert "url          FAIL    connection test: " in html_out
    assert "answered with an HTML page" in html_out
    for output in (out, wrong_out, mfa_out, id_out, html_out):
        assert PASSWORD not in output


async def test_the_command_without_an_automate_section_says_how_to_add_one(
    tmp_path: Path,
) -> None:
    """A configuration error (78) naming the keys to add."""
    path = tmp_path / "alertd.yaml"
    path.write_text(f"database: {{url: 'sqlite:///{tmp_path / 'a.db'}'}}\n")
    code, _, err = await alertd(path, "automate", "check")
    assert code == 78
    assert "automate is not configured: add an `automate:` section" in err
