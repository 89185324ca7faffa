"""The one exception tree of alertd, organised by what the caller must do.

::

    AlertdError
    ├── ConfigError                 fix the configuration; exit 78 (EX_CONFIG)
    │   ├── SettingsInvalid         alertd.yaml problems, each with file and line
    │   ├── RulesInvalid            rule-file problems, each with file and line
    │   └── SchemaOutdated          the database needs `alertd db upgrade`
    ├── TransientError              retry later; exit 75 (EX_TEMPFAIL)
    │   └── StorageUnavailable      the database cannot be reached or is locked
    ├── PermanentError              retrying will not help; an admin must look
    │   └── ParseError              a mail that cannot be parsed at all
    └── NotFound                    a named ticket, message or file does not exist; exit 1

Normal outcomes (a duplicate mail, an unknown sender, noise) are returned
values, never exceptions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alertd.domain import Problem

EX_OK = 0
EX_FAILURE = 1
EX_TEMPFAIL = 75
EX_CONFIG = 78


class AlertdError(Exception):
    """Root of every error alertd raises on purpose."""


class ConfigError(AlertdError):
    """The configuration is wrong; restarting will not help."""


class ProblemsError(ConfigError):
    """A configuration error that carries every problem found, not just the first."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(p.render() for p in self.problems))


class SettingsInvalid(ProblemsError):
    """alertd.yaml (or its environment overrides) failed validation."""


class RulesInvalid(ProblemsError):
    """A rules directory failed validation."""


class SchemaOutdated(ConfigError):
    """The database schema is not at the version this alertd expects."""


class TransientError(AlertdError):
    """A failure that retrying later may cure."""


class StorageUnavailable(TransientError):
    """The database could not be reached, or stayed locked."""


class PermanentError(AlertdError):
    """A failure that retrying will not cure."""


class ParseError(PermanentError):
    """A mail that could not be parsed at all."""


class NotFound(AlertdError):
    """A ticket, message or file named by the user does not exist."""


def exit_code_for(error: BaseException) -> int:
    """The process exit status for an error that ends a command."""
    if isinstance(error, ConfigError):
        return EX_CONFIG
    if isinstance(error, TransientError):
        return EX_TEMPFAIL
    return EX_FAILURE
