"""Alert mails built for tests, in the shapes real senders use.

Automate mails follow the two shapes of automate-api.md §4.1: the default
monitor text, and the recommended tagged template.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from email.utils import format_datetime

_counter = itertools.count(1)


def _date(value: datetime | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return format_datetime(value if value.tzinfo else value.replace(tzinfo=UTC))


def automate_tagged(
    status: str,
    *,
    date: datetime | str | None,
    computer_id: int | None = 2201,
    monitor: str = "Disk - Free Space C:",
    field: str = "C:",
    client: str = "Northwind Traders",
    client_id: int = 41,
    host: str = "NW-FS01",
    site: str = "Head Office",
    result: str = "3.2 GB free (4%)",
    sender: str = "automate@example.invalid",
    message_id: str | None = None,
    extra_headers: str = "",
) -> bytes:
    """A mail in the recommended tagged template: `[CWA:id]` and `Key: value` lines."""
    number = next(_counter)
    tag = f" [CWA:{computer_id}]" if computer_id is not None else ""
    lines = [
        f'From: "ConnectWise Automate" <{sender}>',
        "To: alerts@helpdesk.example.net",
        f"Subject: {status} - {monitor} - {client}\\{host}{tag}",
    ]
    if (rendered := _date(date)) is not None:
        lines.append(f"Date: {rendered}")
    lines += [
        f"Message-ID: <{message_id or f'tagged.{number}'}@rmm.example.invalid>",
        "MIME-Version: 1.0",
        'Content-Type: text/plain; charset="utf-8"',
        "Content-Transfer-Encoding: 8bit",
    ]
    if extra_headers:
        lines.append(extra_headers.rstrip("\r\n"))
    body = [
        f"Status: {status}",
        f"Monitor: {monitor}",
        f"Client: {client}",
        f"ClientID: {client_id}",
        f"Location: {site}",
        f"Computer: {host}",
    ]
    if computer_id is not None:
        body.append(f"ComputerID: {computer_id}")
    body += [
        f"Field: {field}",
        f"Result: {result}",
        "",
        f"{monitor} {status} on {client}\\{host} at {site} for {field} result {result}.",
    ]
    return ("\r\n".join([*lines, "", *body]) + "\r\n").encode()


def automate_monitor(
    status: str,
    *,
    date: datetime | str | None,
    monitor: str = "Service - Print Spooler",
    field: str = "Spooler",
    client: str = "Northwind Traders",
    host: str = "NW-WS17",
    site: str = "Head Office",
    result: str = "Stopped",
    sender: str = "automate@example.invalid",
    message_id: str | None = None,
    extra_headers: str = "",
) -> bytes:
    """A mail in Automate's default monitor text (no computer id anywhere)."""
    number = next(_counter)
    line = f"{monitor} {status} on {client}\\{host} at {site} for {field} result {result}."
    lines = [f"From: {sender}", "To: alerts@helpdesk.example.net", f"Subject: {line}"]
    if (rendered := _date(date)) is not None:
        lines.append(f"Date: {rendered}")
    lines += [
        f"Message-ID: <{message_id or f'monitor.{number}'}@rmm.example.invalid>",
        "MIME-Version: 1.0",
        'Content-Type: text/plain; charset="us-ascii"',
    ]
    if extra_headers:
        lines.append(extra_headers.rstrip("\r\n"))
    return ("\r\n".join([*lines, "", line]) + "\r\n").encode()


SHAPES = {"tagged": automate_tagged, "monitor": automate_monitor}
