"""The API's bearer token: where it comes from and how a request is checked against it.

The token is read once at start-up from `http.token_file` (a systemd
credential; surrounding whitespace stripped) or the variable named by
`http.token_env`. Without one the API is closed, never open: every API
route answers 401 saying how to configure it. Requests are compared in
constant time, and neither the token nor the Authorization header is ever
logged (uvicorn's access log is off; the log redaction drops both keys).
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from alertd.errors import ConfigError
from alertd.secrets import credential_path
from alertd.settings import HttpSettings

CHALLENGE = {"WWW-Authenticate": "Bearer"}
NOT_CONFIGURED = ("the API needs a bearer token and none is configured: set http.token_file "
                  "or http.token_env in alertd.yaml")
REFUSED = "missing or wrong bearer token (send Authorization: Bearer <token>)"

bearer = HTTPBearer(auto_error=False, scheme_name="token",
                    description="The token in http.token_file or http.token_env.")


def load_token(http: HttpSettings, environ: Mapping[str, str] | None = None) -> str | None:
    """The configured token, or None when there is none; ConfigError when it cannot be read."""
    env = os.environ if environ is None else environ
    if http.token_file is not None and http.token_env is not None:
        raise ConfigError("http: give the API token as one of token_file or token_env, not both")
    if http.token_file is not None:
        path = credential_path(http.token_file, env)
        try:
            token = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            raise ConfigError(f"http.token_file {path} cannot be read: {reason}") from error
        if not token:
            raise ConfigError(f"http.token_file {path} is empty")
        return token
    if http.token_env is not None:
        token = env.get(http.token_env, "").strip()
        if not token:
            raise ConfigError(f"http.token_env names {http.token_env}, which is unset or empty")
        return token
    return None


def require_token(token: str | None) -> Callable[..., Awaitable[None]]:
    """A route dependency that lets a request through only with ``token``."""
    expected = token.encode() if token is not None else None

    async def check(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        if expected is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, NOT_CONFIGURED, headers=CHALLENGE)
        given = credentials.credentials.encode() if credentials is not None else b""
        if not hmac.compare_digest(given, expected):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, REFUSED, headers=CHALLENGE)

    return check
