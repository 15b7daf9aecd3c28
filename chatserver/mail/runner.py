"""The email channel's running parts (inbound SMTP, IMAP pollers) for `serve` (embedded mode),
`worker` and `smtp`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from chatserver.bus import Bus, RedisBus
from chatserver.chat import ChatService
from chatserver.mail.imap import ImapSupervisor
from chatserver.mail.ingest import Ingestor
from chatserver.mail.outbound import install_email_outbound
from chatserver.mail.smtp import InboundSmtp
from chatserver.mail.store import MailStore
from chatserver.routing.lease import Lease, LocalLease, RedisLease
from chatserver.settings import Settings
from chatserver.store.db import make_engine
from chatserver.store.migrate import upgrade

if TYPE_CHECKING:
    from chatserver.tickets.service import TicketService

log = logging.getLogger(__name__)

IMAP_LEASE_TTL_S = 30.0


async def _no_fence() -> int:
    return 0


class MailServices:
    def __init__(self, settings: Settings, service: ChatService, bus: Bus) -> None:
        self.settings = settings
        self.mail = MailStore(service.store.db)
        self.ingestor = Ingestor(settings, service, self.mail)
        self.smtp: InboundSmtp | None = None
        self.imap: ImapSupervisor | None = None
        self._bus = bus

    def _lease(self, inbox_id: str) -> Lease:
        if isinstance(self._bus, RedisBus):
            lease = RedisLease(
                self._bus.client, _no_fence, ttl_s=IMAP_LEASE_TTL_S, prefix=self.settings.redis_prefix
            )
            lease.key = f"{self.settings.redis_prefix}imap:{inbox_id}"
            return lease
        return LocalLease(_no_fence)

    async def start(self, *, smtp: bool = True, imap: bool = True) -> None:
        if smtp and self.settings.smtp_listen:
            self.smtp = InboundSmtp(self.settings, self.ingestor, self.mail)
            await self.smtp.start()
        if imap:
            self.imap = ImapSupervisor(
                self.ingestor, self.mail, poll_s=self.settings.imap_poll_s, lease_for=self._lease
            )
            await self.imap.start()

    async def stop(self) -> None:
        if self.imap is not None:
            await self.imap.stop()
        if self.smtp is not None:
            await self.smtp.stop()


def ticket_service(settings: Settings, service: ChatService) -> TicketService:
    """Tickets for a process that takes mail in without the web app (``tickets: always`` inboxes open
    them, with their acknowledgement mail, which the outbox sends)."""
    from chatserver.outbox import OutboxQueries
    from chatserver.tickets.service import TicketService
    from chatserver.tickets.sla import SlaService
    from chatserver.tickets.store import TicketQueries

    queries = TicketQueries(service.store.db)
    tickets = TicketService(
        settings, service.store, service, queries, OutboxQueries(service.store.db), wake_outbox=None
    )
    tickets.sla = SlaService(service.store, queries)
    service.tickets = tickets
    tickets.start()
    return tickets


@contextlib.asynccontextmanager
async def standalone(
    settings: Settings, *, smtp: bool = True, imap: bool = True
) -> AsyncIterator[MailServices]:
    """The mail services outside the web process (`chatserver worker`, `chatserver smtp`): their own
    store, the bus (so web processes show new mail live) and the conversation service."""
    engine = make_engine(settings.database_url, pool_size=4)
    if settings.embedded:
        await upgrade(engine)
    from chatserver.app import build_service

    store, bus, _, service = await build_service(settings, engine)
    from chatserver.webhooks.setup import start_events

    hooks = await start_events(store.db)  # mail's conversations, messages and tickets are sent too
    tickets = ticket_service(settings, service)
    install_email_outbound(settings, service)
    mail = MailServices(settings, service, bus)
    try:
        await mail.start(smtp=smtp, imap=imap)
        yield mail
    finally:
        await mail.stop()
        await tickets.stop()
        await hooks.stop()
        if service.translation is not None:
            await service.translation.stop()
        await service.stop()
        await bus.stop()
        await store.close()
