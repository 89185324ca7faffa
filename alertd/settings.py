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
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from alertd.automate.fields import (
    BUILT_IN,
    SECRET_FIELDS,
    SOURCE_FIELDS,
    STANDARD_FIELDS,
    AutomateKind,
)
from alertd.domain import Problem
from alertd.errors import SettingsInvalid
from alertd.templates import Template, TemplateSyntaxError
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
    hold_above: float = Field(default=100.0, ge=0)
    """Mails/s arriving above which processing waits, so storing gets the CPU (0: never)."""
    max_hold: Duration = timedelta(seconds=30)
    """Longest wait; a storm lasting longer is processed while it goes on."""
    busy_share: float = Field(default=0.5, gt=0, le=1)
    """Share of the event loop processing may take while sources are storing mail (1: all)."""
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


IMAP_IDLE_LIMIT = timedelta(minutes=29)
"""Servers may drop a client idling longer than this (RFC 2177), so IDLE is renewed sooner."""


class ImapMailboxSettings(_Model):
    """One IMAP mailbox to drain (R1.1)."""

    name: str = Field(min_length=1)
    """Names the mailbox in logs, in the source of its mail (`imap:<name>`) and in commands."""
    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    """Defaults to 993 for `tls`, 143 for `starttls` and `plain`."""
    security: Literal["tls", "starttls", "plain"] = "tls"
    """`tls` (implicit TLS), `starttls`, or `plain` (no encryption; see `allow_plain`)."""
    allow_plain: bool = False
    """Required for `security: plain` to a host that is not loopback: the password goes in clear."""
    ca_file: Path | None = None
    """CA certificate(s) to trust for this server; absent means the system's trust store."""
    user: str = Field(min_length=1)
    password_file: Path | None = None
    """File holding the password (e.g. a systemd credential); read at every login."""
    password_env: str | None = None
    """Environment variable holding the password, instead of `password_file`."""
    folder: str = "INBOX"
    """The folder drained."""
    after: Literal["move", "flag", "delete"] = "move"
    """What happens to a mail on the server once it is stored: moved, flagged \\Seen, deleted."""
    action_connection: bool = True
    """With `after: move`, a long drain moves stored mail over a second connection, so the
    server moves while it also serves the fetches; off for servers that allow one connection."""
    move_to: str | None = "Processed"
    """Where `after: move` puts stored mail; created if missing."""
    failed_folder: str | None = None
    """Where mail alertd cannot take in (larger than `max_size`, unreadable) is moved;
    absent leaves such mail in the folder, untouched."""
    poll_interval: Duration = timedelta(seconds=60)
    """How often the folder is searched when the server has no IDLE (or `idle` is off)."""
    idle: bool = True
    """Wait for new mail with IDLE when the server offers it."""
    idle_renew: Duration = timedelta(minutes=25)
    """IDLE is ended and issued again this often (at most 29 minutes)."""
    batch_size: int = Field(default=50, ge=1, le=200)
    """Mails per FETCH (the fetched mail is stored up to 250 mails per transaction)."""
    max_size: Size = 25 * 1000**2
    """Larger mails are not fetched: they go to `failed_folder` (or stay in the folder)."""
    timeout: Duration = timedelta(seconds=30)
    """Connecting, and each command, gives up after this long without an answer."""
    reconnect_backoff: Duration = timedelta(seconds=1)
    """First wait before reconnecting after a failure; doubles (with jitter) each time."""
    reconnect_backoff_max: Duration = timedelta(minutes=5)
    """Longest wait between reconnection attempts."""
    login_backoff: Duration = timedelta(minutes=15)
    """Wait after the server refused the user name or password (retrying soon will not help)."""
    standby_retry: Duration = timedelta(seconds=15)
    """How often an instance whose mailbox another instance polls checks whether it can take over
    (PostgreSQL)."""

    @model_validator(mode="after")
    def _consistent(self) -> ImapMailboxSettings:
        if (self.password_file is None) == (self.password_env is None):
            raise ValueError(
                f"mailbox {self.name!r}: give exactly one of password_file or password_env")
        if self.security == "plain" and not self.allow_plain and not _loopback(self.host):
            raise ValueError(
                f"mailbox {self.name!r}: security: plain sends the password unencrypted to "
                f"{self.host}; use tls or starttls, or set allow_plain: true")
        if self.after == "move" and not self.move_to:
            raise ValueError(f"mailbox {self.name!r}: after: move needs move_to (a folder)")
        for option in ("move_to", "failed_folder"):
            value = getattr(self, option)
            if value is not None and value.strip().lower() == self.folder.strip().lower():
                raise ValueError(
                    f"mailbox {self.name!r}: {option} must differ from the folder drained")
        if not timedelta(0) < self.idle_renew <= IMAP_IDLE_LIMIT:
            raise ValueError(f"mailbox {self.name!r}: idle_renew must be above 0 and at most 29m")
        for option in ("poll_interval", "timeout", "reconnect_backoff", "login_backoff",
                       "standby_retry"):
            if getattr(self, option) <= timedelta(0):
                raise ValueError(f"mailbox {self.name!r}: {option} must be above 0")
        if self.reconnect_backoff_max < self.reconnect_backoff:
            raise ValueError(
                f"mailbox {self.name!r}: reconnect_backoff_max is below reconnect_backoff")
        return self

    @property
    def port_or_default(self) -> int:
        """The port to connect to: as set, or the usual one for the security mode."""
        return self.port or (993 if self.security == "tls" else 143)


class AutomateFieldTarget(_Model):
    """Where a mapped Automate field goes: a standard asset field or a custom field."""

    asset_field: str | None = None
    """One of alertd's standard asset fields (name, serial, os, ip_address, ...)."""
    custom_field: str | None = None
    """A custom field, by name (compared without case or extra spaces)."""
    create: bool = False
    """Create the custom field on the next import; an existing field of that name is reused."""

    @model_validator(mode="after")
    def _one_target(self) -> AutomateFieldTarget:
        if (self.asset_field is None) == (self.custom_field is None):
            raise ValueError("give exactly one of asset_field or custom_field")
        if self.asset_field is not None:
            if self.asset_field == "asset_tag":
                raise ValueError(
                    "the asset tag is set by the import itself (the serial number for servers "
                    "and workstations, the Guid for routers); map to another field"
                )
            if self.asset_field not in STANDARD_FIELDS:
                raise ValueError(
                    f"unknown asset field {self.asset_field!r}; standard asset fields are "
                    f"{', '.join(STANDARD_FIELDS)} (use custom_field for anything else)"
                )
            if self.create:
                raise ValueError("create applies to custom fields only")
        elif not (self.custom_field or "").strip():
            raise ValueError("custom_field needs a name")
        return self

    @property
    def key(self) -> tuple[str, str]:
        """("asset", field) or ("custom", normalised name), to spot two mappings to one target."""
        if self.asset_field is not None:
            return ("asset", self.asset_field)
        return ("custom", " ".join((self.custom_field or "").lower().split()))


class AutomateFieldMapping(_Model):
    """One field mapping: an Automate kind's field to an asset or custom field (R5.3)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    kind: AutomateKind
    """servers, workstations, routers, printers or network_devices."""
    from_: str = Field(alias="from")
    """A field from Automate's fixed list for that kind."""
    to: AutomateFieldTarget

    @model_validator(mode="after")
    def _known_source(self) -> AutomateFieldMapping:
        if self.from_ in SECRET_FIELDS.get(self.kind, frozenset()):
            raise ValueError(
                f"{self.kind} {self.from_} is a credential: alertd never imports, stores or "
                "logs it"
            )
        if self.from_ not in SOURCE_FIELDS[self.kind]:
            raise ValueError(
                f"{self.kind} have no field {self.from_!r}; fields that can be mapped: "
                f"{', '.join(SOURCE_FIELDS[self.kind])}"
            )
        return self


class AutomateImportSettings(_Model):
    """Clients, sites, users and assets imported from Automate (R5.2-R5.4)."""

    top_level: str | None = None
    """The customer top level imported clients are placed under (optional)."""
    default_site: str | None = None
    """Site for users and assets whose own site was not imported; created in their client."""
    default_client: str = "Unassigned"
    """Client that holds the default site for records whose client was not imported either."""
    schedule: Duration | None = None
    """Run `import all` this often inside `alertd run`; absent means no in-daemon import."""
    asset_types: dict[AutomateKind, str] = Field(default_factory=dict)
    """Automate kind -> local asset type; a kind with no mapping is not imported."""
    fields: tuple[AutomateFieldMapping, ...] = ()
    """Field mappings per kind, applied in order after the built-in ones."""
    match_on: str = "automate_id"
    """How existing assets are found: automate_id, or a unique standard asset field."""
    printers_refresh: Literal["inventory", "always"] = "inventory"
    """Fetch a computer's printers again only when its inventory date moved, or always."""

    @field_validator("asset_types")
    @classmethod
    def _printers_need_computers(cls, value: dict[AutomateKind, str]) -> dict[AutomateKind, str]:
        for kind, local in value.items():
            if not local.strip():
                raise ValueError(f"asset type for {kind} is empty")
        if "printers" in value and not {"servers", "workstations"} & value.keys():
            raise ValueError(
                "printers are imported only as children of servers or workstations: "
                "map servers or workstations too"
            )
        return value

    @field_validator("fields")
    @classmethod
    def _fields_fit_the_kinds(
        cls, value: tuple[AutomateFieldMapping, ...], info: ValidationInfo
    ) -> tuple[AutomateFieldMapping, ...]:
        kinds = info.data.get("asset_types")
        seen: dict[tuple[str, tuple[str, str]], str] = {}
        for index, mapping in enumerate(value):
            if isinstance(kinds, dict) and mapping.kind not in kinds:
                raise ValueError(
                    f"fields[{index}] maps a field of {mapping.kind}, which have no asset type "
                    f"mapping: add asset_types.{mapping.kind}"
                )
            earlier = seen.setdefault((mapping.kind, mapping.to.key), mapping.from_)
            if earlier != mapping.from_:
                target = mapping.to.asset_field or mapping.to.custom_field
                raise ValueError(
                    f"fields[{index}]: {mapping.kind} {target!r} is already mapped from "
                    f"{earlier}"
                )
        return value

    @field_validator("match_on")
    @classmethod
    def _match_field_is_mapped(cls, value: str, info: ValidationInfo) -> str:
        if value == "automate_id":
            return value
        if value not in STANDARD_FIELDS:
            raise ValueError(
                f"match_on must be automate_id or a standard asset field "
                f"({', '.join(STANDARD_FIELDS)}), not {value!r}"
            )
        kinds = info.data.get("asset_types") or {}
        mappings = info.data.get("fields") or ()
        missing = [
            kind for kind in kinds
            if value not in BUILT_IN[kind]
            and not any(m.kind == kind and m.to.asset_field == value for m in mappings)
        ]
        if missing:
            raise ValueError(
                f"match_on {value!r} must be mapped for every imported kind; no mapping for "
                f"{', '.join(missing)}"
            )
        return value

    @property
    def schedule_seconds(self) -> float | None:
        """The in-daemon import interval in seconds, or None when off."""
        return self.schedule.total_seconds() if self.schedule is not None else None


FINISH_PLACEHOLDERS = {
    "automate_ticket_id": "the Automate ticket the ticket stands for",
    "computer_id": "the Automate computer id of the ticket's asset",
    "ticket_id": "alertd's ticket id",
    "resolution": "the resolution note (`recovered` when a recovery resolved it)",
    "technician": "who resolved it (a person's name, `api`, `cli`, or `alert`)",
    "summary": "the ticket summary",
    "client": "the client name",
    "site": "the site name",
    "asset": "the asset name",
    "alert_type": "the alert type",
    "resolved_at": "when it was resolved (ISO 8601, UTC)",
}
"""What finish-script parameter templates may use (R5.5)."""


class AutomateFinishScript(_Model):
    """One Ticket Finish script to run when a ticket is resolved (R5.5)."""

    name: str | None = None
    """The script's name in Automate, looked up through `GET /Scripts` at launch."""
    id: int | None = Field(default=None, ge=1)
    """The script's id (preferred: names can be renamed or repeated)."""
    target: Literal["ticket", "computer"] = "ticket"
    """Run it on the Automate ticket, or on the ticket asset's computer."""
    parameters: dict[str, str] = Field(default_factory=dict)
    """Script parameters as templates over the ticket, e.g. `{TicketID: "{automate_ticket_id}"}`."""
    follow_up: bool = False
    """Follow the run's outcome through the computer's ScriptHistory onto the ticket."""

    @model_validator(mode="after")
    def _one_script(self) -> AutomateFinishScript:
        if (self.name is None) == (self.id is None):
            raise ValueError("name a script by exactly one of name or id")
        if self.name is not None and not self.name.strip():
            raise ValueError("the script name is empty")
        return self

    @field_validator("parameters")
    @classmethod
    def _templates(cls, value: dict[str, str]) -> dict[str, str]:
        for key, template in value.items():
            if not key.strip():
                raise ValueError("a parameter name is empty")
            try:
                fields = Template.parse(template).fields
            except TemplateSyntaxError as error:
                raise ValueError(f"parameter {key}: {error}") from None
            unknown = sorted(fields - FINISH_PLACEHOLDERS.keys())
            if unknown:
                raise ValueError(
                    f"parameter {key}: unknown placeholder {{{unknown[0]}}}; known: "
                    + ", ".join(f"{{{name}}}" for name in FINISH_PLACEHOLDERS)
                )
        return value

    @property
    def label(self) -> str:
        """How people see this script: its name, or `script <id>`."""
        return self.name if self.name is not None else f"script {self.id}"


class AutomateFinishSettings(_Model):
    """What finishing a ticket runs in Automate, and how hard the outbox tries."""

    scripts: tuple[AutomateFinishScript, ...] = ()
    poll_interval: Duration = timedelta(seconds=5)
    """How often the outbox worker looks for due work (it is also woken by new entries)."""
    retry_backoff: Duration = timedelta(seconds=10)
    """First wait after Automate could not take a launch (429, 5xx, down); doubles each time."""
    retry_backoff_max: Duration = timedelta(minutes=30)
    """Longest wait between launch attempts, also the cap on a server's Retry-After."""
    verify_interval: Duration = timedelta(minutes=1)
    """Wait between ScriptHistory look-ups for a launch whose answer was lost."""
    verify_checks: int = Field(default=5, ge=1, le=100)
    """Look-ups before a lost launch that never shows up is handed to an admin."""
    follow_up_interval: Duration = timedelta(minutes=1)
    """Wait between ScriptHistory look-ups for a followed run's outcome."""
    follow_up_for: Duration = timedelta(minutes=30)
    """How long to wait for a followed run's outcome before giving up on it."""
    lease: Duration = timedelta(minutes=5)
    """An entry claimed by an instance that then vanished is looked at again after this."""


API_ALERT_SENDER = "tickets@automate-api.alertd.invalid"


class AutomateApiAlerting(_Model):
    """Automate tickets as an alert source (R5.6)."""

    enabled: bool = False
    poll_interval: Duration = timedelta(seconds=60)
    """How often Automate is asked for tickets new or updated since the last poll."""
    status_ids: tuple[int, ...] = Field(default=(1, 2, 3), min_length=1)
    """Ticket status ids that mean "not finished" (Automate's own content uses 1, 2, 3)."""
    sender: str = API_ALERT_SENDER
    """The From address the tickets arrive with, for sender rules (the bundled rules use it)."""
    overlap: Duration = timedelta(minutes=2)
    """Each poll re-reads tickets updated this long before the last one seen, so a ticket
    updated during a poll is never missed (repeats are stored once)."""
    server_timezone: str = "UTC"
    """The Automate server's time zone (its dates carry none), for the alerts' own time."""

    @field_validator("server_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as "
                             "Europe/London)") from None
        return value


_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)?\s*(ms|s|m|h)\s*$")


def _automate_url(value: object) -> object:
    """`https://host[:port]`: alertd adds `/cwa/api/v1` itself (an old client doubled `/cwa`)."""
    if not isinstance(value, str):
        return value
    url = value.strip().rstrip("/")
    scheme, sep, rest = url.partition("://")
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    if not sep or scheme.lower() not in {"http", "https"} or not host:
        raise ValueError(f"url must look like https://rmm.example.net, not {value!r}")
    if "/cwa" in rest.lower():
        raise ValueError(
            "write the server address only (e.g. https://rmm.example.net): alertd adds "
            "/cwa/api/v1 itself"
        )
    hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if scheme.lower() == "http" and not _loopback(hostname):
        raise ValueError("use https: plain http is allowed only to a loopback address")
    return url


class AutomateSettings(_Model):
    """The Automate server and what alertd does with it (R5)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    url: Annotated[str, BeforeValidator(_automate_url)]
    """The server, e.g. https://rmm.example.net; alertd adds /cwa/api/v1."""
    client_id: str = Field(min_length=1)
    """The integration's ClientId (developer.connectwise.com/ClientID), sent on every call."""
    username: str = Field(min_length=1)
    """An Integrator user: a user with MFA gets no token (R5.1)."""
    password_file: Path | None = None
    """File holding the password (a systemd credential); read at each login."""
    password_env: str | None = None
    """Environment variable holding the password."""
    ca_file: Path | None = None
    """CA bundle for a server whose certificate a public CA did not sign."""
    timeout: Duration = timedelta(seconds=30)
    """Longest wait for one answer."""
    max_concurrency: int = Field(default=8, ge=1, le=64)
    """Requests in flight at once."""
    max_rate: str = "20/s"
    """Most requests per time unit: `20/s`, `300/m`, `5/10s` (Automate publishes no limit)."""
    page_size: int = Field(default=1000, ge=1, le=1000)
    """Records per page; Automate serves at most 1000."""
    retries: int = Field(default=5, ge=0, le=20)
    """Retries of a request after 429, 5xx, a timeout or a network error."""
    retry_backoff: Duration = timedelta(seconds=1)
    """First retry delay; doubles each time, with jitter."""
    retry_backoff_max: Duration = timedelta(seconds=60)
    """Longest retry delay, also the cap on a server's Retry-After."""
    import_: AutomateImportSettings = Field(default_factory=AutomateImportSettings, alias="import")
    finish: AutomateFinishSettings = Field(default_factory=AutomateFinishSettings)
    api_alerting: AutomateApiAlerting = Field(default_factory=AutomateApiAlerting)

    @field_validator("max_rate")
    @classmethod
    def _rate(cls, value: str) -> str:
        match = _RATE.match(value)
        if match is None or float(match.group(1)) <= 0 or float(match.group(2) or 1) <= 0:
            raise ValueError(f"max_rate must look like 20/s, 300/m or 5/10s, not {value!r}")
        return value

    @model_validator(mode="after")
    def _one_password_source(self) -> AutomateSettings:
        if (self.password_file is None) == (self.password_env is None):
            raise ValueError(
                "give the Automate password as exactly one of password_file or password_env"
            )
        return self

    @property
    def requests_per_second(self) -> float:
        """``max_rate`` as requests per second."""
        match = _RATE.match(self.max_rate)
        assert match is not None
        count, amount, unit = match.groups()
        period = float(amount or 1) * _DURATION_UNITS[unit]
        return float(count) / period


class LinkSettings(_Model):
    """A "custom button": a URL template over the asset (R4.4).

    Placeholders: `{automate_id}` (the asset's Automate computer id),
    `{asset_id}`, `{asset_name}`, `{client}`, `{site}` and `{automate_url}`
    (the server in `automate.url`); `{{` and `}}` are literal braces.
    """

    name: str = Field(min_length=1)
    """The button's label."""
    url: str
    """The template: an http(s) URL, or one starting with `{automate_url}`."""

    @field_validator("url")
    @classmethod
    def _http_template(cls, value: str) -> str:
        url = value.strip()
        known = ("automate_id", "asset_id", "asset_name", "client", "site", "automate_url")
        try:
            fields = Template.parse(url).fields
        except TemplateSyntaxError as error:
            raise ValueError(str(error)) from None
        unknown = sorted(fields - set(known))
        if unknown:
            raise ValueError(f"unknown placeholder {{{unknown[0]}}} in {value!r}; known: "
                             + ", ".join(f"{{{name}}}" for name in known))
        if not url.startswith("{automate_url}") and re.match(
                r"^https?://[^/?#\s]", url, re.IGNORECASE) is None:
            raise ValueError(f"link url must start with http://, https:// or {{automate_url}}, "
                             f"not {value!r}")
        return url


class HttpSettings(_Model):
    """The HTTP endpoint (health, metrics, API)."""

    listen: str = "127.0.0.1:8025"
    """Address of `/healthz`, `/metrics` and the API."""
    token_file: Path | None = None
    """File holding the API's bearer token (a systemd credential)."""
    token_env: str | None = None
    """Environment variable holding the API's bearer token."""


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
