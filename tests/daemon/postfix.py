"""A real Postfix on loopback, relaying one test domain to alertd (TESTING-NOTES: Postfix).

Each instance gets its own configuration and queue directory outside the
pytest tree (Postfix's unprivileged processes must be able to reach them),
listens on a free port, relays `alerts.test` to alertd's SMTP listener and
sends nothing anywhere else.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.daemon.harness import free_port

DOMAIN = "alerts.test"


class Postfix:
    """A running test instance."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.config = directory / "etc"
        self.port = port

    def run(self, *args: str) -> str:
        result = subprocess.run(["postfix", "-c", str(self.config), *args], capture_output=True,
                                text=True, check=False)
        if result.returncode != 0:
            raise AssertionError(f"postfix {' '.join(args)}: {result.stdout}{result.stderr}"
                                 f"\n{self.log()}")
        return result.stdout

    def flush(self) -> None:
        """Retry deferred mail now."""
        subprocess.run(["postqueue", "-c", str(self.config), "-f"], check=True)

    def queue(self) -> str:
        """What is still queued."""
        return subprocess.run(["postqueue", "-c", str(self.config), "-p"], capture_output=True,
                              text=True, check=False).stdout

    def log(self) -> str:
        path = self.directory / "maillog"
        return path.read_text() if path.exists() else "(no log)"


@contextmanager
def postfix_relaying_to(alertd_port: int) -> Iterator[Postfix]:
    """Start Postfix relaying `alerts.test` to 127.0.0.1:``alertd_port``; stop it after."""
    if shutil.which("postfix") is None:
        pytest.skip("postfix is not installed (scripts/install-test-services adds it)")
    directory = Path(tempfile.mkdtemp(prefix="alertd-postfix-"))
    directory.chmod(0o755)
    (directory / "etc").mkdir()
    (directory / "data").mkdir()
    (directory / "queue").mkdir()
    shutil.chown(directory / "data", user="postfix")
    port = free_port()
    shutil.copy("/etc/postfix/master.cf", directory / "etc" / "master.cf")
    (directory / "etc" / "main.cf").write_text(f"""
compatibility_level = 3.6
queue_directory = {directory}/queue
data_directory = {directory}/data
mail_owner = postfix
myhostname = mx.alertd-test.localdomain
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains = {DOMAIN}
transport_maps = inline:{{ {DOMAIN}=smtp:[127.0.0.1]:{alertd_port} }}
default_transport = error:no mail leaves this test
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtp_dns_support_level = disabled
alias_maps =
alias_database =
maillog_file_prefixes = /var, /dev/stdout, /tmp
maillog_file = {directory}/maillog
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
""")
    master = directory / "etc" / "master.cf"
    lines = master.read_text().splitlines()
    lines = [f"127.0.0.1:{port} inet n - n - - smtpd" if line.startswith("smtp      inet")
             else line for line in lines]
    master.write_text("\n".join(lines) + "\n")
    subprocess.run(["postconf", "-c", str(directory / "etc"), "-F", "*/*/chroot = n"],
                   check=True, capture_output=True)
    instance = Postfix(directory, port)
    instance.run("start")
    try:
        deadline = time.monotonic() + 20
        while subprocess.run(["ss", "-ltn", f"sport = :{port}"], capture_output=True,
                             text=True, check=False).stdout.count("LISTEN") == 0:
            if time.monotonic() > deadline:
                raise AssertionError(f"postfix did not listen on {port}:\n{instance.log()}")
            time.sleep(0.1)
        yield instance
    finally:
        subprocess.run(["postfix", "-c", str(directory / "etc"), "stop"], capture_output=True,
                       check=False)
        shutil.rmtree(directory, ignore_errors=True)
