"""What an imported record should look like locally: field plans, asset values, reports.

Pure functions and values, no I/O: `importer` fetches and writes, this
module decides. A `FieldPlan` is the resolved field mapping of one kind
(built-in fields, then the configured mappings, custom field names resolved
against the custom fields that already exist). `merge_fields` updates an
asset's `fields` JSON with what the mappings say and leaves every key the
import does not own alone, so adopting an asset keeps what it had.

`fields` layout: standard asset fields at the top (`os`, `ip_address`…),
custom fields under `custom`, and the import's own bookkeeping under
`_import` (the inventory date printers were last fetched at).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from alertd.assets.names import host_key, name_key, tag_key
from alertd.automate.fields import BUILT_IN, COLUMN_FIELDS, AutomateKind
from alertd.automate.models import Scalar
from alertd.settings import AutomateImportSettings

CUSTOM = "custom"
BOOKKEEPING = "_import"
EXAMPLES_PER_REASON = 5


@dataclass(frozen=True, slots=True)
class FieldPlan:
    """The mappings of one kind, resolved: which Automate field fills which asset field."""

    kind: AutomateKind
    columns: Mapping[str, str]
    """`name`/`serial` -> Automate field."""
    standard: Mapping[str, str]
    """Standard asset fields kept in `fields` -> Automate field."""
    custom: Mapping[str, str]
    """Custom field display name -> Automate field."""
    wanted: tuple[str, ...]
    """Every Automate field to read for this kind."""


def existing_custom_names(all_fields: Iterable[Mapping[str, Any] | None]) -> dict[str, str]:
    """Custom fields that already exist (on any asset): normalised name -> spelling in use."""
    names: dict[str, str] = {}
    for fields in all_fields:
        custom = fields.get(CUSTOM) if isinstance(fields, Mapping) else None
        if isinstance(custom, Mapping):
            for name in custom:
                names.setdefault(name_key(str(name)), str(name))
    return names


def plan_fields(
    kind: AutomateKind, settings: AutomateImportSettings, custom_names: dict[str, str],
    extra: Iterable[str] = (),
) -> tuple[FieldPlan, list[str]]:
    """The kind's field plan and notes about custom fields (created, reused, missing).

    ``custom_names`` maps normalised names to the spelling in use and gains
    the fields this plan creates, so two kinds mapping one new field agree.
    """
    columns = {target: source for target, source in BUILT_IN[kind].items()
               if target in COLUMN_FIELDS}
    standard = {target: source for target, source in BUILT_IN[kind].items()
                if target not in COLUMN_FIELDS}
    custom: dict[str, str] = {}
    notes: list[str] = []
    for mapping in settings.fields:
        if mapping.kind != kind:
            continue
        target = mapping.to
        if target.asset_field is not None:
            (columns if target.asset_field in COLUMN_FIELDS else standard)[target.asset_field] = (
                mapping.from_
            )
            continue
        wanted_name = (target.custom_field or "").strip()
        key = name_key(wanted_name)
        if key in custom_names:
            spelling = custom_names[key]
            if target.create and spelling != wanted_name:
                notes.append(f"custom field {wanted_name!r} already exists as {spelling!r}: "
                             "reusing it")
            custom[spelling] = mapping.from_
        elif target.create:
            custom_names[key] = wanted_name
            notes.append(f"custom field {wanted_name!r} is created by this import")
            custom[wanted_name] = mapping.from_
        else:
            notes.append(f"custom field {wanted_name!r} does not exist, so {kind} "
                         f"{mapping.from_} is not imported: set create: true to create it")
    wanted = tuple(dict.fromkeys([*columns.values(), *standard.values(), *custom.values(),
                                  *extra]))
    return FieldPlan(kind, columns, standard, custom, wanted), notes


def column_value(plan: FieldPlan, target: str, values: Mapping[str, Scalar]) -> str | None:
    """A column (`name`, `serial`) from its mapped field, falling back to the built-in one."""
    for source in (plan.columns.get(target), BUILT_IN[plan.kind].get(target)):
        if source is not None and values.get(source) is not None:
            return str(values[source])
    return None


def merge_fields(
    existing: Mapping[str, Any] | None,
    plan: FieldPlan,
    values: Mapping[str, Scalar],
    bookkeeping: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``existing`` with the plan's fields set from ``values`` (empty ones removed)."""
    out: dict[str, Any] = dict(existing or {})
    for target, source in plan.standard.items():
        value = values.get(source)
        if value is None:
            out.pop(target, None)
        else:
            out[target] = value
    if plan.custom or CUSTOM in out:
        custom = dict(out.get(CUSTOM) or {})
        for name, source in plan.custom.items():
            value = values.get(source)
            if value is None:
                custom.pop(name, None)
            else:
                custom[name] = value
        if custom:
            out[CUSTOM] = custom
        else:
            out.pop(CUSTOM, None)
    if bookkeeping:
        out[BOOKKEEPING] = {**(out.get(BOOKKEEPING) or {}), **bookkeeping}
    return out


class Existing(NamedTuple):
    """An asset as the database holds it, for comparison."""

    id: int
    name: str
    kind: str
    asset_tag: str | None
    serial: str | None
    client_id: int | None
    site_id: int | None
    parent_id: int | None
    fields: dict[str, Any]


ASSET_COLUMNS = ("name", "kind", "asset_tag", "serial", "client_id", "site_id", "parent_id",
                 "fields")


def asset_row(
    *, automate_kind: str, automate_id: str, name: str, kind: str, asset_tag: str | None,
    serial: str | None, client_id: int | None, site_id: int | None, parent_id: int | None,
    fields: dict[str, Any],
) -> dict[str, Any]:
    """A complete `assets` row (without timestamps), normalised keys filled."""
    return {
        "automate_kind": automate_kind, "automate_id": automate_id, "name": name,
        "name_key": host_key(name), "kind": kind, "asset_tag": asset_tag,
        "tag_key": tag_key(asset_tag), "serial": serial, "serial_key": tag_key(serial),
        "client_id": client_id, "site_id": site_id, "parent_id": parent_id, "fields": fields,
    }


def same_asset(existing: Existing, row: Mapping[str, Any]) -> bool:
    """Whether writing ``row`` would change nothing."""
    return bool(
        existing.name == row["name"] and existing.kind == row["kind"]
        and existing.asset_tag == row["asset_tag"] and existing.serial == row["serial"]
        and existing.client_id == row["client_id"] and existing.site_id == row["site_id"]
        and existing.parent_id == row["parent_id"] and existing.fields == row["fields"]
    )


def match_value(row: Mapping[str, Any], match_on: str) -> str | None:
    """The normalised value of the matching field in ``row`` (None when it has none)."""
    if match_on == "serial":
        return tag_key(row.get("serial"))
    if match_on == "name":
        return host_key(str(row["name"])) if row.get("name") else None
    value = (row.get("fields") or {}).get(match_on)
    if value is None:
        return None
    return " ".join(str(value).lower().split()) or None


def existing_match_value(existing: Existing, match_on: str) -> str | None:
    """The same normalised value for an asset already in the database."""
    return match_value({"serial": existing.serial, "name": existing.name,
                        "fields": existing.fields}, match_on)


@dataclass
class KindReport:
    """What an import did for one kind: counts, and reasons with example ids."""

    kind: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    reasons: Counter[tuple[str, str]] = field(default_factory=Counter)
    examples: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def skip(self, ident: str | None, reason: str) -> None:
        """Count one record skipped for ``reason``."""
        self.skipped += 1
        self._reason("skipped", ident, reason)

    def fail(self, ident: str | None, reason: str) -> None:
        """Count one record failed for ``reason``."""
        self.failed += 1
        self._reason("failed", ident, reason)

    def note(self, text: str) -> None:
        """Add a note once."""
        if text not in self.notes:
            self.notes.append(text)

    def _reason(self, outcome: str, ident: str | None, reason: str) -> None:
        key = (outcome, reason)
        self.reasons[key] += 1
        examples = self.examples.setdefault(key, [])
        if ident is not None and len(examples) < EXAMPLES_PER_REASON:
            examples.append(ident)

    @property
    def total(self) -> int:
        """Records seen."""
        return self.created + self.updated + self.unchanged + self.skipped + self.failed

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "kind": self.kind, "created": self.created, "updated": self.updated,
            "unchanged": self.unchanged, "skipped": self.skipped, "failed": self.failed,
            "error": self.error, "notes": list(self.notes),
            "reasons": [
                {"outcome": outcome, "reason": reason, "count": count,
                 "examples": self.examples.get((outcome, reason), [])}
                for (outcome, reason), count in sorted(self.reasons.items())
            ],
        }


@dataclass
class ImportReport:
    """The whole run: one KindReport per kind, in order."""

    dry_run: bool
    kinds: list[KindReport] = field(default_factory=list)
    linked_tickets: int = 0
    error: str | None = None
    """Why the run stopped early (Automate unavailable, stopped), if it did."""
    unavailable: bool = False
    seconds: float = 0.0
    requests: int = 0

    def kind(self, name: str) -> KindReport:
        """The report of ``name``, created on first use."""
        for report in self.kinds:
            if report.kind == name:
                return report
        report = KindReport(name)
        self.kinds.append(report)
        return report

    def get(self, name: str) -> KindReport | None:
        """The report of ``name``, if that kind ran."""
        return next((report for report in self.kinds if report.kind == name), None)

    @property
    def refused(self) -> bool:
        """Whether some kind ended with an error."""
        return any(report.error for report in self.kinds)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form (`alertd automate import --format json`)."""
        return {
            "dry_run": self.dry_run, "kinds": [report.as_dict() for report in self.kinds],
            "linked_tickets": self.linked_tickets, "error": self.error,
            "seconds": round(self.seconds, 3), "requests": self.requests,
        }

    def summary(self) -> dict[str, Any]:
        """Flat counts for one log line."""
        out: dict[str, Any] = {"dry_run": self.dry_run, "linked_tickets": self.linked_tickets,
                               "seconds": round(self.seconds, 3), "requests": self.requests}
        for report in self.kinds:
            out[report.kind] = (f"{report.created}c/{report.updated}u/{report.unchanged}="
                                f"/{report.skipped}s/{report.failed}f")
        if self.error:
            out["error"] = self.error
        return out
