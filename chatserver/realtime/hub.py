"""Local fan-out of bus events to the sessions of this process, plus repair.

The hub subscribes the process to a bus topic while at least one local session needs it. It keeps the
highest seq and version it has seen per conversation; a periodic reconciliation (and every bus resync)
compares them with the database and hands sessions a hint to refetch what the bus lost (guarantee 3).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from chatserver.bus import Bus
from chatserver.errors import StoreError
from chatserver.model.events import (
    AGENTS_TOPIC,
    ConversationEvent,
    Event,
    MessageEvent,
    conversation_topic,
)
from chatserver.store.store import Store

log = logging.getLogger(__name__)


class Subscriber(Protocol):
    def deliver(self, topic: str, event: Event) -> None: ...

    def seq_hint(self, conversation_id: str, last_seq: int) -> None: ...

    def resync(self) -> None: ...


PayloadFn = Callable[[str], Awaitable[ConversationEvent | None]]


class Hub:
    def __init__(self, bus: Bus, store: Store, payload: PayloadFn, *, reconcile_s: float) -> None:
        self._bus = bus
        self._store = store
        self._payload = payload
        self._reconcile_s = reconcile_s
        self._subs: dict[str, set[Subscriber]] = defaultdict(set)
        self._seq: dict[str, int] = {}
        self._version: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self.repairs = 0

    async def start(self) -> None:
        await self._bus.start(self.dispatch, self.resync)
        self._task = asyncio.create_task(self._reconcile_loop(), name="hub-reconcile")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._bus.stop()

    @property
    def session_count(self) -> int:
        return len({s for subs in self._subs.values() for s in subs})

    async def subscribe(self, sub: Subscriber, topic: str) -> None:
        first = not self._subs[topic]
        self._subs[topic].add(sub)
        if first:
            await self._bus.subscribe(topic)

    async def unsubscribe_all(self, sub: Subscriber, topics: set[str]) -> None:
        for topic in topics:
            subs = self._subs.get(topic)
            if subs is None:
                continue
            subs.discard(sub)
            if not subs:
                del self._subs[topic]
                self._forget(topic)
                await self._bus.unsubscribe(topic)

    def _forget(self, topic: str) -> None:
        if topic.startswith("conv:"):
            self._seq.pop(topic[5:], None)
            self._version.pop(topic[5:], None)

    def dispatch(self, topic: str, event: Event) -> None:
        if isinstance(event, MessageEvent):
            cid = event.message.conversation_id
            if event.message.seq > self._seq.get(cid, 0):
                self._seq[cid] = event.message.seq
        elif (
            isinstance(event, ConversationEvent)
            and topic != AGENTS_TOPIC
            and event.version > self._version.get(event.conversation_id, 0)
        ):
            self._version[event.conversation_id] = event.version
        for sub in list(self._subs.get(topic, ())):
            sub.deliver(topic, event)

    async def resync(self) -> None:
        """The bus may have lost events: repair every conversation and refresh agents' queues."""
        await self.reconcile()
        for sub in list(self._subs.get(AGENTS_TOPIC, ())):
            sub.resync()

    async def reconcile(self) -> None:
        conv_ids = [t[5:] for t in self._subs if t.startswith("conv:")]
        if not conv_ids:
            return
        heads = await self._store.conversation_heads(conv_ids)
        for cid, (last_seq, version) in heads.items():
            topic = conversation_topic(cid)
            if last_seq > self._seq.get(cid, 0):
                if cid in self._seq:
                    self.repairs += 1
                self._seq[cid] = last_seq
                for sub in list(self._subs.get(topic, ())):
                    sub.seq_hint(cid, last_seq)
            if version > self._version.get(cid, 0):
                known = cid in self._version
                self._version[cid] = version
                if known:
                    self.repairs += 1
                    event = await self._payload(cid)
                    if event is not None:
                        for sub in list(self._subs.get(topic, ())):
                            sub.deliver(topic, event)

    async def _reconcile_loop(self) -> None:
        while True:
            await asyncio.sleep(self._reconcile_s)
            try:
                await self.reconcile()
            except StoreError as exc:  # the database is away: the next round repairs
                log.warning("reconcile skipped: %s", exc)
            except Exception:
                log.exception("reconcile failed")

    def stats(self) -> dict[str, Any]:
        return {"topics": len(self._subs), "sessions": self.session_count, "repairs": self.repairs}
