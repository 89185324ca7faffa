"""The SMTP (or LMTP) listener: the relay target of the site's MTA (SPEC R1.2).

The aiosmtpd handler stays thin: it checks recipients (alertd is never an
open relay), turns the envelope and the raw bytes into a RawMessage, and
answers 250 with the inbox id only after the inbox has committed it; if it
cannot be stored the answer is 451, so the sending MTA keeps the mail and
tries again. Parsing happens later, from the inbox: a malformed alert is
stored and marked failed, never refused. Every reply is a named constant
with an enhanced status code; aiosmtpd's own fixed replies for oversized
mail are rewritten to match.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import ssl
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, AnyStr

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP

from alertd.domain import Envelope, RawMessage
from alertd.errors import ConfigError
from alertd.inbox.store import InboxStore, header_message_id
from alertd.logs import get_logger
from alertd.settings import SmtpListenerSettings
from alertd.sources.smtp_auth import UsersAuthenticator, load_users

log = get_logger(__name__)

# Replies (RFC 5321 codes with RFC 3463 enhanced status codes).
REPLY_QUEUED = "250 2.0.0 OK: queued as {id}"
REPLY_RCPT_OK = "250 2.1.5 Recipient OK"
REPLY_RELAY_DENIED = "550 5.7.1 <{address}>: relay access denied"
REPLY_TOO_BIG = "552 5.3.4 Message too big for this server (limit {limit} bytes)"
REPLY_DECLARED_TOO_BIG = "552 5.3.4 Declared message size exceeds the limit of {limit} bytes"
REPLY_NOT_STORED = "451 4.3.0 Message not stored, please try again later"
REPLY_NOT_ALLOWED = "554 5.7.1 Connection refused: {peer} is not allowed to send here"
REPLY_SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"
REPLY_ERROR = "451 4.3.0 Temporary local error, please try again later"
REPLY_STARTTLS_FIRST = "530 5.7.0 Must issue a STARTTLS command first"

MAX_LINE = 1_000_000

_AIOSMTPD_TOO_MUCH = "552 Error: Too much mail data"
_AIOSMTPD_SIZE = "552 Error: message size exceeds fixed maximum message size"
_AIOSMTPD_STARTTLS = "530 Must issue a STARTTLS command first"

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9-]+"
_PLAIN_PATH = re.compile(rf"[ \t]*<({_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*)>[ \t]*")
"""`<local@domain>` in its plain form (dot-atom local part, LDH domain), as MTAs send it;
for these the stdlib's header parser that aiosmtpd uses gives the same address and rest."""


class PlainPathReader:
    """aiosmtpd's MAIL / RCPT path parser, with a fast path for the plain form (a mixin to put
    before aiosmtpd's `SMTP` or `LMTP`).

    aiosmtpd runs the stdlib's generic header parser (and defines a class)
    for every path, a quarter of the listener's CPU under load; the plain
    form is read with one regular expression instead, and anything else
    (quoted local parts, comments, address literals, UTF-8) still goes to
    aiosmtpd.
    """

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        match = _PLAIN_PATH.match(arg)
        if match is None or "(" in arg:  # a comment anywhere: the stdlib drops it
            return super()._getaddr(arg)  # type: ignore[misc, no-any-return]
        address = match.group(1)
        limit = self.local_part_limit  # type: ignore[attr-defined]
        if limit and len(address.rpartition("@")[0]) > limit:
            return None, None
        return address, arg[match.end():]


class Recipients:
    """The addresses (and `@domains`) a listener accepts mail for; empty accepts any."""

    def __init__(self, entries: Sequence[str]) -> None:
        self.addresses = {e.lower() for e in entries if not e.startswith("@")}
        self.domains = {e[1:].lower() for e in entries if e.startswith("@")}
        self.any = not entries

    def accepts(self, address: str) -> bool:
        """Whether mail for ``address`` is accepted here."""
        if self.any:
            return True
        lowered = address.strip().lower()
        return lowered in self.addresses or lowered.rpartition("@")[2] in self.domains


class SmtpHandler:
    """aiosmtpd handler hooks: EHLO (what to advertise), RCPT, DATA, exceptions."""

    def __init__(self, listener: SmtpListener) -> None:
        self.listener = listener

    async def handle_EHLO(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.listener.authenticator is None:
            return [r for r in responses if not r[4:].startswith("AUTH")]
        return responses

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if not self.listener.recipients.accepts(address):
            log.info("smtp.recipient_refused", listener=self.listener.name, recipient=address,
                     peer=_peer(session))
            return REPLY_RELAY_DENIED.format(address=address)
        envelope.rcpt_tos.append(address)
        return REPLY_RCPT_OK

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        data: bytes = envelope.original_content
        peer = _peer(session)
        listener = self.listener
        raw = RawMessage(
            Envelope(source=listener.name, mail_from=envelope.mail_from,
                     rcpt_to=tuple(envelope.rcpt_tos), peer=peer),
            data,
            datetime.now(UTC),
        )
        listener.in_flight += 1
        try:
            accepted = await listener.store.accept(raw)
        except Exception as error:  # noqa: BLE001 - whatever stops storing, the MTA retries
            log.warning("smtp.not_stored", listener=listener.name, peer=peer,
                        error=f"{type(error).__name__}: {error}")
            return self._per_recipient(envelope, REPLY_NOT_STORED)
        finally:
            listener.in_flight -= 1
            if listener.in_flight == 0:
                listener.idle.set()
        # Debug only: at info the canonical line per mail is the worker's
        # `message.processed`, and during a storm a line per accept costs the loop
        # that answers every session.
        if log.isEnabledFor(logging.DEBUG):
            log.debug("smtp.accepted", listener=listener.name, message_id=accepted.id,
                      mail_message_id=header_message_id(data), duplicate=accepted.duplicate,
                      size=len(data), peer=peer)
        return self._per_recipient(envelope, REPLY_QUEUED.format(id=accepted.id))

    async def handle_exception(self, error: Exception) -> str:
        log.error("smtp.session_error", listener=self.listener.name,
                  error=f"{type(error).__name__}: {error}")
        return REPLY_ERROR

    def _per_recipient(self, envelope: Any, reply: str) -> str:
        """LMTP answers DATA once per recipient; SMTP once."""
        if not self.listener.settings.lmtp:
            return reply
        return "\r\n".join(reply for _ in envelope.rcpt_tos) or reply


class _SessionMixin(PlainPathReader):
    """What alertd adds to an aiosmtpd session: network check, reply rewrites, tracking."""

    line_length_limit = MAX_LINE
    """RFC 5321 says 1000 octets; alert senders that write longer lines are not refused."""
    listener: SmtpListener
    session: Any
    transport: Any

    async def push(self, status: AnyStr) -> None:
        if isinstance(status, bytes):
            await super().push(status)  # type: ignore[misc]
            return
        limit = self.listener.settings.max_size
        if status == _AIOSMTPD_TOO_MUCH:
            status = REPLY_TOO_BIG.format(limit=limit)
        elif status == _AIOSMTPD_SIZE:
            status = REPLY_DECLARED_TOO_BIG.format(limit=limit)
        elif status == _AIOSMTPD_STARTTLS:
            status = REPLY_STARTTLS_FIRST
        await super().push(status)  # type: ignore[misc]

    async def _handle_client(self) -> None:
        peer = self.session.peer
        host = peer[0] if isinstance(peer, tuple) else str(peer)
        if not self.listener.peer_allowed(host):
            log.info("smtp.connection_refused", listener=self.listener.name, peer=host)
            await self.push(REPLY_NOT_ALLOWED.format(peer=host))
            self.transport.close()
            return
        self.listener.sessions.add(self)
        try:
            await super()._handle_client()  # type: ignore[misc]
        finally:
            self.listener.sessions.discard(self)


class _SmtpSession(_SessionMixin, SMTP):
    pass


class _LmtpSession(_SessionMixin, LMTP):
    pass


class SmtpListener:
    """One configured listener, run as a daemon component."""

    def __init__(self, settings: SmtpListenerSettings, store: InboxStore) -> None:
        self.settings = settings
        self.store = store
        self.name = f"smtp:{settings.name}"
        self.recipients = Recipients(settings.recipients)
        self.networks = [ipaddress.ip_network(n) for n in settings.allowed_networks]
        self.tls_context = _tls_context(settings)
        self.authenticator = (
            UsersAuthenticator(load_users(settings.auth.users_file)) if settings.auth else None
        )
        if self.authenticator is not None and self.tls_context is None:
            raise ConfigError(f"smtp listener {settings.name!r}: auth needs tls "
                              "(AUTH is only offered after STARTTLS)")
        self.handler = SmtpHandler(self)
        self.sessions: set[Any] = set()
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.server: asyncio.base_events.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    def peer_allowed(self, host: str) -> bool:
        """Whether a client at ``host`` may connect."""
        if not self.networks:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def _session(self) -> SMTP:
        cls = _LmtpSession if self.settings.lmtp else _SmtpSession
        session = cls(
            self.handler,
            data_size_limit=self.settings.max_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=self.settings.hostname,
            ident="alertd",
            tls_context=self.tls_context,
            require_starttls=self.authenticator is not None,
            auth_required=self.authenticator is not None,
            auth_require_tls=True,
            authenticator=self.authenticator,
            timeout=self.settings.timeout.total_seconds(),
        )
        session.listener = self
        return session

    async def start(self) -> None:
        """Bind the listening socket (before READY, so a taken port fails start-up)."""
        host, _, port = self.settings.listen.rpartition(":")
        self.server = await asyncio.get_running_loop().create_server(
            self._session, host.strip("[]"), int(port))
        log.info("smtp.listening", listener=self.name, address=f"{host}:{self.port}",
                 lmtp=self.settings.lmtp, tls=self.tls_context is not None,
                 auth=self.authenticator is not None)

    async def run(self, stopping: asyncio.Event) -> None:
        """Serve until ``stopping``; then stop accepting and let stores in progress finish."""
        if self.server is None:
            await self.start()
        await stopping.wait()
        await self.stop()

    async def stop(self) -> None:
        """Close the socket, wait for mail being stored, then end the remaining sessions."""
        if self.server is None:
            return
        self.server.close()
        while self.in_flight:
            self.idle.clear()
            await self.idle.wait()
        for session in list(self.sessions):
            transport = session.transport
            if transport is not None and not transport.is_closing():
                transport.write((REPLY_SHUTTING_DOWN + "\r\n").encode())
                transport.close()
        await self.server.wait_closed()
        log.info("smtp.stopped", listener=self.name)


def _tls_context(settings: SmtpListenerSettings) -> ssl.SSLContext | None:
    if settings.tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.tls.cert_file, settings.tls.key_file)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(
            f"smtp listener {settings.name!r}: cannot load TLS certificate "
            f"{settings.tls.cert_file} / key {settings.tls.key_file}: {error}"
        ) from None
    return context


def _peer(session: Any) -> str | None:
    peer = getattr(session, "peer", None)
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return None if peer is None else str(peer)


def smtp_components(settings: Sequence[SmtpListenerSettings], store: InboxStore
                    ) -> list[SmtpListener]:
    """One listener per `smtp:` entry."""
    return [SmtpListener(item, store) for item in settings]
