"""In-process bus: one process, no network; the twin of RedisBus for the embedded mode and tests."""

from __future__ import annotations

from collections.abc import Sequence

from chatserver.bus.base import Bus
from chatserver.model.events import Event


class MemoryBus(Bus):
    shared = False

    async def stop(self) -> None:
        self.topics.clear()

    async def publish(self, items: Sequence[tuple[str, Event]]) -> bool:
        for topic, event in items:
            self._deliver(topic, event)
        return True

    async def subscribe(self, topic: str) -> None:
        self.topics.add(topic)

    async def unsubscribe(self, topic: str) -> None:
        self.topics.discard(topic)

    async def ping(self) -> None:
        return None
