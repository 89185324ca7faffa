"""Reading a rules directory: every file, every problem, one immutable RuleSet (R3.3-R3.5).

Files are read in lexical order, entries in written order. Shape errors,
duplicate keys and names, RE2 patterns, unknown ticket types, alert types
and template fields are all checked up front, and every problem is reported
at once as `file:line: where: message`. A broken directory never yields a
partial rule set.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from alertd.domain import Problem
from alertd.errors import RulesInvalid
from alertd.rules.engine import (
    BUILTIN_FIELDS,
    KEY_ONLY_FIELDS,
    AlertType,
    Condition,
    Conditions,
    RuleSet,
    Sender,
    TicketType,
)
from alertd.rules.model import (
    AlertTypeModel,
    ConditionModel,
    ConditionsModel,
    SenderModel,
    TicketTypeModel,
)
from alertd.rules.patterns import Pattern, PatternError
from alertd.templates import Template, TemplateSyntaxError
from alertd.yamlfile import Loc, YamlDocument, load_yaml

RULE_SUFFIXES = (".yaml", ".yml")
SECTIONS: dict[str, type[BaseModel]] = {
    "ticket_types": TicketTypeModel,
    "senders": SenderModel,
    "alert_types": AlertTypeModel,
}


@dataclass
class FileReport:
    """The outcome of checking one rule file."""

    path: Path
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the file has no problems."""
        return not self.problems


@dataclass
class RulesReport:
    """Every file checked, and the rule set when there were no problems at all."""

    directory: Path
    files: list[FileReport]
    general: list[Problem]
    ruleset: RuleSet | None

    @property
    def problems(self) -> list[Problem]:
        """All problems, general ones first."""
        return [*self.general, *(p for report in self.files for p in report.problems)]


def rule_files(directory: Path) -> list[Path]:
    """The rule files of ``directory``, in the order they are read."""
    return sorted(
        (p for p in directory.iterdir() if p.suffix in RULE_SUFFIXES and p.is_file()),
        key=lambda p: p.name,
    )


def load_rules(directory: Path) -> RuleSet:
    """Load ``directory``; raises RulesInvalid with every problem found."""
    report = check_rules(directory)
    if report.ruleset is None:
        raise RulesInvalid(report.problems)
    return report.ruleset


def check_rules(directory: Path) -> RulesReport:
    """Check every file of ``directory`` and build the rule set if all is well."""
    if not directory.is_dir():
        problem = Problem(directory, None, "", "rules directory does not exist")
        return RulesReport(directory, [], [problem], None)
    try:
        return _Compiler(directory).run()
    except OSError as error:
        problem = Problem(directory, None, "", f"cannot read the rules directory: {error}")
        return RulesReport(directory, [], [problem], None)


@dataclass
class _Entries:
    """One file's entries in written order; None marks an entry that failed validation."""

    ticket_types: list[TicketTypeModel | None]
    senders: list[SenderModel | None]
    alert_types: list[AlertTypeModel | None]


class _Compiler:
    """Turns validated rule files into a RuleSet, collecting problems as it goes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.reports: dict[Path, FileReport] = {}
        self.documents: dict[Path, tuple[YamlDocument, _Entries]] = {}
        self.digest = hashlib.sha256()
        self.shared_groups: set[str] = set()
        self.declared: dict[str, set[str]] = {name: set() for name in SECTIONS}
        """Every name written, valid entry or not, so one broken entry is reported once."""

    def run(self) -> RulesReport:
        files = rule_files(self.directory)
        for path in files:
            self.reports[path] = FileReport(path)
            self._read(path)
        ticket_types = self._ticket_types()
        alert_types = self._alert_types(ticket_types)
        senders = self._senders(ticket_types, alert_types)
        reports = list(self.reports.values())
        for report in reports:
            report.problems.sort(key=lambda p: p.line or 0)
        ruleset = None
        if all(report.ok for report in reports):
            ruleset = RuleSet(
                version=self.digest.hexdigest()[:12],
                directory=self.directory,
                files=tuple(files),
                ticket_types=ticket_types,
                senders=tuple(senders),
                alert_types=alert_types,
            )
        return RulesReport(self.directory, reports, [], ruleset)

    # -- reading -----------------------------------------------------------------

    def _read(self, path: Path) -> None:
        report = self.reports[path]
        loaded = load_yaml(path)
        if isinstance(loaded, Problem):
            report.problems.append(loaded)
            return
        self.digest.update(f"{path.name}\0{loaded.text}\0".encode("utf-8", "surrogatepass"))
        data = loaded.data if loaded.data is not None else {}
        if not isinstance(data, dict):
            report.problems.append(
                loaded.problem((), "a rule file is a mapping of ticket_types, senders, alert_types")
            )
            return
        sections: dict[str, list[Any]] = {name: [] for name in SECTIONS}
        for key, value in data.items():
            if key not in SECTIONS:
                report.problems.append(loaded.problem(
                    (key,), f"unknown key {key!r} (a rule file has {', '.join(SECTIONS)})"))
                continue
            if not isinstance(value, list):
                report.problems.append(loaded.problem((key,), f"{key} must be a list"))
                continue
            for index, item in enumerate(value):
                if isinstance(item, dict) and isinstance(item.get("name"), str):
                    self.declared[key].add(item["name"])
                try:
                    sections[key].append(SECTIONS[key].model_validate(item))
                except ValidationError as error:
                    report.problems.extend(loaded.problems_from(error, prefix=(key, index)))
                    sections[key].append(_despite_unknown_keys(SECTIONS[key], item, error))
        self.documents[path] = (loaded, _Entries(
            ticket_types=sections["ticket_types"],
            senders=sections["senders"],
            alert_types=sections["alert_types"],
        ))

    def _problem(self, path: Path, loc: Loc, message: str) -> None:
        document, _ = self.documents[path]
        self.reports[path].problems.append(document.problem(loc, message))

    def _unique(self, seen: dict[str, tuple[Path, int | None]], kind: str,
                name: str, path: Path, loc: Loc) -> bool:
        document, _ = self.documents[path]
        if name in seen:
            first_path, first_line = seen[name]
            self._problem(
                path, [*loc, "name"],
                f"duplicate {kind} name {name!r} (first in {first_path.name}:{first_line})",
            )
            return False
        seen[name] = (path, document.line_of([*loc, "name"]))
        return True

    # -- ticket types ------------------------------------------------------------

    def _ticket_types(self) -> dict[str, TicketType]:
        out: dict[str, TicketType] = {}
        seen: dict[str, tuple[Path, int | None]] = {}
        for path, (_, model) in self.documents.items():
            for index, item in enumerate(model.ticket_types):
                if item is None:
                    continue
                if self._unique(seen, "ticket type", item.name, path, ("ticket_types", index)):
                    out[item.name] = TicketType(item.name, item.priority, item.team, item.category)
        return out

    # -- alert types -------------------------------------------------------------

    def _alert_types(self, ticket_types: dict[str, TicketType]) -> dict[str, AlertType]:
        self.shared_groups = self._continue_groups()
        out: dict[str, AlertType] = {}
        seen: dict[str, tuple[Path, int | None]] = {}
        for path, (_, model) in self.documents.items():
            for index, item in enumerate(model.alert_types):
                if item is None:
                    continue
                loc: Loc = ("alert_types", index)
                if not self._unique(seen, "alert type", item.name, path, loc):
                    continue
                compiled = self._alert_type(path, loc, item, ticket_types)
                if compiled is not None:
                    out[item.name] = compiled
        return out

    def _alert_type(
        self, path: Path, loc: Loc, item: AlertTypeModel, ticket_types: dict[str, TicketType]
    ) -> AlertType | None:
        before = len(self.reports[path].problems)
        match = self._conditions(path, [*loc, "match"], item.match, fields_allowed=False)
        extract = tuple(
            c for i, model in enumerate(item.extract)
            if (c := self._condition(path, [*loc, "extract", i], model, fields_allowed=False))
        )
        groups = set(_groups(match.all + match.any + match.none + extract))
        blocks = {}
        for name in ("problem", "recovery", "ignore"):
            block_model: ConditionsModel | None = getattr(item, name)
            blocks[name] = (
                None if block_model is None
                else self._conditions(path, [*loc, name], block_model, fields_allowed=True)
            )
        for block in blocks.values():
            if block is not None:
                groups.update(_groups(block.all + block.any + block.none))
        for name in ("problem", "recovery", "ignore"):
            block_model = getattr(item, name)
            if block_model is not None:
                self._check_field_refs(path, [*loc, name], block_model, groups)
        if item.ticket.type is not None and item.ticket.type not in self.declared["ticket_types"]:
            self._problem(path, [*loc, "ticket", "type"],
                          f"unknown ticket type {item.ticket.type!r}")
        allowed = groups | BUILTIN_FIELDS | self.shared_groups
        summary = self._template(path, [*loc, "ticket", "summary"], item.ticket.summary, allowed)
        details = (
            None if item.ticket.details is None
            else self._template(path, [*loc, "ticket", "details"], item.ticket.details, allowed)
        )
        dedup = self._template(path, [*loc, "dedup_key"], item.dedup_key,
                               allowed | KEY_ONLY_FIELDS)
        if len(self.reports[path].problems) > before or summary is None or dedup is None:
            return None
        return AlertType(
            name=item.name,
            file=path,
            match=match,
            extract=extract,
            problem=blocks["problem"],
            recovery=blocks["recovery"],
            ignore=blocks["ignore"],
            ticket_type=item.ticket.type,
            summary=summary,
            details=details,
            priority=item.ticket.priority,
            team=item.ticket.team,
            category=item.ticket.category,
            dedup_key=dedup,
            finish_scripts=item.finish_scripts,
            continue_=item.continue_,
        )

    def _continue_groups(self) -> set[str]:
        """Fields `continue` alert types can add: any template may use them."""
        names: set[str] = set()
        for _, entries in self.documents.values():
            for item in entries.alert_types:
                if item is None or not item.continue_:
                    continue
                conditions = [*item.extract, *item.match.all, *item.match.any]
                for condition in conditions:
                    value = condition.source_value(condition.source)
                    source = next(iter(value.values())) if isinstance(value, dict) else value
                    try:
                        names |= Pattern.compile(str(source)).group_names
                    except PatternError:
                        continue  # reported where the pattern is compiled for real
        return names

    def _conditions(
        self, path: Path, loc: Loc, model: ConditionsModel, *, fields_allowed: bool
    ) -> Conditions:
        def compile_list(name: str, items: tuple[ConditionModel, ...]) -> tuple[Condition, ...]:
            return tuple(
                c for i, m in enumerate(items)
                if (c := self._condition(path, [*loc, name, i], m, fields_allowed=fields_allowed))
            )

        return Conditions(
            all=compile_list("all", model.all),
            any=compile_list("any", model.any),
            none=compile_list("none", model.none),
        )

    def _condition(
        self, path: Path, loc: Loc, model: ConditionModel, *, fields_allowed: bool
    ) -> Condition | None:
        source = model.source
        value = model.source_value(source)
        key: str | None = None
        pattern_loc: list[str | int] = [*loc, source]
        if isinstance(value, dict):
            key, pattern_source = next(iter(value.items()))
            pattern_loc.append(key)
            if source == "header":
                key = key.lower()
        else:
            assert value is not None
            pattern_source = value
        if source == "field" and not fields_allowed:
            self._problem(path, [*loc, source],
                          "a field condition can only test extracted fields, in "
                          "problem, recovery or ignore")
            return None
        try:
            pattern = Pattern.compile(pattern_source)
        except PatternError as error:
            self._problem(path, pattern_loc, str(error))
            return None
        return Condition(source, key, pattern)

    def _check_field_refs(
        self, path: Path, loc: Loc, model: ConditionsModel, groups: set[str]
    ) -> None:
        for name in ("all", "any", "none"):
            for index, condition in enumerate(getattr(model, name)):
                if condition.field is None:
                    continue
                field_name = next(iter(condition.field))
                if field_name not in groups:
                    self._problem(path, [*loc, name, index, "field", field_name],
                                  f"unknown field {field_name!r}: no pattern extracts it")

    def _template(self, path: Path, loc: Loc, source: str, allowed: set[str] | frozenset[str]
                  ) -> Template | None:
        try:
            template = Template.parse(source)
        except TemplateSyntaxError as error:
            self._problem(path, loc, str(error))
            return None
        unknown = sorted(template.fields - allowed)
        for name in unknown:
            self._problem(path, loc, f"unknown template field {name!r}")
        return None if unknown else template

    # -- senders -----------------------------------------------------------------

    def _senders(
        self, ticket_types: dict[str, TicketType], alert_types: dict[str, AlertType]
    ) -> list[Sender]:
        out: list[Sender] = []
        seen: dict[str, tuple[Path, int | None]] = {}
        declared = self.declared["alert_types"]
        ordered = list(alert_types.values())
        for path, (_, model) in self.documents.items():
            for index, item in enumerate(model.senders):
                if item is None:
                    continue
                loc: Loc = ("senders", index)
                if not self._unique(seen, "sender", item.name, path, loc):
                    continue
                sender = self._sender(path, loc, item, ticket_types, alert_types, declared,
                                      ordered)
                if sender is not None:
                    out.append(sender)
        return out

    def _sender(
        self,
        path: Path,
        loc: Loc,
        item: SenderModel,
        ticket_types: dict[str, TicketType],
        alert_types: dict[str, AlertType],
        declared: set[str],
        ordered: list[AlertType],
    ) -> Sender | None:
        before = len(self.reports[path].problems)
        if item.ticket_type not in self.declared["ticket_types"]:
            self._problem(path, [*loc, "ticket_type"],
                          f"unknown ticket type {item.ticket_type!r}")
        addresses: set[str] = set()
        domains: set[str] = set()
        for i, entry in enumerate(item.from_):
            value = entry.strip().lower()
            if value.startswith("@") and len(value) > 1:
                domains.add(value[1:])
            elif "@" in value and not value.startswith("@") and not value.endswith("@"):
                addresses.add(value)
            else:
                self._problem(path, [*loc, "from", i],
                              f"{entry!r} is neither an address nor @domain")
        pattern = None
        if item.from_pattern is not None:
            try:
                pattern = Pattern.compile(item.from_pattern)
            except PatternError as error:
                self._problem(path, [*loc, "from_pattern"], str(error))
        chosen: list[AlertType] = []
        if item.alert_types is None:
            chosen = ordered
        else:
            for i, name in enumerate(item.alert_types):
                if name not in declared:
                    self._problem(path, [*loc, "alert_types", i], f"unknown alert type {name!r}")
                elif name in alert_types:
                    chosen.append(alert_types[name])
        if len(self.reports[path].problems) > before:
            return None
        return Sender(
            name=item.name,
            file=path,
            addresses=frozenset(addresses),
            domains=frozenset(domains),
            pattern=pattern,
            ticket_type=item.ticket_type,
            alert_types=tuple(chosen),
            default_client=item.default_client,
            default_site=item.default_site,
            noise_detection=item.noise_detection,
        )


def _despite_unknown_keys(model: type[BaseModel], item: Any, error: ValidationError) -> Any:
    """The entry validated without its unknown keys, so its other problems get reported too.

    None when unknown keys were not its only shape problems.
    """
    unknown = [e["loc"] for e in error.errors() if e["type"] == "extra_forbidden"]
    if len(unknown) != error.error_count():
        return None
    cleaned = copy.deepcopy(item)
    for loc in unknown:
        node = cleaned
        for step in loc[:-1]:
            node = node[step]
        node.pop(loc[-1], None)
    try:
        return model.model_validate(cleaned)
    except ValidationError:
        return None


def _groups(conditions: Iterable[Condition]) -> Iterable[str]:
    for condition in conditions:
        yield from condition.pattern.group_names
