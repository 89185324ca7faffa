"""Typed records parsed from Automate API JSON (`automate-api.md` §3).

Automate types ids as strings in some contracts and as numbers in others,
and clients see both on the wire, so every id is accepted as a JSON number
or a numeric string and kept as its canonical decimal string (what the
`automate_id` columns hold). A record that cannot be read becomes a `Bad`
value carrying its id (when known) and a plain reason, so one broken record
is counted as failed instead of ending an import.

Router records carry `Username` and `Password`: they are never read here,
so they never reach the database or a log line.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

T = TypeVar("T")

Json = Mapping[str, Any]
Scalar = str | int | float | bool


class RecordInvalid(ValueError):
    """A record from Automate lacks something alertd needs."""


@dataclass(frozen=True, slots=True)
class Bad:
    """A record that could not be read, with why."""

    id: str | None
    reason: str


def parse_id(value: object, what: str = "Id") -> str:
    """A canonical id from a JSON number or a numeric string: `42`, `"42"`, `" 042 "` -> "42"."""
    if isinstance(value, bool):
        raise RecordInvalid(f"{what} is a boolean, not an id")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str) and value.strip().isdigit():
        return str(int(value.strip()))
    if value is None or value == "":
        raise RecordInvalid(f"{what} is missing")
    raise RecordInvalid(f"{what} {value!r} is not a number")


def optional_id(value: object, what: str = "Id") -> str | None:
    """Like parse_id, but a missing, empty or zero id (Automate's "none") is None."""
    if value is None or value == "" or value == 0 or value == "0":
        return None
    return parse_id(value, what)


def pick(record: Json, dotted: str) -> Scalar | None:
    """The value at ``dotted`` (`Client.Name`), lists joined with commas; '' and absent -> None."""
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    if isinstance(value, list):
        value = ", ".join(str(item) for item in value if item not in (None, ""))
    if value is None or value == "" or isinstance(value, Mapping | list):
        return None
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, bool | int | float):
        return value
    return str(value)


def text(record: Json, key: str) -> str | None:
    """A string field, stripped; '' and absent -> None."""
    value = pick(record, key)
    return None if value is None else str(value)


def _nested_id(record: Json, key: str, *id_keys: str) -> str | None:
    nested = record.get(key)
    if not isinstance(nested, Mapping):
        return None
    for id_key in id_keys:
        if id_key in nested:
            return optional_id(nested.get(id_key), f"{key}.{id_key}")
    return None


def _values(record: Json, wanted: Collection[str]) -> dict[str, Scalar]:
    out: dict[str, Scalar] = {}
    for name in wanted:
        value = pick(record, name)
        if value is not None:
            out[name] = value
    return out


def parse_datetime(value: object) -> datetime | None:
    """An Automate date-time; a naive one is taken as UTC, more than 6 decimals are cut."""
    if not isinstance(value, str) or not value.strip():
        return None
    raw = value.strip().replace("Z", "+00:00")
    head, dot, rest = raw.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        raw = f"{head}.{rest[:min(digits, 6)]}{rest[digits:]}"
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class TokenResult:
    """The answer of `POST apitoken` (`TokenResult`), without the token ever being logged."""

    access_token: str = field(repr=False)
    expires: datetime | None
    two_factor_required: bool
    user_id: str | None

    @classmethod
    def from_api(cls, data: Json) -> TokenResult:
        """Read a TokenResult; keys are matched without case, as ASP.NET binds them."""
        lowered = {str(key).lower(): value for key, value in data.items()}
        token = lowered.get("accesstoken")
        return cls(
            access_token=token if isinstance(token, str) else "",
            expires=parse_datetime(lowered.get("expirationdate")),
            two_factor_required=bool(lowered.get("istwofactorrequired")),
            user_id=None if lowered.get("userid") is None else str(lowered.get("userid")),
        )


@dataclass(frozen=True, slots=True)
class PatchInfo:
    """`GET PatchInformation`: which Automate version answers."""

    web_server: str | None

    @classmethod
    def from_api(cls, data: Json) -> PatchInfo:
        """Read PatchInformation."""
        return cls(web_server=text(data, "WebServerPatchVersion"))


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """An Automate client (a customer)."""

    id: str
    name: str

    @classmethod
    def from_api(cls, data: Json) -> ClientRecord:
        """Read a `LabTech.Models.Client`."""
        name = text(data, "Name")
        if name is None:
            raise RecordInvalid("client has no Name")
        return cls(id=parse_id(data.get("Id")), name=name)


@dataclass(frozen=True, slots=True)
class Location:
    """An Automate location (a site), and the router configured for it."""

    id: str
    name: str
    client_id: str | None
    router_id: str | None

    @classmethod
    def from_api(cls, data: Json) -> Location:
        """Read a `Contracts.Clients.Location` (the router's credentials are not read)."""
        name = text(data, "Name")
        if name is None:
            raise RecordInvalid("location has no Name")
        return cls(
            id=parse_id(data.get("Id", data.get("LocationId"))),
            name=name,
            client_id=_nested_id(data, "Client", "Id", "ClientId"),
            router_id=_nested_id(data, "Router", "Id"),
        )


@dataclass(frozen=True, slots=True)
class Contact:
    """An Automate contact (a user), from the v2 contract."""

    id: str
    name: str
    email: str | None
    client_id: str | None
    location_id: str | None

    @classmethod
    def from_api(cls, data: Json) -> Contact:
        """Read a v2 `Contracts.Clients.Contact` (v1 spellings are accepted too)."""
        first, last = text(data, "FirstName"), text(data, "LastName")
        email = text(data, "EmailAddress") or text(data, "Email")
        name = " ".join(part for part in (first, last) if part) or email
        if not name:
            raise RecordInvalid("contact has neither a name nor an e-mail address")
        return cls(
            id=parse_id(data.get("ContactId", data.get("Id")), "ContactId"),
            name=name,
            email=email,
            client_id=_nested_id(data, "Client", "ClientId", "Id"),
            location_id=_nested_id(data, "Location", "LocationId", "Id"),
        )


@dataclass(frozen=True, slots=True)
class Computer:
    """An Automate computer (server or workstation), with the fields the mappings want."""

    id: str
    type: str | None
    client_id: str | None
    location_id: str | None
    inventory: str | None
    values: dict[str, Scalar]

    @classmethod
    def reader(cls, wanted: Collection[str]) -> Callable[[Json], Computer]:
        """A parser keeping only ``wanted`` fields (memory stays flat on large imports)."""

        def read(data: Json) -> Computer:
            values = _values(data, wanted)
            if "ComputerName" not in values:
                raise RecordInvalid("computer has no ComputerName")
            return cls(
                id=parse_id(data.get("Id")),
                type=text(data, "Type"),
                client_id=_nested_id(data, "Client", "Id", "ClientId"),
                location_id=_nested_id(data, "Location", "Id", "LocationId"),
                inventory=text(data, "LastInventoryReceived"),
                values=values,
            )

        return read


@dataclass(frozen=True, slots=True)
class Printer:
    """A printer of one computer (`LabTech.Models.ComputerPrinter`)."""

    id: str
    computer_id: str
    values: dict[str, Scalar]

    @property
    def key(self) -> str:
        """Printer ids mean something only with their computer: `computer:printer`."""
        return f"{self.computer_id}:{self.id}"

    @classmethod
    def reader(cls, computer_id: str, wanted: Collection[str]) -> Callable[[Json], Printer]:
        """A parser for the printers of ``computer_id``."""

        def read(data: Json) -> Printer:
            values = _values(data, wanted)
            if "Name" not in values:
                raise RecordInvalid("printer has no Name")
            owner = optional_id(data.get("ComputerId"), "ComputerId") or computer_id
            return cls(id=parse_id(data.get("Id")), computer_id=owner, values=values)

        return read


@dataclass(frozen=True, slots=True)
class Router:
    """A router configuration (`LabTech.Models.Router`), never with its credentials."""

    id: str
    guid: str | None
    values: dict[str, Scalar]

    @classmethod
    def reader(cls, wanted: Collection[str]) -> Callable[[Json], Router]:
        """A parser that reads ``wanted`` fields and never `Username` or `Password`."""
        safe = [name for name in wanted if name not in {"Username", "Password"}]

        def read(data: Json) -> Router:
            return cls(id=parse_id(data.get("Id")), guid=text(data, "Guid"),
                       values=_values(data, safe))

        return read


@dataclass(frozen=True, slots=True)
class NetworkDevice:
    """A discovered network device (`LabTech.Models.NetworkDevice`)."""

    id: str
    client_id: str | None
    location_id: str | None
    values: dict[str, Scalar]

    @classmethod
    def reader(cls, wanted: Collection[str]) -> Callable[[Json], NetworkDevice]:
        """A parser keeping ``wanted`` fields; SNMP communities are never read."""

        def read(data: Json) -> NetworkDevice:
            values = _values(data, wanted)
            if "Name" not in values:
                raise RecordInvalid("network device has no Name")
            return cls(
                id=parse_id(data.get("Id")),
                client_id=_nested_id(data, "Client", "Id", "ClientId"),
                location_id=_nested_id(data, "Location", "Id", "LocationId"),
                values=values,
            )

        return read


def read_all(items: list[Any], reader: Callable[[Json], T]) -> list[T | Bad]:
    """Parse every item of a page; unreadable ones become Bad with their id when it is known."""
    out: list[T | Bad] = []
    for item in items:
        if not isinstance(item, Mapping):
            out.append(Bad(None, f"expected a record, got {type(item).__name__}"))
            continue
        try:
            out.append(reader(item))
        except RecordInvalid as error:
            raw_id = item.get("Id", item.get("ContactId"))
            out.append(Bad(None if raw_id is None else str(raw_id), str(error)))
    return out
