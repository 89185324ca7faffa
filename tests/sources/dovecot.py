"""A real Dovecot IMAP server on loopback, for the IMAP tests and `bench/imap.py`.

Each `Dovecot` has its own config file and base directory under a fresh
temporary directory, so the distribution's instance is untouched
(TESTING-NOTES.md): plain and implicit-TLS listeners on free loopback ports,
a self-signed certificate made with openssl at set-up, passwd-file users
whose mail (Maildir) belongs to a non-root `vmail` user (created when
missing and running as root), and no delay after a failed login. Users can
be added while it runs: each has a passwd-file of its own, read at its first login.

Nothing here mocks IMAP: tests talk to the server with aioimaplib (through
alertd or directly) and may fill a folder by dropping files into its
Maildir, which is about 9x faster than APPEND.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

VMAIL = "vmail"
STARTUP_TIMEOUT_S = 15.0
_serial = itertools.count(1)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _mail_account() -> tuple[int, int]:
    """uid and gid that own the mail: `vmail` (made if missing) as root, else ourselves."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    try:
        entry = pwd.getpwnam(VMAIL)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", VMAIL], check=True)
        entry = pwd.getpwnam(VMAIL)
    return entry.pw_uid, entry.pw_gid


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for init to reap it does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@dataclass(frozen=True)
class MailUser:
    """A mailbox account on the test Dovecot."""

    name: str
    password: str
    home: Path

    def maildir(self, folder: str = "INBOX") -> Path:
        """The Maildir folder holding ``folder`` (sub-folders use Maildir++ `.Name`)."""
        root = self.home / "Maildir"
        return root if folder.upper() == "INBOX" else root / f".{folder.replace('/', '.')}"


class Dovecot:
    """One Dovecot instance of our own; `start()`, `stop()`, `add_user()`, `drop_mail()`."""

    def __init__(self, root: Path | None = None, *, extra_config: str = "") -> None:
        self.extra_config = extra_config
        """More configuration lines, e.g. `imap_capability = IMAP4rev1` for a poorer server."""
        self.root = root or Path(tempfile.mkdtemp(prefix="adv-"))
        self.root.chmod(0o755)
        self.uid, self.gid = _mail_account()
        self.plain_port = free_port()
        self.tls_port = free_port()
        self.config = self.root / "dovecot.conf"
        self.passwd = self.root / "passwd"
        """One passwd-file per user: Dovecot re-reads a changed file only a second later."""
        self.log = self.root / "dovecot.log"
        self.cert = self.root / "cert.pem"
        self.key = self.root / "key.pem"
        self.homes = self.root / "homes"
        self.homes.mkdir(exist_ok=True)
        self.homes.chmod(0o755)
        self._users: dict[str, MailUser] = {}
        self._make_certificate()
        self.passwd.mkdir(exist_ok=True)
        self._write_config()

    # -- set-up -------------------------------------------------------------------

    def _make_certificate(self) -> None:
        if self.cert.exists():
            return
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-keyout", str(self.key), "-out", str(self.cert)],
            check=True, capture_output=True,
        )
        self.key.chmod(0o600)

    def _write_config(self) -> None:
        me = pwd.getpwuid(os.geteuid()).pw_name
        as_root = os.geteuid() == 0
        login_user = "dovenull" if as_root else me
        internal_user = "dovecot" if as_root else me
        chroot = "login" if as_root else ""
        self.config.write_text(f"""\
base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.log}
info_log_path = {self.log}
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{self.cert}
ssl_key = <{self.key}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
stats_writer_socket_path =
auth_verbose = yes
default_login_user = {login_user}
default_internal_user = {internal_user}
first_valid_uid = {min(self.uid, 500)}
first_valid_gid = 0
mail_location = maildir:~/Maildir
mail_fsync = never
mail_max_userip_connections = 100
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.passwd}/%u
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self.passwd}/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  chroot = {chroot}
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.plain_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
{self.extra_config}
""")

    # -- running ------------------------------------------------------------------

    def start(self) -> None:
        """Start the server and wait until both listeners accept connections."""
        # The daemon keeps its standard streams: pipes would never reach end of file.
        with (self.root / "start.out").open("wb") as out:
            started = subprocess.run(["dovecot", "-c", str(self.config)],
                                     stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                     check=False)
        if started.returncode != 0:
            raise RuntimeError("dovecot refused to start: "
                               + (self.root / "start.out").read_text(errors="replace"))
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not (self.root / "run" / "master.pid").exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"dovecot wrote no pid file; its log:\n{self.read_log()}")
            time.sleep(0.01)
        for port in (self.plain_port, self.tls_port):
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"dovecot did not start; its log:\n{self.read_log()}") from None
                    time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server: SIGTERM (sessions get BYE), then SIGKILL for its process group,
        whose leftovers (log, login processes holding the listeners) linger for seconds."""
        pid_file = self.root / "run" / "master.pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text().strip())
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        time.sleep(0.1)  # the sessions say BYE
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline and (
                _alive(pid) or any(self._listening(p) for p in (self.plain_port, self.tls_port))):
            time.sleep(0.01)
        pid_file.unlink(missing_ok=True)

    @staticmethod
    def _listening(port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def read_log(self) -> str:
        """Dovecot's own log so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    # -- users and mail -----------------------------------------------------------

    def add_user(self, name: str | None = None, password: str | None = None) -> MailUser:
        """A new account with an empty INBOX (a fresh name unless one is given)."""
        name = name or f"user{next(_serial)}"
        password = password or f"pw-{name}-secret"
        home = self.homes / name
        for sub in ("cur", "new", "tmp"):
            (home / "Maildir" / sub).mkdir(parents=True, exist_ok=True)
        self._own(home)
        user = MailUser(name, password, home)
        self._users[name] = user
        entry = self.passwd / name
        entry.write_text(f"{name}:{password}:{self.uid}:{self.gid}::{home}::\n")
        if os.geteuid() == 0:
            os.chown(entry, 0, 0)
        return user

    def drop_mail(self, user: MailUser, mails: Iterable[bytes], folder: str = "INBOX") -> int:
        """Deliver mails by writing Maildir files (Dovecot assigns UIDs when it next looks).

        The files are named the way Dovecot names the mail it delivers
        (`seconds.M<unique>P<pid>.host`), with one counter in the name. Names
        with two counters rising together (say, position and serial) collide
        in Dovecot's file name hash by the thousand, and then every later
        change to the folder (a MOVE, an EXPUNGE) crawls.
        """
        target = user.maildir(folder)
        for sub in ("cur", "new", "tmp"):
            (target / sub).mkdir(parents=True, exist_ok=True)
        count = 0
        stamp = int(time.time())
        for data in mails:
            name = f"{stamp}.M{next(_serial)}P{os.getpid()}.alertd-test"
            staged = target / "tmp" / name
            staged.write_bytes(data.replace(b"\r\n", b"\n"))
            staged.replace(target / "new" / name)
            count += 1
        self._own(target)
        return count

    def folder_files(self, user: MailUser, folder: str = "INBOX") -> int:
        """How many mails a folder holds on disk (new + cur), without asking the server."""
        target = user.maildir(folder)
        return sum(len(list((target / sub).iterdir()))
                   for sub in ("new", "cur") if (target / sub).is_dir())

    def _own(self, path: Path) -> None:
        if os.geteuid() != 0:
            return
        for folder, dirs, files in os.walk(path):
            os.chown(folder, self.uid, self.gid)
            for item in (*dirs, *files):
                os.chown(os.path.join(folder, item), self.uid, self.gid)
