"""The API's bearer token: closed without one, constant-time compared, never optional (R6.7)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from alertd.errors import ConfigError
from alertd.settings import HttpSettings
from alertd.web.auth import load_token
from tests.web.conftest import TOKEN, ApiServer, api_settings

API_ROUTES = [("GET", "/tickets"), ("GET", "/tickets/{ticket_id}"),
              ("POST", "/tickets/{ticket_id}/resolve"), ("POST", "/tickets/{ticket_id}/close"),
              ("GET", "/assets"), ("GET", "/assets/{asset_id}"), ("GET", "/messages"),
              ("GET", "/messages/{message_id}"), ("POST", "/messages/{message_id}/retry")]
API_CALLS = [(method, re.sub(r"\{\w+\}", "1", path)) for method, path in API_ROUTES]


async def test_every_api_route_needs_the_token_and_monitoring_routes_do_not(
    serve: Callable[..., ApiServer], sqlite_url: str, token_file: Path
) -> None:
    """Without a token, or with a wrong one or another scheme: 401 and a Bearer challenge."""
    server = serve(api_settings(sqlite_url, token_file))
    async with httpx.AsyncClient(base_url=server.url) as http:
        spec = (await http.get("/openapi.json")).json()
        described = {(method.upper(), path) for path, item in spec["paths"].items()
                     for method, operation in item.items() if operation.get("security")}
        assert described == set(API_ROUTES)
        for method, path in API_CALLS:
            for headers in ({}, {"Authorization": "Bearer wrong-token"},
                            {"Authorization": f"Basic {TOKEN}"},
                            {"Authorization": f"Bearer {TOKEN}x"}):
                response = await http.request(method, path, headers=headers)
                assert response.status_code == 401, (method, path, headers)
                assert response.headers["www-authenticate"] == "Bearer"
                assert response.json() == {"detail": "missing or wrong bearer token (send "
                                                     "Authorization: Bearer <token>)"}
        right = await http.get("/tickets", headers={"Authorization": f"Bearer {TOKEN}"})
        assert (right.status_code, right.json()) == (200, [])
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/metrics")).status_code == 200
        assert spec["components"]["securitySchemes"]["token"] == {
            "type": "http", "scheme": "bearer",
            "description": "The token in http.token_file or http.token_env."}


async def test_without_a_configured_token_the_api_is_closed(
    serve: Callable[..., ApiServer], sqlite_url: str
) -> None:
    """No token configured: every API route is 401 saying what to set, whatever is sent."""
    server = serve(api_settings(sqlite_url, None))
    async with httpx.AsyncClient(base_url=server.url) as http:
        for method, path in API_CALLS:
            for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Bearer x"}):
                response = await http.request(method, path, headers=headers)
                assert response.status_code == 401
                assert response.headers["www-authenticate"] == "Bearer"
                assert "set http.token_file or http.token_env" in response.json()["detail"]
        assert (await http.get("/healthz")).status_code == 200


async def test_the_token_can_come_from_the_environment(
    serve: Callable[..., ApiServer], sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`http.token_env` names a variable read at start."""
    monkeypatch.setenv("ALERTD_TEST_API_TOKEN", "from-the-environment")
    settings = api_settings(sqlite_url, None).model_copy(
        update={"http": HttpSettings(listen="127.0.0.1:0", token_env="ALERTD_TEST_API_TOKEN")})
    server = serve(settings)
    async with httpx.AsyncClient(base_url=server.url) as http:
        ok = await http.get("/assets", headers={"Authorization": "Bearer from-the-environment"})
        assert ok.status_code == 200
        assert (await http.get("/assets", headers={"Authorization": f"Bearer {TOKEN}"})
                ).status_code == 401


def test_a_token_that_cannot_be_read_stops_start_up(tmp_path: Path) -> None:
    """A missing or empty file, an unset variable, or both sources given: configuration errors."""
    empty = tmp_path / "empty"
    empty.write_text(" \n")
    cases = [
        (HttpSettings(token_file=tmp_path / "absent"), "cannot be read: No such file"),
        (HttpSettings(token_file=empty), "is empty"),
        (HttpSettings(token_env="ALERTD_NO_SUCH_VARIABLE"), "unset or empty"),
        (HttpSettings(token_file=empty, token_env="X"), "one of token_file or token_env"),
    ]
    for http, message in cases:
        with pytest.raises(ConfigError, match=message):
            load_token(http, environ={})
    assert load_token(HttpSettings(), environ={}) is None
    assert load_token(HttpSettings(token_env="T"), environ={"T": " tok \n"}) == "tok"


def test_a_relative_token_file_is_a_systemd_credential(tmp_path: Path) -> None:
    """`token_file: api-token` is read from `$CREDENTIALS_DIRECTORY` (LoadCredential in
    alertd.service), like the Automate password file."""
    (tmp_path / "api-token").write_text("from-systemd\n")
    http = HttpSettings(token_file=Path("api-token"))
    assert load_token(http, environ={"CREDENTIALS_DIRECTORY": str(tmp_path)}) == "from-systemd"
