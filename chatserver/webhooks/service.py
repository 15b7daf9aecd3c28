"""Which events go to which webhook: a tap on what this process publishes after each commit (each change
is published once, by the process that made it), turned into outbox rows of kind ``webhook``.

Event: ``{id, type, created_at, data}``; ``id`` is the same on every retry and re-send (receivers dedupe
on it). Types: conversation.created, message.created (public messages), conversation.status_changed,
ticket.updated, csat.submitted.

The events are written right after the change committed, by one task in order; a process that dies in
between loses those events (the change itself is kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from chatserver.model.events import ConversationEvent, Event, MessageEvent, TicketEvent
from chatserver.model.ids import new_id, now_ms
from chatserver.model.types import AuthorKind, MessageKind, iso
from chatserver.outbox.registry import Delivery, NewDelivery
from chatserver.webhooks.sender import Target
from chatserver.webhooks.store import KIND, Webhook, WebhookQueries, delivery_key

log = logging.getLogger(__name__)

CACHE_S = 5.0
"""How long the list of webhooks is reused (one process learns of another's new webhook this late)."""
QUEUE_MAX = 10_000


def event(type_: str, data: Mapping[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    return {"id": event_id or new_id("evt_"), "type": type_, "created_at": iso(now_ms()), "data": dict(data)}


class WebhookService:
    def __init__(self, queries: WebhookQueries) -> None:
        self.queries = queries
        self._hooks: list[Webhook] = []
        self._loaded_at = -CACHE_S
        self._queue: asyncio.Queue[list[tuple[str, Event]]] = asyncio.Queue(QUEUE_MAX)
        self._seen: OrderedDict[tuple[str, str, int], None] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.http: httpx.AsyncClient | None = None
        """The senders' HTTP client when this process sends (closed at stop)."""

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="webhook-events")

    async def stop(self) -> None:
        if self._task is not None:
            with contextlib.suppress(TimeoutError):  # what is queued is written first (bounded)
                async with asyncio.timeout(2):
                    await self._queue.join()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.http is not None:
            await self.http.aclose()

    def changed(self) -> None:
        """A webhook was added or deleted here: reload before the next event."""
        self._loaded_at = -CACHE_S

    async def webhooks(self) -> list[Webhook]:
        loop = asyncio.get_running_loop()
        if loop.time() - self._loaded_at >= CACHE_S:
            self._hooks = await self.queries.all()
            self._loaded_at = loop.time()
        return self._hooks

    # -- the tap (synchronous, never blocks) --------------------------------------------------------------

    def tap(self, items: list[tuple[str, Event]]) -> None:
        if not self._hooks and asyncio.get_running_loop().time() - self._loaded_at < CACHE_S:
            return  # no webhook (as of a fresh read): nothing to queue for every message published
        wanted: list[tuple[str, Event]] = [
            (t, e) for t, e in items if isinstance(e, MessageEvent | ConversationEvent | TicketEvent)
        ]
        if not wanted:
            return
        try:
            self._queue.put_nowait(wanted)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("webhook event queue full: %d events not sent", len(wanted))

    def _first(self, kind: str, key: str, version: int) -> bool:
        """Each change once (a conversation event is published on two topics)."""
        k = (kind, key, version)
        if k in self._seen:
            return False
        self._seen[k] = None
        if len(self._seen) > 4096:
            self._seen.popitem(last=False)
        return True

    async def _run(self) -> None:
        while True:
            items = await self._queue.get()
            try:
                if await self.webhooks():
                    await self._handle(items)
            except Exception:
                log.exception("webhook events failed")
            finally:
                self._queue.task_done()

    async def _handle(self, items: list[tuple[str, Event]]) -> None:
        events: list[dict[str, Any]] = []
        for _, e in items:
            match e:
                case MessageEvent(message=m):
                    if not self._first("m", m.id, 0) or m.author.kind is AuthorKind.SYSTEM:
                        continue
                    if m.kind is MessageKind.CSAT:
                        events.append(
                            event(
                                "csat.submitted",
                                {"conversation_id": m.conversation_id, "message": m.to_wire()},
                            )
                        )
                    elif m.kind is not MessageKind.NOTE:
                        events.append(
                            event(
                                "message.created",
                                {"conversation_id": m.conversation_id, "seq": m.seq, "message": m.to_wire()},
                            )
                        )
                case ConversationEvent():
                    if not self._first("c", e.conversation_id, e.version):
                        continue
                    status = str(e.payload.get("status"))
                    changed, previous = await self.queries.status_change(e.conversation_id, status, e.version)
                    if e.version == 1:
                        events.append(event("conversation.created", {"conversation": e.payload}))
                    elif changed and previous is not None:  # (None: first seen now, e.g. a new webhook)
                        data = {"conversation": e.payload, "previous_status": previous, "status": status}
                        events.append(event("conversation.status_changed", data))
                case TicketEvent():
                    if self._first("t", str(e.number), e.version):
                        events.append(event("ticket.updated", {"ticket": e.payload}))
        if events:
            await self.queries.enqueue(self.deliveries(events, await self.webhooks()))

    @staticmethod
    def deliveries(events: Sequence[Mapping[str, Any]], hooks: Sequence[Webhook]) -> list[NewDelivery]:
        """One outbox row per (webhook, event) it subscribed to. Pure."""
        return [
            NewDelivery(KIND, delivery_key(h.id, str(ev["id"])), {"webhook_id": h.id, "event": dict(ev)})
            for ev in events
            for h in hooks
            if ev["type"] in h.events
        ]

    # -- the sender's lookup -----------------------------------------------------------------------------

    async def resolve(self, d: Delivery) -> Target:
        """Where a delivery goes, read at send time (a deleted webhook is not sent: NotFound)."""
        hook = await self.queries.get(str(d.payload["webhook_id"]))
        return hook.url, hook.secret, d.payload["event"]
