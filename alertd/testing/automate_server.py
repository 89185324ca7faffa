"""A local ConnectWise Automate API, for tests, benchmarks and demos (`automate-api.md`).

It serves, under `/cwa/api/v1` (and `/cwa/api/v2/Contacts`), the routes
alertd uses, with records that validate against the published OpenAPI
subset: clients, locations, contacts, computers, printers, routers, network
devices, tickets (`Tickets`, `Tickets/{id}`), scripts (`Scripts`), script
history (`Computers/{id}/ScriptHistory`) and script launches
(`POST Batch/ScriptExecute`, see `automate_scripts`). It behaves as the
facts page says a real server does:

- `POST apitoken` checks the user and password (keys matched without case),
  answers an MFA user with 200, an empty `AccessToken` and
  `IsTwoFactorRequired: true`, and gives other users a bearer token with an
  `ExpirationDate`;
- every other call needs `Authorization: Bearer <token>` and a registered
  `ClientId` header, else 401; a user class lacking a permission gets 403;
- resource names match without case; lists are bare JSON arrays paged with
  `page`/`pageSize` (1..1000, 400 otherwise; a deliberately small default
  when `pageSize` is absent, since the real default is unknown), filtered by
  `condition` (see `automate_conditions`), ordered by `orderBy`, projected by
  `includeFields`/`excludeFields`;
- a launch answers per entity (`ContainsUnsuccessfulResults` for an unknown
  or refused script or entity), writes a script history row on the computer
  concerned, and, for the Ticket Finish scripts, finishes the ticket;
- switchable faults (`Faults`): 500s, 429s with `Retry-After`, slow
  answers, tokens that expire mid-run, an HTML login page instead of JSON,
  and launches whose answer is lost after they took effect.

Each exchange can be recorded (`AutomateApp.exchanges`) so tests can check
every request body and record against the OpenAPI subset; every launch
request is kept in `AutomateApp.launches` with its `X-Alertd-Reference`
header, so tests can prove no reference was launched twice.

Run it by hand for a demo::

    python -m alertd.testing.automate_server --port 8043 --computers 200 --printers 40 \
        --tickets 30

It prints the `automate:` settings to point alertd at it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response

from alertd.testing.automate_conditions import (
    ConditionError,
    compile_condition,
    lookup,
    parse_stamp,
)
from alertd.testing.automate_data import (
    SCRIPT_FIELDS,
    SCRIPT_HISTORY_FIELDS,
    TICKET_FIELDS,
    TICKET_FINISH_ID,
    TICKET_FINISH_WITH_COMMENT_ID,
    AutomateData,
    Record,
    contact_v1,
    format_stamp,
    generate,
)
from alertd.testing.automate_scripts import (
    BadLaunch,
    Launch,
    Running,
    ScriptPolicy,
    edit_ticket,
    parse_launch,
    run_launch,
    settle,
)

__all__ = [
    "DEFAULT_CLIENT_ID", "DEFAULT_PAGE_SIZE", "LOGIN_PAGE", "MAX_PAGE_SIZE", "REFERENCE_HEADER",
    "AutomateApp", "AutomateUser", "Exchange", "Faults", "Launch", "RunningServer", "main",
    "serve",
]

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 25
DEFAULT_CLIENT_ID = "6a1e3f62-3b7d-4c1e-9f0a-0d5c2b7e8a41"
LOGIN_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>ConnectWise Automate - Sign In</title></head>"
    b"<body><form method='post' action='/automate/login'><input name='username'>"
    b"<input name='password' type='password'></form></body></html>"
)

SCHEMA = "#/components/schemas/"
REFERENCE_HEADER = "X-Alertd-Reference"
"""The request header carrying the client's idempotency reference for a launch."""


@dataclass
class AutomateUser:
    """A user the server knows; ``denied`` lists resources its class may not read."""

    username: str
    password: str
    mfa: bool = False
    denied: frozenset[str] = frozenset()


@dataclass
class Faults:
    """Misbehaviour to switch on; counters apply to authenticated API calls only."""

    fail_next: int = 0
    """The next N calls answer 500."""
    fail_every: int = 0
    """Every Nth call answers 500 (0: never)."""
    throttle_next: int = 0
    """The next N calls answer 429 with Retry-After."""
    throttle_every: int = 0
    """Every Nth call answers 429 (0: never)."""
    retry_after: str = "1"
    """The Retry-After value sent with 429s (seconds or an HTTP date)."""
    slow_next: int = 0
    """The next N calls wait ``slow_seconds`` before answering."""
    slow_seconds: float = 0.0
    expire_tokens_after: int | None = None
    """After this many more calls, every token issued so far has expired."""
    html: bool = False
    """Every route, login included, answers 200 with an HTML sign-in page."""
    redirect_to: str | None = None
    """Every route, login included, answers 302 to this address (a sign-in page)."""
    only_path: str | None = None
    """Apply the counted faults only to paths containing this text (lower case)."""
    lose_answer_next: int = 0
    """The next N accepted launches take full effect, then their answer is held back."""
    lose_answer_seconds: float = 30.0
    """How long a lost answer is held (a client with a shorter timeout gives up)."""


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and its answer, for contract checks."""

    method: str
    path: str
    query: dict[str, str]
    request_body: Any
    status: int
    response_body: Any


@dataclass
class _Token:
    user: AutomateUser
    expires: float


Handler = Callable[[Request, "AutomateUser", dict[str, str], Any], Any]


@dataclass
class AutomateApp:
    """The server's state and its ASGI application (``app``)."""

    data: AutomateData
    users: list[AutomateUser] = field(
        default_factory=lambda: [AutomateUser("alertd-integrator", "demo-password")]
    )
    client_ids: frozenset[str] = frozenset({DEFAULT_CLIENT_ID})
    token_lifetime: float = 3600.0
    record: bool = True
    default_page_size: int = DEFAULT_PAGE_SIZE
    faults: Faults = field(default_factory=Faults)
    now: Callable[[], float] = time.time
    exchanges: list[Exchange] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    """Requests per route key (`POST apitoken`, `GET computers/printers`…)."""
    logins: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    """The most requests this server was answering at once."""
    launches: list[Launch] = field(default_factory=list)
    """Every `Batch/ScriptExecute` request, answered or not (`reset()` keeps them)."""
    refused_script_ids: set[int] = field(default_factory=set)
    """Scripts the API user may not run: every entity of their launches is refused."""
    script_states: dict[int, str] = field(default_factory=dict)
    """The `State` a script's runs end in (default `Success`); `Failure` finishes nothing."""
    history_delay: float = 0.0
    """Seconds of server time a new script history row shows `Running`."""
    finish_script_ids: set[int] = field(
        default_factory=lambda: {TICKET_FINISH_ID, TICKET_FINISH_WITH_COMMENT_ID})
    """Scripts that finish tickets (the Ticket Finish scripts of §6.8)."""
    finished_status: dict[str, Any] = field(
        default_factory=lambda: {"Id": 4, "Name": "Resolved"})
    """The ticket `Status` a Ticket Finish script sets (the real one is unknown, §3.7)."""
    _running: list[Running] = field(default_factory=list)
    _stopping: asyncio.Event | None = None
    _tokens: dict[str, _Token] = field(default_factory=dict)
    _counted: int = 0
    _cache: dict[tuple[Any, ...], list[Record]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
        self.app.add_api_route("/cwa/api/{version}/{rest:path}", self._dispatch,
                               methods=["GET", "POST", "PUT", "PATCH", "DELETE"])

    # -- controls -------------------------------------------------------------------

    def expire_tokens(self) -> None:
        """Every token issued so far expires now (as after an hour in real life)."""
        for token in self._tokens.values():
            token.expires = 0.0

    def reset(self) -> None:
        """Forget recorded exchanges and counters."""
        self.exchanges.clear()
        self.calls.clear()
        self.logins = 0
        self.max_in_flight = 0

    @property
    def tokens(self) -> list[str]:
        """Every token issued so far (to check that none reaches a log)."""
        return list(self._tokens)

    def launches_for(self, reference: str) -> list[Launch]:
        """The launch requests that carried this idempotency reference."""
        return [launch for launch in self.launches if launch.reference == reference]

    def is_finished(self, ticket_id: int) -> bool:
        """Whether the ticket has the finished status (KeyError when absent)."""
        status = self.data.ticket(ticket_id).get("Status") or {}
        return bool(status.get("Id") == self.finished_status.get("Id"))

    def update_ticket(self, ticket_id: int, *, comment: str | None = None,
                      status: tuple[int, str] | None = None, subject: str | None = None
                      ) -> Record:
        """Change a ticket as a technician or a monitor would; UpdateDate becomes now."""
        return edit_ticket(self.data, ticket_id, when=format_stamp(self.now()),
                           comment=comment, status=status, subject=subject)

    def script_history(self, computer_id: int | str) -> list[Record]:
        """A computer's script history rows as the route would show them now."""
        self._settle()
        return list(self.data.script_history.get(str(computer_id), []))

    def _settle(self) -> None:
        if self._running:
            self._running = settle(self.data, self._running, self.now())

    async def _hold(self, seconds: float) -> None:
        """Sit on a lost answer, but not past the end of `serve()` (so it stops promptly)."""
        if self._stopping is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    # -- dispatch -------------------------------------------------------------------

    async def _dispatch(self, request: Request, version: str, rest: str) -> Response:
        body: Any = None
        raw = await request.body()
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        query = dict(request.query_params.items())
        at = self.now()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            status, payload, headers = await self._answer(request, version.lower(), rest, body,
                                                          query)
        finally:
            self.in_flight -= 1
        if _is_launch(request.method, version, rest):
            lost = bool(getattr(request.state, "lose_answer", False))
            self.launches.append(Launch(body=body, reference=request.headers.get(
                REFERENCE_HEADER), status=status, answered=not lost, at=at))
            if lost:
                await self._hold(self.faults.lose_answer_seconds)
        if isinstance(payload, bytes):
            content, media = payload, "text/html; charset=utf-8"
        else:
            content, media = json.dumps(payload).encode(), "application/json; charset=utf-8"
        if self.record:
            self.exchanges.append(Exchange(
                request.method, f"/cwa/api/{version}/{rest}", query, body, status,
                payload if not isinstance(payload, bytes) else None,
            ))
        return Response(content=content, status_code=status, media_type=media, headers=headers)

    async def _answer(self, request: Request, version: str, rest: str, body: Any,
                      query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        parts = [part.lower() for part in rest.strip("/").split("/") if part]
        method = request.method
        key = f"{method} {'/'.join(p if not p.isdigit() else '{id}' for p in parts)}"
        self.calls[key] += 1
        if self.faults.html:
            return 200, LOGIN_PAGE, {}
        if self.faults.redirect_to is not None:
            return 302, LOGIN_PAGE, {"Location": self.faults.redirect_to}
        if version == "v1" and parts == ["apitoken"]:
            if method == "POST":
                return self._login(body)
            if method == "GET":
                return 200, {"AllowDirect": True, "AllowServiceRegistration": False,
                             "AutomateRedirectUri": "", "Services": []}, {}
        if version == "v1" and parts == ["apitoken", "refresh"] and method == "POST":
            return self._refresh(request, body)
        user, problem = self._authorise(request)
        if problem is not None:
            return problem
        assert user is not None
        fault = await self._fault(rest.lower())
        if fault is not None:
            return fault
        self._settle()
        route = self._route(version, parts, method)
        if route is None:
            return 404, {"Message": "No HTTP resource was found that matches the request URI "
                                    f"'{request.url}'."}, {}
        resource, handler = route
        if resource in user.denied:
            verb = "read" if method == "GET" else "use"
            return 403, {"Message": f"User does not have permission to {verb} {resource}."}, {}
        try:
            return 200, handler(request, user, query, body), {}
        except _Refused as refused:
            return refused.status, {"Message": refused.message}, {}

    def _login(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        self.logins += 1
        if not isinstance(body, dict):
            return 400, {"Message": "The request is invalid."}, {}
        fields = {str(k).lower(): v for k, v in body.items()}
        user = next((u for u in self.users if u.username == fields.get("username")), None)
        if user is None or not secrets.compare_digest(
            str(fields.get("password", "")).encode(), user.password.encode()
        ):
            return 401, {"Message": "Invalid username or password."}, {}
        if user.mfa and not fields.get("twofactorpasscode"):
            return 200, {"AccessToken": "", "TokenType": "", "IsTwoFactorRequired": True,
                         "IsInternalTwoFactorRequired": True, "UserId": "0"}, {}
        return 200, self._issue(user), {}

    def _issue(self, user: AutomateUser) -> dict[str, Any]:
        token = secrets.token_urlsafe(24)
        expires = self.now() + self.token_lifetime
        self._tokens[token] = _Token(user, expires)
        stamp = datetime.fromtimestamp(expires, UTC).replace(tzinfo=None)
        return {
            "AccessToken": token, "TokenType": "Bearer",
            "ExpirationDate": stamp.isoformat(timespec="microseconds") + "0",
            "AbsoluteExpirationDate": (stamp + timedelta(hours=8)).isoformat(),
            "UserId": str(self.users.index(user) + 1), "InternalUserName": user.username,
            "IsTwoFactorRequired": False, "IsInternalTwoFactorRequired": False,
        }

    def _refresh(self, request: Request, body: Any) -> tuple[int, Any, dict[str, str]]:
        current = self._tokens.get(str(body)) if isinstance(body, str) else None
        if current is None or current.expires <= self.now():
            return 401, {"Message": "Authorization has been denied for this request."}, {}
        return 200, self._issue(current.user), {}

    def _authorise(self, request: Request
                   ) -> tuple[AutomateUser | None, tuple[int, Any, dict[str, str]] | None]:
        denied: tuple[int, Any, dict[str, str]] = (
            401, {"Message": "Authorization has been denied for this request."}, {})
        if request.headers.get("clientid", "") not in self.client_ids:
            return None, denied
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        token = self._tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        if token is None or token.expires <= self.now():
            return None, denied
        return token.user, None

    async def _fault(self, path: str) -> tuple[int, Any, dict[str, str]] | None:
        faults = self.faults
        if faults.only_path is not None and faults.only_path not in path:
            return None
        self._counted += 1
        if faults.expire_tokens_after is not None:
            faults.expire_tokens_after -= 1
            if faults.expire_tokens_after <= 0:
                faults.expire_tokens_after = None
                self.expire_tokens()
        if faults.slow_next > 0:
            faults.slow_next -= 1
            await asyncio.sleep(faults.slow_seconds)
        if faults.fail_next > 0 or (faults.fail_every and self._counted % faults.fail_every == 0):
            faults.fail_next = max(0, faults.fail_next - 1)
            return 500, {"Message": "An error has occurred."}, {}
        if faults.throttle_next > 0 or (
            faults.throttle_every and self._counted % faults.throttle_every == 0
        ):
            faults.throttle_next = max(0, faults.throttle_next - 1)
            return 429, {"Message": "Too many requests."}, {"Retry-After": faults.retry_after}
        return None

    # -- routes ---------------------------------------------------------------------

    def _route(self, version: str, parts: list[str], method: str
               ) -> tuple[str, Handler] | None:
        if method == "POST" and version == "v1" and parts == ["batch", "scriptexecute"]:
            return "batch", self._launch
        if method != "GET":
            return None
        data = self.data
        if version == "v2":
            if parts == ["contacts"]:
                return "contacts", self._lister("contacts", lambda: data.contacts, "ContactId")
            return None
        if len(parts) == 1:
            name = parts[0]
            lists: dict[str, tuple[Callable[[], list[Record]], str]] = {
                "clients": (lambda: data.clients, "Id"),
                "locations": (lambda: data.locations, "Id"),
                "contacts": (lambda: [contact_v1(c) for c in data.contacts], "Id"),
                "computers": (lambda: data.computers, "Id"),
                "routers": (lambda: data.routers, "Id"),
                "networkdevices": (lambda: data.network_devices, "Id"),
                "tickets": (lambda: data.tickets, "TicketId"),
                "scripts": (lambda: data.scripts, "Id"),
            }
            fields = {"tickets": TICKET_FIELDS, "scripts": SCRIPT_FIELDS}
            if name == "patchinformation":
                return "system", lambda *_: {
                    "WebServerPatchVersion": "2025.5.0.5", "DBAgentServerPatchVersion": "2025.5",
                    "ControlCenterPatchVersion": "2025.5", "RemoteAgentPatchVersion": "2025.5",
                    "LastPatchedDate": "2025-05-30T02:00:00",
                }
            if name in lists:
                source, id_key = lists[name]
                return name, self._lister(name, source, id_key,
                                          fields.get(name, frozenset()))
            return None
        if len(parts) == 2 and parts[0] == "clients" and parts[1].isdigit():
            wanted = parts[1]
            return "clients", lambda *_: self._one(data.clients, wanted)
        if len(parts) == 2 and parts[0] == "tickets" and parts[1].isdigit():
            return "tickets", self._ticket(int(parts[1]))
        if len(parts) == 3 and parts[0] == "computers" and parts[2] == "scripthistory":
            if not parts[1].isdigit():
                return None
            return "computers", self._history(str(int(parts[1])))
        if len(parts) == 3 and parts[0] == "computers" and parts[2] == "printers":
            owner = parts[1]
            if not owner.isdigit():
                return None
            return "computers", self._lister(
                f"printers:{owner}", lambda: data.printers.get(str(int(owner)), []), "Id")
        return None

    def _one(self, records: list[Record], wanted: str) -> Record:
        for record in records:
            if str(record.get("Id")) == wanted:
                return record
        raise _Refused(404, f"No record with id {wanted}.")

    def _ticket(self, ticket_id: int) -> Handler:
        def handle(_request: Request, _user: AutomateUser, query: dict[str, str], _body: Any
                   ) -> Record:
            try:
                record = self.data.ticket(ticket_id)
            except KeyError:
                raise _Refused(404, f"Ticket {ticket_id} was not found.") from None
            return _Options.parse(query, self.default_page_size).project(record)

        return handle

    def _history(self, computer_id: str) -> Handler:
        lister = self._lister(f"history:{computer_id}",
                              lambda: self.data.script_history.get(computer_id, []), "Id",
                              SCRIPT_HISTORY_FIELDS)

        def handle(request: Request, user: AutomateUser, query: dict[str, str], body: Any
                   ) -> Any:
            try:
                self.data.computer(computer_id)
            except KeyError:
                raise _Refused(404, f"Computer {computer_id} was not found.") from None
            return lister(request, user, query, body)

        return handle

    def _launch(self, request: Request, user: AutomateUser, _query: dict[str, str], body: Any
                ) -> Record:
        """Run a launch; an accepted one may be marked to have its answer lost."""
        try:
            launch = parse_launch(body)
        except BadLaunch as problem:
            raise _Refused(400, str(problem)) from None
        policy = ScriptPolicy(
            user=user.username, at=self.now(),
            refused_script_ids=frozenset(self.refused_script_ids),
            script_states=dict(self.script_states),
            finish_script_ids=frozenset(self.finish_script_ids),
            finished_status=dict(self.finished_status), history_delay=self.history_delay)
        answer, running = run_launch(self.data, launch, policy)
        self._running.extend(running)
        if self.faults.lose_answer_next > 0:
            self.faults.lose_answer_next -= 1
            request.state.lose_answer = True
        return answer

    def _lister(self, name: str, source: Callable[[], list[Record]], id_key: str,
                fields: frozenset[str] = frozenset()) -> Handler:
        def handle(_request: Request, _user: AutomateUser, query: dict[str, str], _body: Any
                   ) -> list[Record]:
            options = _Options.parse(query, self.default_page_size)
            cache_key = (name, self.data.version, options.condition, options.order_by,
                         options.ids)
            rows = self._cache.get(cache_key)
            if rows is None:
                rows = self._select(source(), options, id_key, fields)
                if len(self._cache) > 256:
                    self._cache.clear()
                self._cache[cache_key] = rows
            start = (options.page - 1) * options.page_size
            return [options.project(row) for row in rows[start:start + options.page_size]]

        return handle

    def _select(self, records: list[Record], options: _Options, id_key: str,
                fields: frozenset[str] = frozenset()) -> list[Record]:
        rows = records
        if options.condition:
            known = {key for record in records[:50] for key in record} | {id_key} | fields
            try:
                predicate = compile_condition(options.condition, known)
            except ConditionError as error:
                raise _Refused(400, str(error)) from error
            rows = [row for row in rows if predicate(row)]
        if options.ids:
            wanted = {value.strip() for value in options.ids.split(",")}
            rows = [row for row in rows if str(row.get(id_key)) in wanted]
        field_name, descending = options.ordering(id_key)
        return sorted(rows, key=lambda row: _sort_key(lookup(row, field_name.split("."))),
                      reverse=descending)


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class _Options:
    page: int
    page_size: int
    condition: str | None
    order_by: str | None
    ids: str | None
    include: frozenset[str]
    exclude: frozenset[str]

    @classmethod
    def parse(cls, query: dict[str, str], default_page_size: int) -> _Options:
        lowered = {key.lower().removeprefix("options."): value for key, value in query.items()}

        def number(name: str, default: int) -> int:
            raw = lowered.get(name.lower())
            if raw is None:
                return default
            try:
                return int(raw)
            except ValueError:
                raise _Refused(400, f"{name} must be a number") from None

        page = number("page", 1)
        page_size = number("pageSize", default_page_size)
        if page < 1:
            raise _Refused(400, "page must be 1 or more")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise _Refused(400, f"pageSize must be between 1 and {MAX_PAGE_SIZE}")

        def names(*keys: str) -> frozenset[str]:
            for key in keys:
                if key in lowered:
                    return frozenset(n.strip() for n in lowered[key].split(",") if n.strip())
            return frozenset()

        return cls(
            page=page, page_size=page_size, condition=lowered.get("condition") or None,
            order_by=lowered.get("orderby") or None, ids=lowered.get("ids") or None,
            include=names("includefields", "includedfields"),
            exclude=names("excludefields", "excludedfields"),
        )

    def ordering(self, id_key: str) -> tuple[str, bool]:
        if not self.order_by:
            return id_key, False
        field_name, _, direction = self.order_by.strip().partition(" ")
        if direction.strip().lower() not in {"", "asc", "desc"}:
            raise _Refused(400, f"orderBy direction must be asc or desc: {self.order_by!r}")
        return field_name, direction.strip().lower() == "desc"

    def project(self, row: Record) -> Record:
        if not self.include and not self.exclude:
            return row
        return {key: value for key, value in row.items()
                if (not self.include or key in self.include) and key not in self.exclude}


def _is_launch(method: str, version: str, rest: str) -> bool:
    return (method == "POST" and version.lower() == "v1"
            and rest.strip("/").lower() == "batch/scriptexecute")


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool) or value is None:
        return (0, str(value))
    if isinstance(value, int | float):
        return (1, float(value))
    text = str(value)
    if text.isdigit():
        return (1, float(text))
    moment = parse_stamp(text) if text[:1].isdigit() else None
    if moment is not None:
        return (2, moment.isoformat(timespec="microseconds"))
    return (2, text.lower())


class _QuietServer(uvicorn.Server):
    """uvicorn with its own signal handling off: the caller owns the process's signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class RunningServer:
    """A server started by `serve()`: its URL and its state."""

    url: str
    state: AutomateApp


@asynccontextmanager
async def serve(state: AutomateApp, *, host: str = "127.0.0.1", port: int = 0,
                ssl_certfile: str | None = None, ssl_keyfile: str | None = None
                ) -> AsyncIterator[RunningServer]:
    """Serve ``state`` over real HTTP on loopback inside the running loop, until the block ends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        state.app, lifespan="off", log_level="warning", access_log=False, http="h11",
        ws="none", ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile,
        timeout_graceful_shutdown=1,
    )
    server = _QuietServer(config)
    state._stopping = asyncio.Event()
    task = asyncio.create_task(server.serve(sockets=[sock]), name="automate-server")
    try:
        while not server.started:
            if task.done():
                await task
                raise RuntimeError("the local Automate server did not start")
            await asyncio.sleep(0.005)
        scheme = "https" if ssl_certfile else "http"
        shown = "localhost" if ssl_certfile else host
        yield RunningServer(url=f"{scheme}://{shown}:{bound_port}", state=state)
    finally:
        state._stopping.set()
        server.should_exit = True
        await task
        sock.close()
        state._stopping = None


def main(argv: list[str] | None = None) -> None:
    """Run a local Automate by hand (signals handled by uvicorn: Ctrl-C stops it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8043)
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--user", default="alertd-integrator")
    parser.add_argument("--password", default="demo-password",
                        help="the demo user's password (this is a test server)")
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--locations-per-client", type=int, default=2)
    parser.add_argument("--computers", type=int, default=20)
    parser.add_argument("--printers", type=int, default=5)
    parser.add_argument("--network-devices", type=int, default=0)
    parser.add_argument("--tickets", type=int, default=0,
                        help="open tickets to put on the computers")
    parser.add_argument("--token-lifetime", type=float, default=3600.0)
    parser.add_argument("--fail-every", type=int, default=0)
    parser.add_argument("--throttle-every", type=int, default=0)
    parser.add_argument("--retry-after", default="1")
    parser.add_argument("--html", action="store_true", help="answer with a sign-in page")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    data = generate(clients=args.clients, locations_per_client=args.locations_per_client,
                    computers=args.computers, printers=args.printers,
                    network_devices=args.network_devices, tickets=args.tickets)
    state = AutomateApp(
        data=data, users=[AutomateUser(args.user, args.password)],
        client_ids=frozenset({args.client_id}), token_lifetime=args.token_lifetime,
        record=False,
        faults=Faults(fail_every=args.fail_every, throttle_every=args.throttle_every,
                      retry_after=args.retry_after, html=args.html),
    )
    scheme = "https" if args.tls_cert else "http"
    if not args.quiet:
        sys.stdout.write(
            f"local Automate: {len(data.clients)} clients, {len(data.locations)} locations, "
            f"{len(data.contacts)} contacts, {len(data.computers)} computers, "
            f"{data.printer_count} printers, {len(data.routers)} routers, "
            f"{len(data.tickets)} tickets, {len(data.scripts)} scripts\n"
            "alertd.yaml:\n"
            "  automate:\n"
            f"    url: {scheme}://{args.host}:{args.port}\n"
            f"    client_id: {args.client_id}\n"
            f"    username: {args.user}\n"
            "    password_env: AUTOMATE_PASSWORD   # export AUTOMATE_PASSWORD=<the --password>\n"
        )
        sys.stdout.flush()
    uvicorn.run(state.app, host=args.host, port=args.port, log_level="warning",
                access_log=False, http="h11", ws="none", lifespan="off",
                ssl_certfile=args.tls_cert, ssl_keyfile=args.tls_key)


if __name__ == "__main__":
    main()
