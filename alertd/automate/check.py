"""`alertd automate check`: does each part of the Automate set-up work? (SPEC R5.1)

Five lines, in order, each OK, FAIL or SKIPPED with a plain message:

- **url**: the address answers as an Automate API (not a login page, not 404);
- **tls**: the certificate is verified (or plain http to loopback);
- **credentials**: `POST apitoken` gives the user a token (wrong password,
  an MFA user without the Integrator tick, or a missing password file are
  told apart);
- **client_id**: an authenticated call is accepted with the ClientId header;
- **permissions**: the user's class can read what the import reads.

A line after a failed one that depends on it is SKIPPED, so the first FAIL
is the thing to fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from alertd.automate.client import AutomateClient
from alertd.errors import AutomateError

Status = Literal["ok", "fail", "skipped"]
ASPECTS = ("url", "tls", "credentials", "client_id", "permissions")


@dataclass(frozen=True, slots=True)
class CheckLine:
    """One aspect of the connection and what was found."""

    aspect: str
    status: Status
    message: str
    error: AutomateError | None = None

    def as_dict(self) -> dict[str, str]:
        """A JSON-ready form."""
        return {"aspect": self.aspect, "status": self.status, "message": self.message}


async def run_checks(client: AutomateClient) -> list[CheckLine]:
    """Check URL, TLS, credentials, ClientId and permissions, in that order."""
    lines: dict[str, CheckLine] = {}

    def skip_rest(reason: str) -> list[CheckLine]:
        for aspect in ASPECTS:
            lines.setdefault(aspect, CheckLine(aspect, "skipped", reason))
        return [lines[aspect] for aspect in ASPECTS]

    try:
        probe = await client.probe()
    except AutomateError as error:
        if error.aspect == "tls":
            lines["url"] = CheckLine("url", "ok", f"{client.settings.url} is reachable")
            lines["tls"] = CheckLine("tls", "fail", str(error), error)
        else:
            lines["url"] = CheckLine("url", "fail", str(error), error)
        return skip_rest("needs a working URL and TLS")
    lines["url"] = CheckLine("url", "ok", f"{probe.api_url} answers as an Automate API")
    lines["tls"] = CheckLine("tls", "ok", probe.tls)

    try:
        token = await client.login()
    except AutomateError as error:
        aspect = "credentials" if error.aspect in ("credentials", "client_id") else "url"
        lines[aspect] = CheckLine(aspect, "fail", str(error), error)
        return skip_rest("needs working credentials")
    until = f", valid until {token.expires:%Y-%m-%d %H:%M} UTC" if token.expires else ""
    lines["credentials"] = CheckLine(
        "credentials", "ok", f"user {client.settings.username!r} logged in{until}")

    try:
        patch = await client.patch_information()
    except AutomateError as error:
        lines["client_id"] = CheckLine("client_id", "fail", str(error), error)
        return skip_rest("needs an accepted ClientId")
    version = f" (Automate {patch.web_server})" if patch.web_server else ""
    lines["client_id"] = CheckLine("client_id", "ok", f"ClientId accepted{version}")

    resources = [("Clients", f"{client.api_v1}/Clients"),
                 ("Locations", f"{client.api_v1}/Locations"),
                 ("Contacts", f"{client.api_v2}/Contacts"),
                 ("Computers", f"{client.api_v1}/Computers")]
    kinds = client.settings.import_.asset_types
    if "routers" in kinds:
        resources.append(("Routers", f"{client.api_v1}/routers"))
    if "network_devices" in kinds:
        resources.append(("NetworkDevices", f"{client.api_v1}/NetworkDevices"))
    denied: list[str] = []
    other: AutomateError | None = None
    for name, url in resources:
        try:
            await client.get_json(url, params={"page": 1, "pageSize": 1}, what=f"read {name}")
        except AutomateError as error:
            if error.aspect == "permissions":
                denied.append(name)
            elif other is None:
                other = error
    readable = [name for name, _ in resources if name not in denied]
    if denied:
        lines["permissions"] = CheckLine(
            "permissions", "fail",
            f"the user's class cannot read {', '.join(denied)} (HTTP 403); it needs Clients "
            "Read, Contacts Read, Locations Show All and Computers/Network devices Show All, "
            "and membership of All Clients and All Agents",
            None,
        )
    elif other is not None:
        lines["permissions"] = CheckLine("permissions", "fail", str(other), other)
    else:
        lines["permissions"] = CheckLine("permissions", "ok",
                                         f"can read {', '.join(readable)}")
    return [lines[aspect] for aspect in ASPECTS]
