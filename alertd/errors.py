"""The one exception tree of alertd, organised by what the caller must do.

::

    AlertdError
    ├── ConfigError                 fix the configuration; exit 78 (EX_CONFIG)
    │   ├── SettingsInvalid         alertd.yaml problems, each with file and line
    │   ├── RulesInvalid            rule-file problems, each with file and line
    │   └── SchemaOutdated          the database needs `alertd db upgrade`
    ├── TransientError              retry later; exit 75 (EX_TEMPFAIL)
    │   ├── StorageUnavailable      the database cannot be reached or is locked
    │   └── ImapUnavailable         a mailbox server cannot be reached (sources/imap_client.py)
    │       └── ImapLoginRefused    wrong IMAP credentials: retried only on a long back-off
    ├── PermanentError              retrying will not help; an admin must look
    │   └── ParseError              a mail that cannot be parsed at all
    ├── CannotListen                a port cannot be bound (daemon/supervisor.py); exit 1
    ├── AutomateError               what the Automate API did; raised in automate/client.py only
    │   ├── AutomateMisconfigured   also a ConfigError: wrong URL or an HTML page, TLS, password,
    │   │                           MFA user, ClientId; exit 78, retried only on a long back-off
    │   ├── AutomateUnavailable     also a TransientError: network, timeout, 429, 5xx after retries
    │   ├── AutomateRejected        also a PermanentError: 403, 400, 404 and other refusals
    │   └── AutomateAnswerLost      a request that may have taken effect got no answer: it is
    │                               never repeated blindly (a script launch is checked first)
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


class AutomateError(AlertdError):
    """Something went wrong talking to ConnectWise Automate.

    ``aspect`` says which part of the connection it concerns (`url`, `tls`,
    `credentials`, `client_id`, `permissions` or `server`), so `alertd
    automate check` can put each problem on its own line; ``status`` is the
    HTTP status when there was one.
    """

    def __init__(self, message: str, *, aspect: str = "server", status: int | None = None) -> None:
        super().__init__(message)
        self.aspect = aspect
        self.status = status


class AutomateMisconfigured(AutomateError, ConfigError):
    """Automate cannot be used as configured: URL, TLS, credentials, MFA user or ClientId."""


class AutomateUnavailable(AutomateError, TransientError):
    """Automate could not be reached or kept failing (network, timeout, 429, 5xx).

    ``retry_after`` is the wait the server asked for (429/503 `Retry-After`), in seconds.
    """

    def __init__(self, message: str, *, aspect: str = "server", status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message, aspect=aspect, status=status)
        self.retry_after = retry_after


class AutomateRejected(AutomateError, PermanentError):
    """Automate refused a request for good (permission, bad request, unknown id)."""


class AutomateAnswerLost(AutomateError):
    """A request was sent but its answer never came: Automate may or may not have acted."""


class NotFound(AlertdError):
    """A ticket, message or file named by the user does not exist."""


def exit_code_for(error: BaseException) -> int:
    """The process exit status for an error that ends a command."""
    if isinstance(error, ConfigError):
        return EX_CONFIG
    if isinstance(error, TransientError):
        return EX_TEMPFAIL
    return EX_FAILURE
