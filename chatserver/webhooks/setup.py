"""Wiring: the ``webhook`` and ``adapter`` outbox senders (every process that runs an outbox worker)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from chatserver.adapterapi import frames as af
from chatserver.adapterapi.store import AdapterQueries
from chatserver.errors import NotFound
from chatserver.model.ids import new_id
from chatserver.model.types import iso
from chatserver.outbox.registry import Delivery, SenderRegistry
from chatserver.settings import Settings
from chatserver.store.db import Database
from chatserver.webhooks.sender import MAX_ATTEMPTS, HttpPoster, Target, WebhookSender
from chatserver.webhooks.service import WebhookService
from chatserver.webhooks.store import KIND, WebhookQueries

ADAPTER_KIND = "adapter"
"""A custom channel's reply, POSTed (signed) to the adapter's URL while it has no socket open."""
ATTEMPTS = {KIND: MAX_ATTEMPTS, ADAPTER_KIND: MAX_ATTEMPTS}


def http_client() -> httpx.AsyncClient:
    # no proxies from the environment: the sender connects to the address it checked
    return httpx.AsyncClient(trust_env=False, timeout=httpx.Timeout(30.0), headers={"Accept": "*/*"})


def register_senders(registry: SenderRegistry, settings: Settings, db: Database) -> httpx.AsyncClient:
    """Register both senders; returns the HTTP client to close at shutdown."""
    client = http_client()
    poster = HttpPoster(
        client, timeout_s=settings.webhook_timeout_s, allow_private=settings.webhook_allow_private
    )
    hooks = WebhookService(WebhookQueries(db))
    registry.register(KIND, WebhookSender(poster, hooks.resolve))
    registry.register(ADAPTER_KIND, WebhookSender(poster, adapter_resolver(AdapterQueries(db))))
    return client


async def start_events(db: Database) -> WebhookService:
    """Webhook events for every change written through ``db`` (in the change's own transaction, see
    store/changes.py): the list of webhooks is read now and kept fresh. Stop it at shutdown."""
    hooks = WebhookService(WebhookQueries(db))
    await hooks.start()
    db.changes = hooks
    return hooks


def adapter_resolver(queries: AdapterQueries) -> Callable[[Delivery], Awaitable[Target]]:
    async def resolve(d: Delivery) -> Target:
        adapter = await queries.get(str(d.payload["adapter_id"]))
        if adapter.revoked_at is not None or not adapter.url or not adapter.secret:
            raise NotFound("the adapter was revoked or has no url")
        if d.message_id is None:
            raise NotFound("the delivery has no message")
        message, conv = await queries.message_in(d.message_id)
        identity = await queries.identity(conv.contact_id, conv.channel)
        external_id = identity.split(":", 1)[1] if identity and ":" in identity else identity
        event = {
            "id": d.idempotency_key,
            "type": "delivery",
            "created_at": iso(d.created_at),
            "data": af.delivery(conv.id, message.to_wire(), external_id, conv.inbox_id),
        }
        return adapter.url, adapter.secret, event

    return resolve


def new_adapter_key() -> str:
    return "adapter:" + new_id("dv_")
