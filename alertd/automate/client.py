"""The ConnectWise Automate REST client (SPEC R5.1, R5.4; `automate-api.md` §1-2, §5).

One `AutomateClient` per process owns one `httpx.AsyncClient` (house rule
12) with explicit timeouts and connection limits. It:

- joins `https://HOST` + `/cwa/api/v1/<Resource>` explicitly (an old client
  library doubled `/cwa`), and `/cwa/api/v2/Contacts` for v2 contacts;
- sends the integration's `ClientId` header on every call, the login too;
- logs in with `POST apitoken`, caches the token and logs in again a little
  before its `ExpirationDate` (a naive date is taken as UTC, and a token is
  never trusted for more than an hour); a 401 gets one fresh login and one
  retry; an empty token (an MFA user) and an HTML page where JSON was
  expected are configuration errors with plain messages;
- pages lists with `page`/`pageSize` (at most 1000) until a short page;
- retries 429 (honouring `Retry-After`, capped), 5xx, timeouts and network
  errors with capped, jittered exponential backoff;
- limits requests in flight (`max_concurrency`) and requests per second
  (`max_rate`): Automate publishes no rate limit, and printers cost one
  request per computer, so this is what paces a large import;
- reads the password from `password_file` (a relative path is looked up in
  systemd's `$CREDENTIALS_DIRECTORY` when there is one, so one settings file
  serves alertd.service and alertd-import.service) or `password_env` at each
  login, and never logs it or a token.

Every httpx exception is turned into the AutomateError tree here and
nowhere else: AutomateMisconfigured (URL, TLS, credentials, MFA, ClientId),
AutomateUnavailable (network, timeouts, 429/5xx after retries) and
AutomateRejected (403 and other refusals). Each carries an ``aspect`` so
`alertd automate check` can say which part of the set-up is wrong.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

import httpx

from alertd import __version__
from alertd.automate.models import (
    Bad,
    ClientRecord,
    Computer,
    Contact,
    Json,
    Location,
    NetworkDevice,
    PatchInfo,
    Printer,
    RecordInvalid,
    Router,
    TokenResult,
    parse_id,
    read_all,
)
from alertd.automate.scripts import HistoryEntry, LaunchResult, Script, ScriptLaunch
from alertd.automate.tickets import AutomateTicket
from alertd.clock import Clock, SystemClock
from alertd.errors import (
    AutomateAnswerLost,
    AutomateError,
    AutomateMisconfigured,
    AutomateRejected,
    AutomateUnavailable,
)
from alertd.logs import get_logger
from alertd.metrics import AUTOMATE_CALLS
from alertd.secrets import credential_path
from alertd.settings import AutomateSettings

log = get_logger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

MAX_PAGE_SIZE = 1000
TOKEN_RENEW_BEFORE = timedelta(minutes=2)
TOKEN_MAX_LIFETIME = timedelta(hours=1)
TOKEN_MIN_LIFETIME = timedelta(seconds=30)
COMPUTER_HEAVY_FIELDS = (
    "OpenPortsTCP", "OpenPortsUDP", "IRQ", "Address", "DMA", "UserAccounts", "PowerProfiles",
    "HardwarePorts", "Groups", "Tickets", "LoggedInUsers",
)
"""Large arrays left out of bulk computer lists (`automate-api.md` §3.4)."""

_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class Probe:
    """What an unauthenticated first call found out about the URL and TLS."""

    api_url: str
    tls: str
    status: int


class RateLimiter:
    """Spaces requests evenly so that at most ``per_second`` start each second."""

    def __init__(self, per_second: float, *, now: Callable[[], float] | None = None,
                 sleep: Sleep = asyncio.sleep) -> None:
        self._interval = 1.0 / per_second
        self._next = 0.0
        self._now = now
        self._sleep = sleep

    async def wait(self) -> None:
        """Wait for this request's slot (slots are handed out in call order)."""
        now = self._now() if self._now is not None else asyncio.get_running_loop().time()
        slot = max(now, self._next)
        self._next = slot + self._interval
        if slot > now:
            await self._sleep(slot - now)


class AutomateClient:
    """Typed, paced, retrying access to one Automate server. Use as an async context manager."""

    def __init__(
        self,
        settings: AutomateSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
        sleep: Sleep = asyncio.sleep,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.api_v1 = f"{settings.url}/cwa/api/v1"
        self.api_v2 = f"{settings.url}/cwa/api/v2"
        self._transport = transport
        self._clock = clock or SystemClock()
        self._sleep = sleep
        self._environ = os.environ if environ is None else environ
        self._http: httpx.AsyncClient | None = None
        self._token: str | None = None
        self._renew_at: datetime | None = None
        self._login_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        self._limiter = RateLimiter(settings.requests_per_second)
        self._jitter = random.Random()  # noqa: S311 - backoff jitter, not cryptography
        self.requests = 0
        """Requests sent so far (for reports and benchmarks)."""

    # -- lifecycle ------------------------------------------------------------------

    async def __aenter__(self) -> AutomateClient:
        limits = httpx.Limits(max_connections=self.settings.max_concurrency,
                              max_keepalive_connections=self.settings.max_concurrency)
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(self.settings.timeout.total_seconds()),
            limits=limits,
            verify=self._tls_context(),
            transport=self._transport,
            follow_redirects=False,
            headers={
                "ClientId": self.settings.client_id,
                "Accept": "application/json",
                "User-Agent": f"alertd/{__version__}",
            },
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _tls_context(self) -> ssl.SSLContext | bool:
        if self.settings.ca_file is None:
            return True
        try:
            return ssl.create_default_context(cafile=str(self.settings.ca_file))
        except (OSError, ssl.SSLError) as error:
            raise AutomateMisconfigured(
                f"cannot read the CA file {self.settings.ca_file}: {error}", aspect="tls"
            ) from error

    # -- authentication -------------------------------------------------------------

    def _password(self) -> str:
        settings = self.settings
        if settings.password_file is not None:
            path = credential_path(settings.password_file, self._environ)
            try:
                return path.read_text(encoding="utf-8").strip("\r\n")
            except OSError as error:
                raise AutomateMisconfigured(
                    f"cannot read the Automate password file {path}: {error.strerror}",
                    aspect="credentials",
                ) from error
        name = settings.password_env or ""
        value = self._environ.get(name)
        if not value:
            raise AutomateMisconfigured(
                f"the environment variable {name} with the Automate password is not set",
                aspect="credentials",
            )
        return value

    async def login(self) -> TokenResult:
        """Log in now (`POST apitoken`) and cache the token; configuration errors are plain."""
        body = {"Username": self.settings.username, "Password": self._password()}
        response = await self._send("POST", f"{self.api_v1}/apitoken", json_body=body,
                                    authenticated=False, what="login")
        if response.status_code in (400, 401, 403):
            raise AutomateMisconfigured(
                f"Automate refused the login of user {self.settings.username!r} "
                f"(HTTP {response.status_code}): check automate.username and the password",
                aspect="credentials", status=response.status_code,
            )
        self._raise_for_status(response, "login")
        data = self._json(response, "login")
        if not isinstance(data, Mapping):
            raise AutomateMisconfigured(
                f"the login answer of {self.api_v1}/apitoken is not a token result",
                aspect="url",
            )
        result = TokenResult.from_api(data)
        if not result.access_token:
            if result.two_factor_required:
                raise AutomateMisconfigured(
                    f"user {self.settings.username!r} needs a second factor (MFA), so Automate "
                    "gave no token: use an Integrator user (System > Users and Contacts > "
                    "Users, tick Integrator)", aspect="credentials",
                )
            raise AutomateMisconfigured(
                f"Automate accepted user {self.settings.username!r} but gave an empty token",
                aspect="credentials",
            )
        now = self._clock.now()
        lifetime = (result.expires - now) if result.expires else TOKEN_MAX_LIFETIME
        lifetime = max(TOKEN_MIN_LIFETIME, min(lifetime, TOKEN_MAX_LIFETIME))
        margin = min(TOKEN_RENEW_BEFORE, lifetime / 2)
        self._token = result.access_token
        self._renew_at = now + lifetime - margin
        log.info("automate.logged_in", user=self.settings.username,
                 renew_at=self._renew_at.isoformat())
        return result

    async def _current_token(self) -> str:
        token, renew_at = self._token, self._renew_at
        if token is not None and renew_at is not None and self._clock.now() < renew_at:
            return token
        async with self._login_lock:
            token, renew_at = self._token, self._renew_at
            if token is None or renew_at is None or self._clock.now() >= renew_at:
                await self.login()
            assert self._token is not None
            return self._token

    def _forget_token(self, token: str) -> None:
        if self._token == token:
            self._token = None

    # -- requests -------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json_body: Any = None,
        authenticated: bool = True,
        what: str,
        retries: int | None = None,
        effectful: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One request with pacing, retries and one re-login; returns any non-retried answer.

        ``effectful``: the request changes something in Automate (a script launch),
        so it is never retried here, and losing its answer after it may have been
        sent raises AutomateAnswerLost instead of looking like an outage.
        """
        http = self._http
        if http is None:
            raise RuntimeError("AutomateClient used outside `async with`")
        limit = 0 if effectful else self.settings.retries if retries is None else retries
        route = _route_label(method, url, (self.api_v1, self.api_v2))
        attempt = 0
        relogged = False
        while True:
            sent_headers: dict[str, str] = dict(headers or {})
            token = None
            if authenticated:
                token = await self._current_token()
                sent_headers["Authorization"] = f"Bearer {token}"
            failure: AutomateError | None = None
            retry_after: float | None = None
            async with self._slots:
                await self._limiter.wait()
                self.requests += 1
                try:
                    response = await http.request(method, url, params=params, json=json_body,
                                                  headers=sent_headers)
                except httpx.HTTPError as error:
                    AUTOMATE_CALLS.labels(route, "error").inc()
                    if effectful and _may_have_been_sent(error):
                        raise AutomateAnswerLost(
                            f"{what}: sent to {self.settings.url}, but no answer came "
                            f"({type(error).__name__}: {error or 'no detail'}); Automate may "
                            "have acted on it", aspect="server",
                        ) from error
                    failure = self._map_transport_error(error, what)
                else:
                    AUTOMATE_CALLS.labels(route, str(response.status_code)).inc()
            if failure is None:
                status = response.status_code
                if status == 401 and token is not None:
                    if not relogged:
                        relogged = True
                        self._forget_token(token)
                        log.info("automate.token_refused", what=what)
                        continue
                    raise AutomateMisconfigured(
                        f"Automate answered 401 to {what} even with a fresh token: it does not "
                        "accept the ClientId header; check automate.client_id (register one at "
                        "developer.connectwise.com/ClientID)", aspect="client_id", status=401,
                    )
                if status != 429 and status < 500:
                    return response
                retry_after = self._retry_after(response) if status in (429, 503) else None
                failure = AutomateUnavailable(
                    f"Automate answered {status} to {what}"
                    + (" (too many requests)" if status == 429 else ""),
                    aspect="server", status=status, retry_after=retry_after,
                )
            if not isinstance(failure, AutomateUnavailable) or attempt >= limit:
                raise failure
            delay = self._backoff(attempt, retry_after)
            attempt += 1
            log.debug("automate.retrying", what=what, attempt=attempt, delay=round(delay, 3),
                      error=str(failure))
            await self._sleep(delay)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        cap = self.settings.retry_backoff_max.total_seconds()
        if retry_after is not None:
            return min(max(retry_after, 0.0), cap)
        base = self.settings.retry_backoff.total_seconds() * float(2 ** attempt)
        return min(cap, base) * (0.5 + self._jitter.random() / 2)

    def _retry_after(self, response: httpx.Response) -> float | None:
        value = response.headers.get("Retry-After", "").strip()
        if not value:
            return None
        if value.isdigit():
            return float(value)
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - self._clock.now()).total_seconds())

    def _map_transport_error(self, error: httpx.HTTPError, what: str) -> AutomateError:
        host = self.settings.url
        if isinstance(error, httpx.TimeoutException):
            return AutomateUnavailable(
                f"{what}: no answer from {host} within "
                f"{self.settings.timeout.total_seconds():g}s ({type(error).__name__})",
                aspect="url",
            )
        tls = _ssl_error(error)
        if tls is not None:
            detail = getattr(tls, "verify_message", None)
            if isinstance(tls, ssl.SSLCertVerificationError) and detail:
                reason = f"certificate verify failed: {detail}"
            else:
                reason = str(getattr(tls, "reason", None) or tls)
            return AutomateMisconfigured(
                f"TLS with {host} failed: {reason} (set automate.ca_file for a private CA)",
                aspect="tls",
            )
        if isinstance(error, httpx.ConnectError):
            return AutomateUnavailable(f"cannot connect to {host}: {error or 'refused'}",
                                       aspect="url")
        if isinstance(error, httpx.TransportError) and not isinstance(
            error, httpx.UnsupportedProtocol
        ):
            return AutomateUnavailable(f"{what}: connection to {host} failed: "
                                       f"{type(error).__name__}: {error}", aspect="url")
        return AutomateMisconfigured(f"{what}: cannot use {host}: {error}", aspect="url")

    def _raise_for_status(self, response: httpx.Response, what: str) -> None:
        status = response.status_code
        if status < 300:
            return
        if status < 400:
            where = response.headers.get("Location", "elsewhere")
            raise AutomateMisconfigured(
                f"{what}: {response.request.url} redirects to {where}: the URL points at a login "
                "page or a web front end, not the Automate API; check automate.url",
                aspect="url", status=status,
            )
        detail = _server_message(response)
        suffix = f": {detail}" if detail else ""
        if status == 403:
            raise AutomateRejected(
                f"Automate denied {what} (HTTP 403){suffix}: the user's class lacks the "
                "permission", aspect="permissions", status=status,
            )
        if status == 404:
            raise AutomateRejected(f"{what}: {response.request.url} was not found (HTTP 404)"
                                   f"{suffix}", aspect="url", status=status)
        raise AutomateRejected(f"Automate refused {what} (HTTP {status}){suffix}",
                               aspect="server", status=status)

    def _json(self, response: httpx.Response, what: str) -> Any:
        content_type = response.headers.get("Content-Type", "").lower()
        body = response.content
        if "json" in content_type or (not content_type and body[:1] in (b"[", b"{")):
            try:
                return json.loads(body)
            except ValueError:
                pass
        if _looks_like_html(body, content_type):
            match = _TITLE.search(body[:4096])
            title = match.group(1).decode("utf-8", "replace").strip() if match else ""
            named = f" (titled {title!r})" if title else ""
            raise AutomateMisconfigured(
                f"{what}: {response.request.url} answered with an HTML page{named} where JSON "
                "was expected: the URL points at a login page or a web front end, not the "
                "Automate API; check automate.url", aspect="url", status=response.status_code,
            )
        raise AutomateMisconfigured(
            f"{what}: {response.request.url} answered {content_type or 'no content type'} "
            "that is not JSON; check automate.url", aspect="url", status=response.status_code,
        )

    async def get_json(self, url: str, *, params: Mapping[str, str | int] | None = None,
                       what: str) -> Any:
        """GET ``url`` (absolute, under ``api_v1``/``api_v2``) and return its JSON."""
        response = await self._send("GET", url, params=params, what=what)
        self._raise_for_status(response, what)
        return self._json(response, what)

    async def pages(
        self,
        url: str,
        *,
        what: str,
        condition: str | None = None,
        order_by: str | None = None,
        exclude: tuple[str, ...] = (),
        page_size: int | None = None,
    ) -> AsyncIterator[list[Any]]:
        """Every page of a list route, from page 1 until a page shorter than ``page_size``."""
        size = min(page_size or self.settings.page_size, MAX_PAGE_SIZE)
        page = 1
        previous: Any = None
        while True:
            params: dict[str, str | int] = {"page": page, "pageSize": size}
            if condition:
                params["condition"] = condition
            if order_by:
                params["orderBy"] = order_by
            if exclude:
                params["excludeFields"] = ",".join(exclude)
            data = await self.get_json(url, params=params, what=f"{what} page {page}")
            if not isinstance(data, list):
                raise AutomateRejected(f"{what}: expected a list, got {type(data).__name__}",
                                       aspect="server")
            if data and previous is not None and data[0] == previous:
                raise AutomateRejected(f"{what}: the server ignores paging (page {page} "
                                       "repeats page 1)", aspect="server")
            if page == 1 and data:
                previous = data[0]
            yield data
            if len(data) < size:
                return
            page += 1

    async def _typed_pages(
        self, url: str, reader: Callable[[Json], T], *, what: str, condition: str | None = None,
        order_by: str | None = None, exclude: tuple[str, ...] = (),
    ) -> AsyncIterator[list[T | Bad]]:
        async for page in self.pages(url, what=what, condition=condition, order_by=order_by,
                                     exclude=exclude):
            yield read_all(page, reader)

    # -- typed calls ----------------------------------------------------------------

    async def probe(self) -> Probe:
        """GET `apitoken` without a token: is this an Automate API, and how is TLS?"""
        url = f"{self.api_v1}/apitoken"
        response = await self._send("GET", url, authenticated=False, what="connection test")
        if response.status_code not in (401, 403):
            self._raise_for_status(response, "connection test")
            self._json(response, "connection test")
        return Probe(api_url=self.api_v1, tls=_tls_description(response),
                     status=response.status_code)

    async def patch_information(self) -> PatchInfo:
        """`GET PatchInformation`: a side-effect-free authenticated call."""
        data = await self.get_json(f"{self.api_v1}/PatchInformation", what="PatchInformation")
        if not isinstance(data, Mapping):
            raise AutomateRejected("PatchInformation is not an object", aspect="server")
        return PatchInfo.from_api(data)

    def clients(self) -> AsyncIterator[list[ClientRecord | Bad]]:
        """Pages of clients."""
        return self._typed_pages(f"{self.api_v1}/Clients", ClientRecord.from_api,
                                 what="Clients", order_by="Id asc")

    def locations(self) -> AsyncIterator[list[Location | Bad]]:
        """Pages of locations (sites), each with its router's id."""
        return self._typed_pages(f"{self.api_v1}/Locations", Location.from_api,
                                 what="Locations", order_by="Id asc")

    def contacts(self) -> AsyncIterator[list[Contact | Bad]]:
        """Pages of contacts (users), from the v2 route."""
        return self._typed_pages(f"{self.api_v2}/Contacts", Contact.from_api,
                                 what="Contacts", order_by="ContactId asc")

    def computers(self, computer_type: str, fields: tuple[str, ...]
                  ) -> AsyncIterator[list[Computer | Bad]]:
        """Pages of computers of one `Type` (Server or Workstation), heavy arrays left out."""
        if computer_type not in ("Server", "Workstation"):
            raise ValueError(f"unknown computer type {computer_type!r}")
        return self._typed_pages(
            f"{self.api_v1}/Computers", Computer.reader(fields), what=f"{computer_type}s",
            condition=f"Type = '{computer_type}'", order_by="Id asc",
            exclude=COMPUTER_HEAVY_FIELDS,
        )

    async def printers(self, computer_id: str, fields: tuple[str, ...]) -> list[Printer | Bad]:
        """The printers of one computer (`/Computers/{id}/Printers`, one request each)."""
        if not computer_id.isdigit():
            raise ValueError(f"not a computer id: {computer_id!r}")
        out: list[Printer | Bad] = []
        async for page in self._typed_pages(
            f"{self.api_v1}/Computers/{computer_id}/Printers",
            Printer.reader(computer_id, fields), what=f"printers of computer {computer_id}",
        ):
            out.extend(page)
        return out

    def routers(self, fields: tuple[str, ...]) -> AsyncIterator[list[Router | Bad]]:
        """Pages of router configurations, credentials never read."""
        return self._typed_pages(f"{self.api_v1}/routers", Router.reader(fields),
                                 what="Routers", order_by="Id asc")

    def network_devices(self, fields: tuple[str, ...]
                        ) -> AsyncIterator[list[NetworkDevice | Bad]]:
        """Pages of discovered network devices."""
        return self._typed_pages(f"{self.api_v1}/NetworkDevices", NetworkDevice.reader(fields),
                                 what="NetworkDevices", order_by="Id asc")

    async def ticket_page(self, condition: str) -> list[AutomateTicket | Bad]:
        """The first page of tickets matching ``condition`` by TicketId: callers page by
        keyset (`TicketId > last`), which does not shift while tickets change."""
        data = await self.get_json(
            f"{self.api_v1}/Tickets",
            params={"page": 1, "pageSize": self.settings.page_size, "condition": condition,
                    "orderBy": "TicketId asc"},
            what="Tickets",
        )
        if not isinstance(data, list):
            raise AutomateRejected("Tickets: expected a list", aspect="server")
        return read_all(data, AutomateTicket.from_api)

    # -- scripts ------------------------------------------------------------------------

    async def scripts(self, name_like: str | None = None) -> list[Script | Bad]:
        """Scripts, optionally those whose name contains ``name_like`` (`GET Scripts`)."""
        condition = None
        if name_like:
            condition = f"Name like '%{_condition_text(name_like)}%'"
        out: list[Script | Bad] = []
        async for page in self._typed_pages(f"{self.api_v1}/Scripts", Script.from_api,
                                            what="Scripts", condition=condition,
                                            order_by="Id asc"):
            out.extend(page)
        return out

    async def run_script(self, launch: ScriptLaunch, *, reference: str) -> LaunchResult:
        """Launch a script now (`POST Batch/ScriptExecute`), exactly once.

        Never retried here: 429/5xx/connection failures raise AutomateUnavailable
        (nothing was launched, ``retry_after`` set when the server asked for a
        wait), a refusal raises AutomateRejected, and a lost answer raises
        AutomateAnswerLost. ``reference`` travels as `X-Alertd-Reference`, so
        proxies' and Automate's logs can tie the launch to its outbox entry.
        """
        what = f"launch of script {launch.script_id} on {launch.entity_type} {launch.entity_id}"
        response = await self._send(
            "POST", f"{self.api_v1}/Batch/ScriptExecute", json_body=launch.body(self._clock.now()),
            what=what, effectful=True, headers={"X-Alertd-Reference": reference},
        )
        self._raise_for_status(response, what)
        try:
            return LaunchResult.from_api(self._json(response, what))
        except RecordInvalid as error:
            raise AutomateRejected(f"{what}: {error}", aspect="server") from error

    async def script_history(
        self, computer_id: int, *, script_id: int | None = None, after_id: int = 0,
    ) -> list[HistoryEntry | Bad]:
        """Script runs on a computer after history row ``after_id``, oldest first."""
        terms = [f"Id > {int(after_id)}"]
        if script_id is not None:
            terms.append(f"ScriptId = {int(script_id)}")
        out: list[HistoryEntry | Bad] = []
        async for page in self._typed_pages(
            f"{self.api_v1}/Computers/{int(computer_id)}/ScriptHistory", HistoryEntry.from_api,
            what=f"script history of computer {computer_id}", condition=" and ".join(terms),
            order_by="Id asc",
        ):
            out.extend(page)
        return out

    async def latest_history_id(self, computer_id: int) -> int:
        """The id of the newest script history row of a computer (0 when it has none)."""
        data = await self.get_json(
            f"{self.api_v1}/Computers/{int(computer_id)}/ScriptHistory",
            params={"page": 1, "pageSize": 1, "orderBy": "Id desc"},
            what=f"script history of computer {computer_id}",
        )
        if not isinstance(data, list):
            raise AutomateRejected("ScriptHistory: expected a list", aspect="server")
        if not data or not isinstance(data[0], Mapping):
            return 0
        return int(parse_id(data[0].get("Id")))


def _condition_text(value: str) -> str:
    """A value for a quoted condition literal: quotes doubled, wildcards kept literal."""
    return value.replace("'", "''")


def _may_have_been_sent(error: httpx.HTTPError) -> bool:
    """Whether the server may have received the request: anything but a failure to connect."""
    return not isinstance(error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
                          | httpx.UnsupportedProtocol)


def _route_label(method: str, url: str, bases: tuple[str, ...]) -> str:
    """`POST Batch/ScriptExecute`, `GET Computers/{id}/Printers`: a bounded metric label."""
    path = url
    for base in bases:
        if url.startswith(base):
            path = ("v2/" if base.endswith("v2") else "") + url[len(base):].lstrip("/")
            break
    parts = ["{id}" if part.isdigit() else part for part in path.split("?", 1)[0].split("/")]
    return f"{method} {'/'.join(parts)}"


def _ssl_error(error: BaseException) -> ssl.SSLError | None:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    text = str(error)
    if "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in text:
        return ssl.SSLError(text)
    return None


def _looks_like_html(body: bytes, content_type: str) -> bool:
    head = body[:512].lstrip().lower()
    return "html" in content_type or head.startswith((b"<!doctype html", b"<html"))


def _server_message(response: httpx.Response) -> str:
    try:
        data = json.loads(response.content)
    except ValueError:
        return ""
    if isinstance(data, Mapping):
        for key in ("Message", "message", "error", "Error"):
            if isinstance(data.get(key), str):
                return str(data[key])[:200]
    return ""


def _tls_description(response: httpx.Response) -> str:
    if response.request.url.scheme != "https":
        return "not used (plain http to a loopback address)"
    stream = response.extensions.get("network_stream")
    version = None
    if stream is not None:
        ssl_object = stream.get_extra_info("ssl_object")
        if ssl_object is not None:
            version = ssl_object.version()
    return f"{version or 'TLS'}, certificate verified for {response.request.url.host}"
