"""The services of one running app, built by the lifespan and reached through ``app.state.ctx``."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from chatserver.adapterapi.service import AdapterService
from chatserver.auth.login import LoginGuard
from chatserver.bus import Bus
from chatserver.channels.inbound import Inbound
from chatserver.chat import ChatService
from chatserver.outbox import OutboxQueries, OutboxWorker, SenderRegistry
from chatserver.presence import Presence
from chatserver.realtime.hub import Hub
from chatserver.routing.service import Router
from chatserver.settings import Settings
from chatserver.store.store import Store
from chatserver.tickets.sla import SlaWorker
from chatserver.webhooks.service import WebhookService


@dataclass
class Context:
    settings: Settings
    store: Store
    bus: Bus
    presence: Presence
    service: ChatService
    hub: Hub
    login: LoginGuard
    router: Router | None = None
    inbound: Inbound | None = None
    outbox: OutboxQueries | None = None
    senders: SenderRegistry | None = None
    outbox_worker: OutboxWorker | None = None
    """Running in this process when ``workers_in_serve``."""
    sla_worker: SlaWorker | None = None
    channel_client: httpx.AsyncClient | None = None
    """The HTTP client of channel replies (the ``channel`` outbox sender), closed on shutdown."""
    adapters: AdapterService | None = None
    """The adapter API (bots, custom channels)."""
    webhooks: WebhookService | None = None
    """Outgoing webhooks."""
