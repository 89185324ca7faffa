"""The published OpenAPI subset as a test oracle: every request body and record must fit it."""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import jsonschema
import pytest

from alertd.testing.automate_server import Exchange
from tests.conftest import REPO

SUBSET = REPO.parent / "shared" / "automate-openapi" / "automate-api-subset.json"


@functools.cache
def _spec() -> dict[str, Any]:
    if not SUBSET.is_file():
        pytest.skip(f"the OpenAPI subset {SUBSET} is absent")
    spec: dict[str, Any] = json.loads(SUBSET.read_text(encoding="utf-8"))
    return spec


@functools.cache
def _routes() -> list[tuple[re.Pattern[str], dict[str, Any]]]:
    out = []
    for path, operations in _spec()["paths"].items():
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path))
        out.append((re.compile(f"^/cwa{pattern}$", re.IGNORECASE), operations))
    return out


def _operation(method: str, path: str) -> dict[str, Any]:
    for pattern, operations in _routes():
        if pattern.match(path) and method.lower() in operations:
            operation: dict[str, Any] = operations[method.lower()]
            return operation
    raise AssertionError(f"{method} {path} is not a route of the published API")


def _validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    root = {"allOf": [schema], "components": _spec()["components"]}
    return jsonschema.Draft7Validator(root)


def _request_body(operation: dict[str, Any]) -> dict[str, Any]:
    """The operation's request body, following a `$ref` into `components/requestBodies`."""
    body: dict[str, Any] = operation.get("requestBody", {})
    reference = body.get("$ref")
    if isinstance(reference, str):
        resolved: dict[str, Any] = _spec()["components"]["requestBodies"][
            reference.rsplit("/", 1)[-1]]
        return resolved
    return body


def schema_errors(name: str, value: Any) -> list[str]:
    """Why ``value`` does not fit the schema `components/schemas/<name>` (empty if it does)."""
    assert name in _spec()["components"]["schemas"], f"no schema {name}"
    validator = _validator({"$ref": f"#/components/schemas/{name}"})
    return [f"{error.message} at {list(error.absolute_path)}"
            for error in validator.iter_errors(value)]


def check_exchange(exchange: Exchange) -> None:
    """Assert that the request body and a 200 answer of ``exchange`` fit the contract."""
    operation = _operation(exchange.method, exchange.path)
    if exchange.request_body is not None:
        body = _request_body(operation).get("content", {}).get("application/json")
        assert body is not None, f"{exchange.method} {exchange.path} takes no JSON body"
        errors = list(_validator(body["schema"]).iter_errors(exchange.request_body))
        assert not errors, f"request to {exchange.path}: {errors[0].message}"
    if exchange.status == 200 and exchange.response_body is not None:
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        errors = list(_validator(schema).iter_errors(exchange.response_body))
        assert not errors, (f"answer of {exchange.path}: {errors[0].message} at "
                            f"{list(errors[0].absolute_path)}")


def check_all(exchanges: list[Exchange]) -> int:
    """Check every exchange; return how many were checked."""
    for exchange in exchanges:
        check_exchange(exchange)
    return len(exchanges)


def known_route(path: str) -> bool:
    """Whether ``path`` (under /cwa) is a route of the subset."""
    return any(pattern.match(path) for pattern, _ in _routes())


def dump(value: Any) -> str:
    """JSON text of ``value`` (for searching it for secrets)."""
    return json.dumps(value, default=str)
