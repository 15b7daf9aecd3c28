"""Which changes go to which webhook: the app's :class:`~chatserver.store.changes.ChangeEvents`.

The store calls it inside each change's own transaction (``chatserver/store/changes.py``), so a
webhook event is an outbox row (kind ``webhook``) that exists if and only if its change committed;
the outbox worker sends it with retries (``sender.py``). The events are built in ``events.py``.

It answers from a list of webhooks kept in memory: read at start, again every :data:`CACHE_S`, and at
once after a webhook is created or deleted through this process. So a webhook created through another
process is seen here at most :data:`CACHE_S` later (changes made here before then are not sent to
it). With no webhook, every answer is immediate and empty: a message costs nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import httpx

from chatserver.model.types import Message
from chatserver.outbox.registry import Delivery, NewDelivery
from chatserver.store.changes import ChangeEvents, ConversationChange
from chatserver.webhooks import events as ev
from chatserver.webhooks.sender import Target
from chatserver.webhooks.store import Webhook, WebhookQueries

log = logging.getLogger(__name__)

CACHE_S = 5.0
"""How often the list of webhooks is read again (one process learns of another's new webhook this late)."""


class WebhookService(ChangeEvents):
    def __init__(self, queries: WebhookQueries, *, refresh_s: float = CACHE_S) -> None:
        self.queries = queries
        self.refresh_s = refresh_s
        self._hooks: tuple[Webhook, ...] = ()
        self._types: frozenset[str] = frozenset()
        self._task: asyncio.Task[None] | None = None
        self.http: httpx.AsyncClient | None = None
        """The senders' HTTP client when this process sends (closed at stop)."""

    async def start(self) -> None:
        await self.reload()
        self._task = asyncio.create_task(self._refresh(), name="webhook-list")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.http is not None:
            await self.http.aclose()

    async def reload(self) -> None:
        """Read the webhooks again (after one was created or deleted here: seen by the next change)."""
        self._use(await self.queries.all())

    def _use(self, hooks: Sequence[Webhook]) -> None:
        self._hooks = tuple(hooks)
        self._types = frozenset(t for h in hooks for t in h.events)

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.reload()
            except Exception as exc:  # the list in memory stays as it was until the next read works
                log.warning("reading the webhooks failed (%s); using the list read before", exc)

    @property
    def webhooks(self) -> tuple[Webhook, ...]:
        return self._hooks

    # -- ChangeEvents: called inside the change's transaction, never blocking -----------------------------

    def messages(self, new: Sequence[Message]) -> list[NewDelivery]:
        if not self._types & _MESSAGE_TYPES:
            return []
        found = (ev.message_event(m) for m in new)
        return ev.deliveries((e for e in found if e is not None), self._hooks)

    def wants_conversation(self, *, created: bool) -> bool:
        return ("conversation.created" if created else "conversation.status_changed") in self._types

    def conversations(self, changes: Sequence[ConversationChange]) -> list[NewDelivery]:
        return ev.deliveries((ev.conversation_event(c) for c in changes), self._hooks)

    def wants_ticket(self) -> bool:
        return "ticket.updated" in self._types

    def tickets(self, snapshots: Sequence[dict[str, Any]]) -> list[NewDelivery]:
        return ev.deliveries((ev.ticket_event(t) for t in snapshots), self._hooks)

    # -- the sender's lookup -----------------------------------------------------------------------------

    async def resolve(self, d: Delivery) -> Target:
        """Where a delivery goes, read at send time (a deleted webhook is not sent: NotFound)."""
        hook = await self.queries.get(str(d.payload["webhook_id"]))
        return hook.url, hook.secret, d.payload["event"]


_MESSAGE_TYPES = frozenset({"message.created", "csat.submitted"})
