"""The daemon's settings (`alertd.yaml`, SPEC R6.8): models, loader and defaults.

Every model is frozen and rejects unknown keys, so a typo is an error with
its file and line instead of a silently ignored option. With no file at all
alertd runs on built-in defaults (R6.2): a SQLite file in the working
directory and the bundled rules. Secrets never live in this file: they come
from `*_file` settings (systemd credentials) or the environment.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from alertd.domain import Problem
from alertd.errors import SettingsInvalid
from alertd.yamlfile import YamlDocument, load_yaml

CONFIG_ENV = "ALERTD_CONFIG"
DATABASE_URL_ENV = "ALERTD_DATABASE_URL"
RULES_DIR_ENV = "ALERTD_RULES_DIR"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, None: 1,
}


def _duration(value: object) -> object:
    """`30m`, `60s`, `1h`, `2d`, `500ms` or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str) and (match := _DURATION.match(value)):
        amount, unit = match.groups()
        return timedelta(seconds=float(amount) * _DURATION_UNITS[unit])
    raise ValueError(f"not a duration: {value!r} (write e.g. 30s, 30m, 1h)")


def _size(value: object) -> object:
    """`10MB`, `512KiB` or a number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and (match := _SIZE.match(value)):
        amount, unit = match.groups()
        return int(amount) * _SIZE_UNITS[unit.lower() if unit else None]
    raise ValueError(f"not a size: {value!r} (write e.g. 10MB)")


Duration = Annotated[timedelta, BeforeValidator(_duration)]
Size = Annotated[int, BeforeValidator(_size)]


def bundled_rules_dir() -> Path:
    """The example rules shipped with alertd (installed copy, else the source tree)."""
    package = Path(__file__).resolve().parent
    installed = package / "bundled_rules"
    return installed if installed.is_dir() else package.parent / "rules"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Model):
    """Where tickets and the inbox live."""

    url: str = "sqlite:///alertd.db"
    """A SQLAlchemy URL: `sqlite:///PATH` or `postgresql://user@host/db`."""
    auto_upgrade: bool | None = None
    """Apply migrations at start-up; unset means yes for SQLite, no otherwise."""
    busy_timeout: Duration = timedelta(seconds=30)
    """SQLite: how long a writer waits for another process's lock before giving up."""

    @model_validator(mode="after")
    def _known_backend(self) -> DatabaseSettings:
        if self.url.split(":", 1)[0].split("+", 1)[0] not in {"sqlite", "postgresql", "postgres"}:
            raise ValueError(f"database url must start with sqlite:// or postgresql://: {self.url}")
        return self

    @property
    def is_sqlite(self) -> bool:
        """Whether this is the single-writer SQLite backend."""
        return self.url.startswith("sqlite")

    @property
    def upgrades_itself(self) -> bool:
        """Whether start-up applies migrations instead of refusing an old schema."""
        return self.is_sqlite if self.auto_upgrade is None else self.auto_upgrade


class RulesSettings(_Model):
    """Where the rules are, and the time windows they are judged by."""

    dir: Path = Field(default_factory=bundled_rules_dir)
    """The rules directory; every `*.yaml` in it is read in lexical order."""
    reopen_window: Duration = timedelta(minutes=30)
    """A problem this soon after a resolution reopens the ticket (flapping)."""
    future_skew: Duration = timedelta(hours=1)
    """A Date header further than this past the received time is not believed."""


class InboxSettings(_Model):
    """How the durable inbox is worked."""

    workers: int = Field(default=1, ge=1, le=64)
    """Inbox workers in this process (SQLite always uses one)."""
    batch_size: int = Field(default=64, ge=1, le=1000)
    """Messages processed per transaction."""
    busy_batch_size: int = Field(default=8, ge=1, le=1000)
    """Messages per transaction while sources are storing mail (keeps their turns short)."""
    lease: Duration = timedelta(minutes=5)
    """A claimed message not finished within this is taken back by another worker."""
    poll_interval: Duration = timedelta(seconds=2)
    """How often workers look for rows other processes stored."""
    max_attempts: int = Field(default=8, ge=1)
    """Transient failures retried automatically before an admin must retry."""
    retry_backoff: Duration = timedelta(seconds=30)
    """First retry delay after a transient failure; doubles each attempt."""
    retry_backoff_max: Duration = timedelta(hours=1)
    """Longest automatic retry delay."""


class TlsFiles(_Model):
    """A certificate and its key."""

    cert_file: Path
    key_file: Path


class SmtpAuth(_Model):
    """SMTP AUTH users, allowed only after STARTTLS."""

    users_file: Path


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


class SmtpListenerSettings(_Model):
    """One SMTP (or LMTP) listener (R1.2)."""

    name: str = "main"
    listen: str = "127.0.0.1:2525"
    recipients: tuple[str, ...] = ()
    """Accepted addresses, or `@domain`; empty accepts any only on loopback."""
    max_size: Size = 10 * 1000**2
    lmtp: bool = False
    tls: TlsFiles | None = None
    auth: SmtpAuth | None = None
    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    """Client networks allowed to connect; empty allows any."""
    hostname: str | None = None
    """The name in the greeting; default the machine's name."""
    timeout: Duration = timedelta(minutes=5)
    """An idle session is closed after this."""

    @model_validator(mode="after")
    def _never_an_open_relay(self) -> SmtpListenerSettings:
        host, sep, port = self.listen.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"listen must be HOST:PORT, not {self.listen!r}")
        if not self.recipients and not _loopback(host):
            raise ValueError(
                f"listener {self.name!r} on {self.listen} needs a recipients list "
                "(only a loopback listener may accept any recipient)"
            )
        return self


class ImapMailboxSettings(_Model):
    """One IMAP mailbox to drain (R1.1)."""

    name: str
    host: str
    port: int | None = None
    security: Literal["tls", "starttls", "plain"] = "tls"
    ca_file: Path | None = None
    user: str
    password_file: Path | None = None
    password_env: str | None = None
    folder: str = "INBOX"
    after: Literal["move", "flag", "delete"] = "move"
    move_to: str | None = "Processed"
    failed_folder: str | None = None
    poll_interval: Duration = timedelta(seconds=60)


class AutomateImportSettings(_Model):
    """Asset import from Automate (R5.2-R5.4)."""

    top_level: str | None = None
    default_site: str | None = None
    schedule: Duration | None = None
    asset_types: dict[str, str] = Field(default_factory=dict)
    fields: tuple[dict[str, Any], ...] = ()
    match_on: str = "automate_id"


class AutomateFinishScript(_Model):
    """One Ticket Finish script to run when a ticket is resolved (R5.5)."""

    name: str | None = None
    id: int | None = None
    target: Literal["ticket", "computer"] = "ticket"
    parameters: dict[str, str] = Field(default_factory=dict)


class AutomateFinishSettings(_Model):
    """What finishing a ticket runs in Automate."""

    scripts: tuple[AutomateFinishScript, ...] = ()


class AutomateApiAlerting(_Model):
    """Automate tickets as an alert source (R5.6)."""

    enabled: bool = False
    poll_interval: Duration = timedelta(seconds=60)


class AutomateSettings(_Model):
    """The Automate server and what alertd does with it (R5)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    url: str
    client_id: str
    username: str
    password_file: Path | None = None
    password_env: str | None = None
    max_concurrency: int = Field(default=8, ge=1)
    max_rate: str = "20/s"
    import_: AutomateImportSettings = Field(default_factory=AutomateImportSettings, alias="import")
    finish: AutomateFinishSettings = Field(default_factory=AutomateFinishSettings)
    api_alerting: AutomateApiAlerting = Field(default_factory=AutomateApiAlerting)


class LinkSettings(_Model):
    """A "custom button": a URL template over the asset (R4.4)."""

    name: str
    url: str


class HttpSettings(_Model):
    """The HTTP endpoint (health, metrics, API)."""

    listen: str = "127.0.0.1:8025"
    token_file: Path | None = None


class LoggingSettings(_Model):
    """Log level and format."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class Settings(_Model):
    """Everything `alertd.yaml` can say."""

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    rules: RulesSettings = Field(default_factory=RulesSettings)
    inbox: InboxSettings = Field(default_factory=InboxSettings)
    smtp: tuple[SmtpListenerSettings, ...] = (SmtpListenerSettings(),)
    imap: tuple[ImapMailboxSettings, ...] = ()
    automate: AutomateSettings | None = None
    links: tuple[LinkSettings, ...] = ()
    http: HttpSettings | None = Field(default_factory=HttpSettings)
    """The HTTP endpoint (`/healthz`); `http: null` turns it off."""
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    shutdown_grace: Duration = timedelta(seconds=30)


def load_settings(
    path: Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read settings from ``path`` (or `$ALERTD_CONFIG`, or nothing), then apply overrides.

    Raises SettingsInvalid with every problem found.
    """
    env = os.environ if environ is None else environ
    if path is None and env.get(CONFIG_ENV):
        path = Path(env[CONFIG_ENV])
    data: dict[str, Any] = {}
    document: YamlDocument | None = None
    if path is not None:
        loaded = load_yaml(path)
        if isinstance(loaded, Problem):
            raise SettingsInvalid([loaded])
        document = loaded
        if document.data is None:
            data = {}
        elif not isinstance(document.data, dict):
            raise SettingsInvalid([document.problem((), "settings must be a mapping")])
        else:
            data = _resolve_relative_paths(document.data, path.parent)
    data = _apply_environment(data, env)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as error:
        if document is None:
            raise SettingsInvalid(
                [Problem(Path("<environment>"), None, "", e["msg"]) for e in error.errors()]
            ) from None
        raise SettingsInvalid(document.problems_from(error)) from None
    return settings


def _apply_environment(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    out = dict(data)
    if env.get(DATABASE_URL_ENV):
        out["database"] = {**_section(out, "database"), "url": env[DATABASE_URL_ENV]}
    if env.get(RULES_DIR_ENV):
        out["rules"] = {**_section(out, "rules"), "dir": env[RULES_DIR_ENV]}
    return out


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return dict(value) if isinstance(value, dict) else {}


def _resolve_relative_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Make `rules.dir` relative to the settings file, as admins expect."""
    rules = data.get("rules")
    if isinstance(rules, dict) and isinstance(rules.get("dir"), str):
        rules_dir = Path(rules["dir"])
        if not rules_dir.is_absolute():
            data = {**data, "rules": {**rules, "dir": str(base / rules_dir)}}
    return data
