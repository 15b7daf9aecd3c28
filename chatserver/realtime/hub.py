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
    PENDING_TOPIC,
    QUEUE_TOPIC,
    ConversationEvent,
    Event,
    MessageEvent,
    conversation_topic,
)
from chatserver.model.status import WAITING_STATUSES
from chatserver.realtime.queueboard import QueueBoard, Watcher
from chatserver.store.store import Store

log = logging.getLogger(__name__)


class Subscriber(Protocol):
    def deliver(self, topic: str, event: Event) -> None: ...

    def seq_hint(self, conversation_id: str, last_seq: int) -> None: ...

    def resync(self) -> None: ...


PayloadFn = Callable[[str], Awaitable[ConversationEvent | None]]
WAITING = frozenset(s.value for s in WAITING_STATUSES)
LOCAL_TOPICS = frozenset({PENDING_TOPIC})
"""Topics the hub fills from other topics: never subscribed on the bus."""


class _BoardFeed:
    """The queue board's subscription to the queue topic: a change to the queue marks it dirty."""

    def __init__(self, board: QueueBoard) -> None:
        self._board = board

    def deliver(self, topic: str, event: Event) -> None:
        self._board.changed()

    def seq_hint(self, conversation_id: str, last_seq: int) -> None:
        return None

    def resync(self) -> None:
        self._board.changed()


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
        self._waiting: set[str] = set()
        """Conversations this process has seen waiting: a change that takes one out of the queue still
        reaches the queue's watchers (then it is forgotten)."""
        self._pending: set[str] = set()
        """The same for the pending part of the queue."""
        self.queue_board = QueueBoard(store.queue_counts)
        self._board_feed = _BoardFeed(self.queue_board)
        self.repairs = 0

    async def start(self) -> None:
        await self._bus.start(self.dispatch, self.resync)
        self._task = asyncio.create_task(self._reconcile_loop(), name="hub-reconcile")
        self.queue_board.start()

    async def stop(self) -> None:
        await self.queue_board.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._bus.stop()

    @property
    def session_count(self) -> int:
        return len({s for subs in self._subs.values() for s in subs if s is not self._board_feed})

    async def subscribe(self, sub: Subscriber, topic: str) -> None:
        first = not self._subs[topic]
        self._subs[topic].add(sub)
        if first and topic not in LOCAL_TOPICS:
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
                if topic not in LOCAL_TOPICS:
                    await self._bus.unsubscribe(topic)

    async def watch_summary(self, watcher: Watcher) -> None:
        """``watcher`` gets the queue summary (now and on every change) until :meth:`unwatch_summary`."""
        if not self.queue_board.watchers:
            await self.subscribe(self._board_feed, QUEUE_TOPIC)
        self.queue_board.attach(watcher)

    async def unwatch_summary(self, watcher: Watcher) -> None:
        self.queue_board.detach(watcher)
        if not self.queue_board.watchers:
            await self.unsubscribe_all(self._board_feed, {QUEUE_TOPIC})
            if QUEUE_TOPIC not in self._subs:  # no longer told of departures: forget who waited
                self._waiting.clear()
                self._pending.clear()

    def note_waiting(self, conversations: list[tuple[str, str]]) -> None:
        """A snapshot showed these (id, status) waiting: their departure must reach the watchers."""
        for cid, status in conversations:
            self._waiting.add(cid)
            if status == "pending":
                self._pending.add(cid)

    @staticmethod
    def _joins(members: set[str], cid: str, inside: bool) -> bool:
        """Whether a change concerns a set's watchers: the conversation is in it, or has just left it."""
        if inside:
            members.add(cid)
            return True
        if cid in members:
            members.discard(cid)
            return True
        return False

    def _queue_change(self, event: ConversationEvent) -> None:
        """Every conversation change comes on the queue topic: pass on the waiting queue's changes to its
        watchers, and the pending ones' to every agent (anyone may take a pending conversation)."""
        cid, status = event.conversation_id, event.payload.get("status")
        if self._joins(self._pending, cid, status == "pending"):
            for sub in list(self._subs.get(PENDING_TOPIC, ())):
                sub.deliver(PENDING_TOPIC, event)
        if self._joins(self._waiting, cid, status in WAITING):
            for sub in list(self._subs.get(QUEUE_TOPIC, ())):
                sub.deliver(QUEUE_TOPIC, event)

    def _forget(self, topic: str) -> None:
        if topic.startswith("conv:"):
            self._seq.pop(topic[5:], None)
            self._version.pop(topic[5:], None)

    def dispatch(self, topic: str, event: Event) -> None:
        if topic == QUEUE_TOPIC and isinstance(event, ConversationEvent):
            self._queue_change(event)
            return
        if isinstance(event, MessageEvent):
            cid = event.message.conversation_id
            if event.message.seq > self._seq.get(cid, 0):
                self._seq[cid] = event.message.seq
        elif (
            isinstance(event, ConversationEvent)
            and topic.startswith("conv:")
            and event.version > self._version.get(event.conversation_id, 0)
        ):
            self._version[event.conversation_id] = event.version
        for sub in list(self._subs.get(topic, ())):
            sub.deliver(topic, event)

    async def resync(self) -> None:
        """The bus may have lost events: repair every conversation and refresh agents' queues."""
        await self.reconcile()
        self.queue_board.changed()
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
        return {
            "topics": len(self._subs),
            "sessions": self.session_count,
            "repairs": self.repairs,
            "queue_watchers": self.queue_board.watchers,
        }
