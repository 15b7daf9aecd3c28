"""Wiring the adapter API and outgoing webhooks into a running app (called from ``build_context``)."""

from __future__ import annotations

from collections.abc import Sequence

from chatserver.adapterapi.model import AdapterKind
from chatserver.adapterapi.service import AdapterService, adapter_key
from chatserver.adapterapi.store import AdapterQueries
from chatserver.channels.inboxes import API
from chatserver.context import Context
from chatserver.model.events import AccessEvent, agent_topic
from chatserver.model.types import Author, Conversation
from chatserver.outbox.registry import NewDelivery
from chatserver.webhooks.setup import ADAPTER_KIND, ATTEMPTS, new_adapter_key, register_senders, start_events


async def build_adapter_api(c: Context) -> None:
    settings = c.settings
    queries = AdapterQueries(c.store.db)
    adapters = AdapterService(
        c.service,
        queries,
        c.presence,
        grace_s=settings.bot_grace_s,
        handoff_words=settings.bot_handoff_words,
    )
    adapters.close_local = lambda adapter_id: c.hub.dispatch(
        agent_topic(adapter_id), AccessEvent(adapter_id, "deactivated")
    )
    await adapters.start()
    c.adapters = adapters
    c.service.adapters = adapters
    hooks = await start_events(c.store.db)  # every change writes its webhook events in its transaction
    c.webhooks = hooks
    if c.senders is not None:
        hooks.http = register_senders(c.senders, settings, c.store.db)
    if c.outbox_worker is not None:
        c.outbox_worker.max_attempts_by_kind.update(ATTEMPTS)

    async def channel_reply(conv: Conversation, author: Author, text: str) -> Sequence[NewDelivery]:
        """A reply in a custom channel's conversation: a ``delivery`` frame if its adapter is connected
        (anywhere), else a signed POST to the adapter's URL through the outbox."""
        out: list[NewDelivery] = []
        for adapter in await queries.all():
            if adapter.kind is not AdapterKind.CHANNEL or adapter.revoked_at is not None:
                continue
            if not adapter.serves(conv.inbox_id) or not adapter.url:
                continue
            if await c.presence.connected([adapter_key(adapter.id)]):
                continue
            out.append(NewDelivery(ADAPTER_KIND, new_adapter_key(), {"adapter_id": adapter.id}))
        return out

    c.service.outbound[API] = channel_reply


async def close_adapter_api(c: Context) -> None:
    if c.webhooks is not None:
        await c.webhooks.stop()
    if c.adapters is not None:
        await c.adapters.stop()
