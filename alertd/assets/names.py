"""How names are normalised before they are compared."""

from __future__ import annotations

import ipaddress


def host_key(name: str) -> str:
    """Lower-cased short host name: `CON-DC01.corp.example` and `con-dc01` compare equal.

    IP addresses are kept whole.
    """
    value = name.strip().lower().rstrip(".")
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return value.split(".", 1)[0]
    return value


def name_key(name: str) -> str:
    """Case- and space-insensitive form of a client or site name."""
    return " ".join(name.lower().split())


def tag_key(value: str | None) -> str | None:
    """Serial numbers and asset tags compare case-insensitively, without spaces."""
    if value is None:
        return None
    key = "".join(value.split()).lower()
    return key or None
