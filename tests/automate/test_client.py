"""The Automate client against the local Automate over real HTTP (R5.1, R5.4).

Login and token handling, the ClientId header, paging, retries with
Retry-After, limits, and plain configuration errors. The last tests use
httpx.MockTransport, narrowly, for transport failures the local server
cannot produce on demand (a TLS verification failure, a dropped connection).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import structlog

from alertd.automate.client import AutomateClient, RateLimiter
from alertd.automate.models import Bad, Computer, parse_datetime, parse_id, read_all
from alertd.clock import FixedClock, SystemClock
from alertd.errors import (
    AutomateMisconfigured,
    AutomateRejected,
    AutomateUnavailable,
    ConfigError,
    PermanentError,
    TransientError,
)
from alertd.settings import AutomateSettings
from alertd.testing.automate_server import AutomateApp, RunningServer
from tests.automate.conftest import ENVIRON, PASSWORD, Sleeps, automate_section
from tests.automate.contract import check_all

MakeSettings = Callable[..., AutomateSettings]
MakeClient = Callable[[AutomateSettings], AutomateClient]


async def test_one_login_serves_many_calls_and_every_call_carries_the_client_id(
    make_automate: MakeSettings, client_for: MakeClient, automate_state: AutomateApp,
) -> None:
    """The token is cached; the server, which demands ClientId and Bearer, accepts every call."""
    async with client_for(make_automate()) as client:
        patch = await client.patch_information()
        pages = [page async for page in client.clients()]
        await client.printers("1187", ("Name",))
    assert patch.web_server == "2025.5.0.5"
    assert [len(page) for page in pages] == [2]
    assert automate_state.logins == 1
    assert {e.status for e in automate_state.exchanges} == {200}
    assert check_all(automate_state.exchanges) == 4


async def test_the_token_is_renewed_before_its_expiration_date(
    make_automate: MakeSettings, automate: RunningServer, automate_state: AutomateApp,
    sleeps: Sleeps,
) -> None:
    """A login a little before ExpirationDate, not a 401 after it."""
    automate_state.token_lifetime = 600
    clock = FixedClock(SystemClock().now())
    async with AutomateClient(make_automate(), clock=clock, sleep=sleeps,
                              environ=ENVIRON) as client:
        await client.patch_information()
        clock.set(clock.now() + timedelta(minutes=7))
        await client.patch_information()
        assert automate_state.logins == 1
        clock.set(clock.now() + timedelta(minutes=1, seconds=1))
        await client.patch_information()
    assert automate_state.logins == 2
    assert [e.status for e in automate_state.exchanges if "apitoken" not in e.path] == [200] * 3


async def test_a_refused_token_gets_one_fresh_login(
    make_automate: MakeSettings, client_for: MakeClient, automate_state: AutomateApp,
) -> None:
    """Tokens expired early on the server: one 401, one new login, and the call succeeds."""
    async with client_for(make_automate()) as client:
        await client.patch_information()
        automate_state.expire_tokens()
        await client.patch_information()
    assert automate_state.logins == 2
    assert [e.status for e in automate_state.exchanges] == [200, 200, 401, 200, 200]


async def test_a_wrong_password_is_a_plain_configuration_error(
    make_automate: MakeSettings, automate: RunningServer,
) -> None:
    """No retry loop: the login is refused and says which setting to look at."""
    settings = make_automate()
    async with AutomateClient(settings, environ={"ALERTD_TEST_AUTOMATE_PASSWORD": "wrong"}
                              ) as client:
        with pytest.raises(AutomateMisconfigured) as caught:
            await client.patch_information()
    assert isinstance(caught.value, ConfigError)
    assert caught.value.aspect == "credentials"
    assert str(caught.value) == (
        "Automate refused the login of user 'alertd-integrator' (HTTP 401): check "
        "automate.username and the password")


async def test_an_mfa_user_gets_no_token_and_is_told_to_use_an_integrator(
    make_automate: MakeSettings, client_for: MakeClient,
) -> None:
    """HTTP 200 with an empty AccessToken is not a success."""
    async with client_for(make_automate(username="mfa-user")) as client:
        with pytest.raises(AutomateMisconfigured, match="needs a second factor") as caught:
            await client.login()
    assert "Integrator" in str(caught.value)
    assert caught.value.aspect == "credentials"


async def test_an_html_page_where_json_was_expected_is_a_configuration_error(
    make_automate: MakeSettings, client_for: MakeClient, automate_state: AutomateApp,
) -> None:
    """A login page or WAF in front of the API answers 200 with HTML: said plainly, not parsed."""
    automate_state.faults.html = True
    async with client_for(make_automate()) as client:
        with pytest.raises(AutomateMisconfigured) as caught:
            await client.patch_information()
    assert caught.value.aspect == "url"
    assert "answered with an HTML page (titled 'ConnectWise Automate - Sign In') where JSON " \
           "was expected" in str(caught.value)


async def test_a_client_id_automate_does_not_accept_is_named(
    make_automate: MakeSettings, client_for: MakeClient, automate_state: AutomateApp,
) -> None:
    """Data calls answer 401 even with a fresh token: that is the ClientId, not the password."""
    async with client_for(make_automate(client_id="not-registered")) as client:
        with pytest.raises(AutomateMisconfigured, match="ClientId") as caught:
            await client.patch_information()
    assert caught.value.aspect == "client_id"
    assert automate_state.logins == 2


async def test_paging_asks_for_page_sizes_and_stops_at_a_short_page(
    make_automate: MakeSettings, client_for: MakeClient, automate_state: AutomateApp,
) -> None:
    """Three workstations in pages of two: page 1 full, page 2 short, no page 3."""
    async with client_for(make_automate(page_size=2)) as client:
        pages = [page async for page in client.computers("Workstation", ("ComputerName",))]
    assert [[c.id for c in page if isinstance(c, Computer)] for page in pages] == [
        ["1187", "1203"], ["2305"]]
    queries = [e.query for e in automate_state.exchanges if e.path.endswith("Computers")]
    assert queries == [
        {"page": "1", "pageSize": "2", "condition": "Type = 'Workstation'", "orderBy": "Id asc",
         "excludeFields": "OpenPortsTCP,OpenPortsUDP,IRQ,Address,DMA,UserAccounts,"
                          "PowerProfiles,HardwarePorts,Groups,Tickets,LoggedInUsers"},
        {"page": "2", "pageSize": "2", "condition": "Type = 'Workstation'", "orderBy": "Id asc",
         "excludeFields": "OpenPortsTCP,OpenPortsUDP,IRQ,Address,DMA,UserAccounts,"
                          "PowerProfiles,HardwarePorts,Groups,Tickets,LoggedInUsers"},
    ]
    assert "OpenPortsTCP" not in automate_state.exchanges[-1].response_body[0]


async def test_an_empty_last_page_also_ends_paging(
    make_automate: MakeSettings, client_for: MakeClient, automate_state: AutomateApp,
) -> None:
    """Exactly a page's worth of records: the next page is empty and paging stops there."""
    async with client_for(make_automate(page_size=3)) as client:
        pages = [page async for page in client.computers("Workstation", ("ComputerName",))]
    assert [len(page) for page in pages] == [3, 0]


def test_page_size_is_at_most_1000() -> None:
    """Automate serves at most 1000 records a page, so larger settings are refused."""
    with pytest.raises(ValueError, match="less than or equal to 1000"):
        AutomateSettings.model_validate(automate_section("https://rmm.example.net",
                                                         page_size=5000))


def test_ids_are_accepted_as_numbers_or_numeric_strings() -> None:
    """1042, "1042" and " 01042 " are the same id; anything else makes the record Bad."""
    assert parse_id(1042) == parse_id("1042") == parse_id(" 01042 ") == "1042"
    reader = Computer.reader(("ComputerName",))
    records = read_all([{"Id": 7, "ComputerName": "A"}, {"Id": "8", "ComputerName": "B"},
                        {"Id": "x9", "ComputerName": "C"}, {"ComputerName": "D"}], reader)
    assert [r.id for r in records if isinstance(r, Computer)] == ["7", "8"]
    assert [(r.id, r.reason) for r in records if isinstance(r, Bad)] == [
        ("x9", "Id 'x9' is not a number"), (None, "Id is missing")]


def test_dotnet_dates_with_seven_decimals_and_no_zone_are_read_as_utc() -> None:
    """ExpirationDate as .NET writes it."""
    parsed = parse_datetime("2025-06-02T11:15:20.1234567")
    assert parsed is not None
    assert (parsed.isoformat()) == "2025-06-02T11:15:20.123456+00:00"


async def test_429_is_retried_after_the_servers_retry_after(
    make_automate: MakeSettings, client_for: MakeClient, automate_state: AutomateApp,
    sleeps: Sleeps,
) -> None:
    """Two 429s with Retry-After: 7 -> two waits of 7 s (recorded, not slept), then success."""
    automate_state.faults.throttle_next = 2
    automate_state.faults.retry_after = "7"
    async with client_for(make_automate()) as client:
        await client.patch_information()
    assert sleeps.delays == [7.0, 7.0]


async def test_a_huge_retry_after_is_capped(
    make_automate: MakeSettings, client_for: MakeClient, automate_state: AutomateApp,
    sleeps: Sleeps,
) -> None:
    """Retry-After: 3600 waits retry_backoff_max (here 20 s), not an hour."""
    automate_state.faults.throttle_next = 1
    automate_state.faults.retry_after = "3600"
    async with client_for(make_automate(retry_backoff_max="20s")) as client:
        await client.patch_information()
    assert sleeps.delays == [20.0]


async def test_server_errors_are_retried_with_capped_exponential_backoff(
    make_automate: MakeSettings, client_for: MakeClient, automate_state: AutomateApp,
    sleeps: Sleeps,
) -> None:
    """Four 500s: delays double from 1 s with jitter (half to full) and stop growing at 3 s."""
    automate_state.faults.fail_next = 4
    async with client_for(make_automate(retry_backoff="1s", retry_backoff_max="3s")) as client:
        await client.patch_information()
    caps = [1.0, 2.0, 3.0, 3.0]
    assert len(sleeps.delays) == 4
    for delay, cap in zip(sleeps.delays, caps, strict=True):
        assert cap / 2 <= delay <= cap


async def test_an_outage_outlasting_the_retries_is_transient(
    make_automate: MakeSettings, client_for: MakeClient, automate_state: AutomateApp,
    sleeps: Sleeps,
) -> None:
    """After `retries` retries the error says so and is a TransientError (retry later)."""
    automate_state.faults.fail_next = 100
    async with client_for(make_automate(retries=2)) as client:
        with pytest.raises(AutomateUnavailable, match="answered 500") as caught:
            await client.patch_information()
    assert isinstance(caught.value, TransientError)
    assert caught.value.status == 500
    assert len(sleeps.delays) == 2


async def test_a_slow_answer_times_out_and_is_retried(
    make_automate: MakeSettings, client_for: MakeClient, automate_state: AutomateApp,
) -> None:
    """The explicit timeout cuts a slow answer; the retry gets a quick one."""
    automate_state.faults.slow_next = 1
    automate_state.faults.slow_seconds = 0.4
    async with client_for(make_automate(timeout="100ms")) as client:
        patch = await client.patch_information()
    assert patch.web_server == "2025.5.0.5"
    assert automate_state.calls["GET patchinformation"] == 2


async def test_a_refused_connection_is_unavailable_after_retries(sleeps: Sleeps) -> None:
    """Nothing listens: retried with backoff, then AutomateUnavailable about the URL."""
    settings = AutomateSettings.model_validate(automate_section("http://127.0.0.1:9",
                                                                retries=2))
    async with AutomateClient(settings, sleep=sleeps, environ=ENVIRON) as client:
        with pytest.raises(AutomateUnavailable, match=r"cannot connect to http://127\.0\.0\.1:9"
                           ) as caught:
            await client.login()
    assert caught.value.aspect == "url"
    assert len(sleeps.delays) == 2


async def test_requests_in_flight_stay_within_max_concurrency(
    make_automate: MakeSettings, client_for: MakeClient, automate_state: AutomateApp,
) -> None:
    """Ten printer calls at once, slow answers, max_concurrency 2: never more than 2 at a time."""
    automate_state.faults.slow_next = 10
    automate_state.faults.slow_seconds = 0.02
    async with client_for(make_automate(max_concurrency=2)) as client:
        await client.login()
        automate_state.reset()
        await asyncio.gather(*(client.printers("1187", ("Name",)) for _ in range(10)))
    assert automate_state.calls["GET computers/{id}/printers"] == 10
    assert automate_state.max_in_flight == 2


async def test_the_rate_limit_spaces_requests_evenly() -> None:
    """`20/s` hands out one slot every 50 ms, in call order."""
    now = [100.0]
    waits: list[float] = []

    async def sleep(delay: float) -> None:
        waits.append(round(delay, 6))

    limiter = RateLimiter(20.0, now=lambda: now[0], sleep=sleep)
    for _ in range(4):
        await limiter.wait()
    assert waits == [0.05, 0.1, 0.15]
    now[0] = 101.0
    await limiter.wait()
    assert waits == [0.05, 0.1, 0.15]


def test_max_rate_forms() -> None:
    """`20/s`, `300/m` and `5/10s` are requests per time unit; other forms are refused."""
    rates = [AutomateSettings.model_validate(automate_section(
        "https://rmm.example.net", max_rate=rate)).requests_per_second
        for rate in ("20/s", "300/m", "5/10s")]
    assert rates == [20.0, 5.0, 0.5]
    with pytest.raises(ValueError, match="max_rate must look like 20/s"):
        AutomateSettings.model_validate(automate_section("https://rmm.example.net",
                                                         max_rate="fast"))


async def test_the_password_comes_from_a_file_read_at_login(
    make_automate: MakeSettings, automate: RunningServer, tmp_path: Path, sleeps: Sleeps,
) -> None:
    """password_file works; a missing file is a credentials error naming the file."""
    secret = tmp_path / "automate"
    secret.write_text(PASSWORD + "\n")
    settings = make_automate(password_env=None, password_file=str(secret))
    async with AutomateClient(settings, sleep=sleeps, environ={}) as client:
        await client.login()
        secret.unlink()
        with pytest.raises(AutomateMisconfigured, match="cannot read the Automate password "
                           "file") as caught:
            await client.login()
    assert caught.value.aspect == "credentials"


async def test_no_password_or_token_reaches_a_log_line(
    make_automate: MakeSettings, client_for: MakeClient, automate_state: AutomateApp,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Logins, re-logins and retries log events; never the password or a token."""
    automate_state.faults.fail_next = 1
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as events:
        async with client_for(make_automate()) as client:
            await client.patch_information()
            automate_state.expire_tokens()
            await client.patch_information()
    text = repr(events) + caplog.text
    assert "automate.logged_in" in text
    assert automate_state.tokens
    for secret in [PASSWORD, *automate_state.tokens]:
        assert secret not in text


async def test_a_redirect_to_a_login_page_is_a_url_problem(
    make_automate: MakeSettings, client_for: MakeClient, automate_state: AutomateApp,
    automate: RunningServer,
) -> None:
    """302 to a sign-in page: the URL does not reach the API."""
    automate_state.faults.redirect_to = f"{automate.url}/login"
    async with client_for(make_automate()) as client:
        with pytest.raises(AutomateMisconfigured, match=f"redirects to {automate.url}/login"
                           ) as caught:
            await client.login()
    assert caught.value.aspect == "url"


async def test_refusals_are_permanent_and_say_what_was_refused(
    make_automate: MakeSettings, client_for: MakeClient, automate_state: AutomateApp,
) -> None:
    """403 is a permission, 404 a wrong route or id, 400 a refused request: none retried."""
    async with client_for(make_automate(username="limited")) as client:
        with pytest.raises(AutomateRejected, match=r"denied read Computers \(HTTP 403\)"
                           ) as denied:
            await client.get_json(f"{client.api_v1}/Computers", what="read Computers")
        with pytest.raises(AutomateRejected, match="was not found") as missing:
            await client.get_json(f"{client.api_v1}/Nope", what="read Nope")
        with pytest.raises(AutomateRejected, match="Invalid field: Nope") as refused:
            await client.get_json(f"{client.api_v1}/Clients", params={"condition": "Nope = 1"},
                                  what="read Clients")
    assert isinstance(denied.value, PermanentError)
    assert (denied.value.aspect, missing.value.aspect, refused.value.aspect) == (
        "permissions", "url", "server")
    assert [e.status for e in automate_state.exchanges if "apitoken" not in e.path] == [
        403, 404, 400]


# -- error mapping at the boundary (httpx.MockTransport) ---------------------------


def _client(handler: Callable[[httpx.Request], httpx.Response], sleeps: Sleeps
            ) -> AutomateClient:
    settings = AutomateSettings.model_validate(automate_section("https://rmm.example.net",
                                                                retries=1))
    return AutomateClient(settings, transport=httpx.MockTransport(handler), sleep=sleeps,
                          environ=ENVIRON)


async def test_a_tls_verification_failure_is_a_tls_configuration_error(sleeps: Sleeps) -> None:
    """A certificate the system does not trust: not retried, and ca_file is suggested."""

    def handler(request: httpx.Request) -> httpx.Response:
        cause = ssl.SSLCertVerificationError(1, "certificate verify failed")
        raise httpx.ConnectError("certificate verify failed", request=request) from cause

    async with _client(handler, sleeps) as client:
        with pytest.raises(AutomateMisconfigured, match=r"TLS with https://rmm\.example\.net "
                           r"failed.*automate\.ca_file") as caught:
            await client.login()
    assert caught.value.aspect == "tls"
    assert sleeps.delays == []


async def test_a_dropped_connection_is_retried_then_unavailable(sleeps: Sleeps) -> None:
    """A server closing the connection mid-answer is transient."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected", request=request)

    async with _client(handler, sleeps) as client:
        with pytest.raises(AutomateUnavailable, match="RemoteProtocolError"):
            await client.login()
    assert len(sleeps.delays) == 1


