"""The shape of a rule file, as admins write it (R3.1-R3.3).

A rules directory holds `*.yaml` files, each with any of three lists:

- `ticket_types`: the kinds of ticket alerts make, with their defaults;
- `senders`: which From addresses are alert sources (Halo's "email rule");
- `alert_types`: how to recognise an alert, what to extract, problem or
  recovery, and the ticket and dedup key it makes.

These models only check shape; `load.py` compiles patterns and checks
cross-references, reporting every problem with its file and line.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

CONDITION_SOURCES = ("subject", "body", "text", "from", "to", "header", "field")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ConditionModel(_Model):
    """One regular expression and what it is tested against."""

    subject: str | None = None
    body: str | None = None
    text: str | None = None
    """Subject and body together: what a folded or cut subject still shows."""
    from_: str | None = Field(default=None, alias="from")
    to: str | None = None
    header: dict[str, str] | None = None
    """`{Header-Name: pattern}`: any value of that header."""
    field: dict[str, str] | None = None
    """`{field: pattern}`: a field extracted earlier (problem/recovery/ignore only)."""

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [name for name in CONDITION_SOURCES if self.source_value(name) is not None]
        if len(given) != 1:
            raise ValueError(
                "a condition needs exactly one of " + ", ".join(CONDITION_SOURCES)
                + (f" (found {', '.join(given)})" if given else "")
            )
        for name in ("header", "field"):
            value = self.source_value(name)
            if isinstance(value, dict) and len(value) != 1:
                raise ValueError(f"{name}: write one {{name: pattern}} pair per condition")
        return self

    def source_value(self, name: str) -> str | dict[str, str] | None:
        """The value given for source ``name`` (`from` is stored as from_)."""
        value: str | dict[str, str] | None = getattr(self, "from_" if name == "from" else name)
        return value

    @property
    def source(self) -> str:
        """Which of CONDITION_SOURCES this condition tests."""
        return next(name for name in CONDITION_SOURCES if self.source_value(name) is not None)


class ConditionsModel(_Model):
    """`all` must all match, at least one of `any` must (when given), none of `none` may."""

    all: tuple[ConditionModel, ...] = ()
    any: tuple[ConditionModel, ...] = ()
    none: tuple[ConditionModel, ...] = ()


class TicketTypeModel(_Model):
    """A declared ticket type and its defaults (R3.3)."""

    name: str = Field(min_length=1)
    priority: int = Field(default=3, ge=1, le=5)
    team: str | None = None
    category: str | None = None


class SenderModel(_Model):
    """Which From addresses are alert sources, and what their alerts become (R3.1)."""

    name: str = Field(min_length=1)
    from_: tuple[str, ...] = Field(default=(), alias="from")
    """Exact addresses, or `@domain` for a whole domain."""
    from_pattern: str | None = None
    """An RE2 pattern over the sender address, for senders a list cannot name."""
    ticket_type: str
    """The ticket type for alerts from this sender that match no alert type."""
    alert_types: tuple[str, ...] | None = None
    """The alert types tried for this sender, in order; unset means all, in load order."""
    default_client: str | None = None
    default_site: str | None = None
    noise_detection: bool = True
    """Record auto-replies and bounces from this sender as ignored (R1.5)."""

    @model_validator(mode="after")
    def _some_address(self) -> Self:
        if not self.from_ and self.from_pattern is None:
            raise ValueError("a sender needs `from` addresses or a `from_pattern`")
        return self


class TicketTemplateModel(_Model):
    """The ticket an alert type opens."""

    type: str | None = None
    """A declared ticket type; unset means the sender's."""
    summary: str = "{subject}"
    details: str | None = None
    """A template; unset means the mail's text."""
    priority: int | None = Field(default=None, ge=1, le=5)
    team: str | None = None
    category: str | None = None


class AlertTypeModel(_Model):
    """How to recognise one kind of alert, and what it does (R3.2)."""

    name: str = Field(min_length=1)
    match: ConditionsModel = Field(default_factory=ConditionsModel)
    extract: tuple[ConditionModel, ...] = ()
    """Patterns with named groups; for each field the first one found wins."""
    problem: ConditionsModel | None = None
    recovery: ConditionsModel | None = None
    """A mail matching this resolves the open ticket of its key."""
    ignore: ConditionsModel | None = None
    """A mail matching this is recorded as ignored (informational, test mails)."""
    ticket: TicketTemplateModel = Field(default_factory=TicketTemplateModel)
    dedup_key: str = "{asset}|{alert_type}"
    finish_scripts: bool = True
    """Whether resolving its ticket runs the Automate Ticket Finish scripts."""
    continue_: bool = Field(default=False, alias="continue")
    """Only add fields, then keep looking for the alert type that decides."""
