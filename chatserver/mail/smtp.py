"""Inbound SMTP (aiosmtpd) in the running event loop.

RCPT is accepted only for the email inboxes' addresses and their plus-addresses (550 otherwise); the
size limit is aiosmtpd's, enforced while the DATA arrives (its bytes are dropped, not buffered, past the
limit; 552); STARTTLS is offered when a certificate is configured and AUTH required when credentials are.
DATA is answered 250 only after every addressed inbox has committed the mail as a conversation message;
a failure answers 451 so the sender retries (the import is idempotent by Message-ID).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import ssl
import time
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from adapters.email.address import normalize, split_plus
from chatserver.mail.config import EmailConfig
from chatserver.mail.ingest import Ingestor
from chatserver.mail.store import MailStore
from chatserver.model.types import Inbox
from chatserver.settings import Settings

log = logging.getLogger(__name__)

INBOX_CACHE_S = 2.0


class InboundHandler:
    """aiosmtpd handler: the hooks aiosmtpd calls by name."""

    def __init__(self, ingestor: Ingestor, mail: MailStore) -> None:
        self.ingestor = ingestor
        self.mail = mail
        self._inboxes: dict[str, tuple[Inbox, EmailConfig]] = {}
        self._loaded_at = 0.0

    async def inbox_for(self, address: str) -> tuple[Inbox, EmailConfig] | None:
        if time.monotonic() - self._loaded_at > INBOX_CACHE_S:
            self._inboxes = {cfg.address: (inbox, cfg) for inbox, cfg in await self.mail.email_inboxes()}
            self._loaded_at = time.monotonic()
        return self._inboxes.get(split_plus(address)[0])

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        try:
            found = await self.inbox_for(address)
        except Exception:
            log.exception("inbox lookup failed")
            return "451 4.3.0 Temporary failure, try again later"
        if found is None:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        if not isinstance(raw, bytes):
            raw = str(raw).encode("utf-8", "surrogateescape")
        by_inbox: dict[str, tuple[Inbox, EmailConfig, list[str]]] = {}
        for rcpt in envelope.rcpt_tos:
            found = await self.inbox_for(rcpt)
            if found is not None:
                by_inbox.setdefault(found[0].id, (found[0], found[1], []))[2].append(normalize(rcpt))
        try:
            for inbox, cfg, rcpts in by_inbox.values():
                await self.ingestor.ingest(raw, inbox=inbox, config=cfg, recipients=rcpts, source="smtp")
        except Exception:
            log.exception("inbound mail from %s not stored; the sender will retry", envelope.mail_from)
            return "451 4.3.0 Could not store the message, try again later"
        return "250 OK: stored"


class InboundSmtp:
    def __init__(self, settings: Settings, ingestor: Ingestor, mail: MailStore) -> None:
        address = settings.smtp_address()
        assert address is not None
        self.host, self.port = address
        self.settings = settings
        self.handler = InboundHandler(ingestor, mail)
        self._server: asyncio.Server | None = None

    def _tls(self) -> ssl.SSLContext | None:
        s = self.settings
        if s.smtp_tls_cert is None or s.smtp_tls_key is None:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(s.smtp_tls_cert), str(s.smtp_tls_key))
        return ctx

    def _authenticator(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        s = self.settings
        if (
            not isinstance(auth_data, LoginPassword)
            or s.smtp_auth_user is None
            or s.smtp_auth_password is None
        ):
            return AuthResult(success=False, handled=False)
        ok = hmac.compare_digest(auth_data.login, s.smtp_auth_user.encode()) & hmac.compare_digest(
            auth_data.password, s.smtp_auth_password.encode()
        )
        if not ok:
            log.warning("SMTP AUTH failed from %s", session.peer)
        return AuthResult(success=bool(ok), handled=False)

    def _protocol(self) -> SMTP:
        s = self.settings
        auth = s.smtp_auth_user is not None
        return SMTP(
            self.handler,
            data_size_limit=s.mail_max_bytes,
            enable_SMTPUTF8=True,
            hostname=None,
            ident="chatserver ESMTP",
            tls_context=self._tls(),
            auth_required=auth,
            auth_require_tls=self._tls() is not None,
            authenticator=self._authenticator if auth else None,
            timeout=120,
            loop=asyncio.get_running_loop(),
        )

    async def start(self) -> None:
        self._tls()  # a bad certificate fails at start, not at the first client
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, self.host, self.port)
        sock = self._server.sockets[0].getsockname()
        self.port = int(sock[1])
        log.info("inbound SMTP on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):  # clients in the middle of a session: do not wait on them
                    await self._server.wait_closed()
            self._server = None
