"""SMTP AUTH users: a file of `user:hash` lines, checked only over TLS.

Hashes are PBKDF2-SHA256 (`pbkdf2_sha256$iterations$salt$digest`, base64),
made by `alertd smtp hash-password`. Passwords are compared in constant time
and never logged; AUTH is refused before STARTTLS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import AuthResult, LoginPassword

from alertd.errors import ConfigError

SCHEME = "pbkdf2_sha256"
ITERATIONS = 200_000


def hash_password(password: str, *, iterations: int = ITERATIONS) -> str:
    """The stored form of ``password``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return "$".join([SCHEME, str(iterations), _b64(salt), _b64(digest)])


def verify_password(password: bytes, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant time)."""
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != SCHEME:
            return False
        computed = hashlib.pbkdf2_hmac("sha256", password, _unb64(salt), int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(computed, _unb64(digest))


def load_users(path: Path) -> dict[str, str]:
    """`user -> hash` from a users file; ConfigError names the file and line of a bad entry."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read SMTP users file: {error.strerror}") from None
    users: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        user, sep, stored = text.partition(":")
        if not sep or not user or not stored.startswith(SCHEME + "$"):
            raise ConfigError(
                f"{path}:{number}: expected user:{SCHEME}$... "
                "(make one with `alertd smtp hash-password`)"
            )
        users[user] = stored
    return users


class UsersAuthenticator:
    """An aiosmtpd authenticator over a users file (LOGIN and PLAIN)."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user = auth_data.login.decode("utf-8", "replace")
        stored = self.users.get(user)
        ok = stored is not None and verify_password(auth_data.password, stored)
        return AuthResult(success=ok, handled=False, auth_data=user if ok else None)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)
