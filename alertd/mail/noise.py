"""Auto-replies, bounces and alertd's own mail: recorded as ignored, never ticketed (R1.5).

Each check is a pure predicate over the parsed mail and its envelope and
returns the reason it fired, which becomes the message's recorded reason.
`Auto-Submitted: auto-generated` alone is deliberately not noise: every
machine-made alert carries it.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from alertd.domain import Envelope, ParsedMail

LOOP_HEADER = "X-Alertd-Loop"
"""Stamped on every mail alertd itself sends; seeing it back means a loop."""

_EXCHANGE_SUPPRESS = re.compile(r"\b(all|oof|autoreply)\b", re.IGNORECASE)
_NULL_SENDERS = {"", "<>"}


def _auto_submitted(mail: ParsedMail, _envelope: Envelope | None) -> str | None:
    for value in mail.header("auto-submitted"):
        token = value.split(";", 1)[0].strip().lower()
        if token in {"auto-replied", "auto-notified"}:
            return f"auto-reply (Auto-Submitted: {token})"
    return None


def _autoreply_headers(mail: ParsedMail, _envelope: Envelope | None) -> str | None:
    for name in ("x-autoreply", "x-autorespond", "x-autoresponder"):
        if mail.header(name):
            return f"auto-reply ({name} header)"
    for value in mail.header("precedence"):
        if value.strip().lower() == "auto_reply":
            return "auto-reply (Precedence: auto_reply)"
    return None


def _exchange_auto_response(mail: ParsedMail, _envelope: Envelope | None) -> str | None:
    for value in mail.header("x-auto-response-suppress"):
        if _EXCHANGE_SUPPRESS.search(value):
            return f"auto-reply (X-Auto-Response-Suppress: {value.strip()})"
    if mail.header("x-ms-exchange-inbox-rules-loop"):
        return "auto-reply (Exchange inbox rule)"
    return None


def _bounce(mail: ParsedMail, envelope: Envelope | None) -> str | None:
    if mail.content_type == "multipart/report":
        return "bounce (multipart/report)"
    sender = envelope.mail_from if envelope is not None else None
    if sender is not None and sender.strip() in _NULL_SENDERS:
        return "bounce (null envelope sender)"
    for value in mail.header("return-path"):
        if value.strip() in _NULL_SENDERS:
            return "bounce (null Return-Path)"
    if mail.header("x-failed-recipients"):
        return "bounce (X-Failed-Recipients)"
    return None


def _own_mail(mail: ParsedMail, _envelope: Envelope | None) -> str | None:
    if mail.header(LOOP_HEADER):
        return f"loop (mail sent by alertd, {LOOP_HEADER})"
    return None


CHECKS: tuple[Callable[[ParsedMail, Envelope | None], str | None], ...] = (
    _own_mail,
    _bounce,
    _auto_submitted,
    _autoreply_headers,
    _exchange_auto_response,
)


def noise_reason(mail: ParsedMail, envelope: Envelope | None = None) -> str | None:
    """Why this mail is noise, or None when it may be an alert."""
    for check in CHECKS:
        reason = check(mail, envelope)
        if reason is not None:
            return reason
    return None
