"""The Bus contract.

A bus delivers events published on a topic to every process subscribed to that topic, best effort:
the database is the source of truth, and a process learns from ``on_resync`` when it may have missed
events (a Redis reconnect), so it can repair from the store (guarantee 3).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence

from chatserver.model.events import Event

Handler = Callable[[str, Event], None]
"""Called in the event loop for every event on a subscribed topic; must not block."""
ResyncHandler = Callable[[], Awaitable[None]]


class Bus(ABC):
    def __init__(self) -> None:
        self._handler: Handler | None = None
        self._on_resync: ResyncHandler | None = None
        self.topics: set[str] = set()

    async def start(self, handler: Handler, on_resync: ResyncHandler | None = None) -> None:
        self._handler = handler
        self._on_resync = on_resync
        await self._start()

    async def _start(self) -> None:  # noqa: B027 - optional hook
        pass

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    async def publish(self, items: Sequence[tuple[str, Event]]) -> bool:
        """Publish events in order. Returns False if they could not be sent (never raises for that)."""

    @abstractmethod
    async def subscribe(self, topic: str) -> None: ...

    @abstractmethod
    async def unsubscribe(self, topic: str) -> None: ...

    @abstractmethod
    async def ping(self) -> None:
        """Raise if the bus is not usable (readiness)."""

    @property
    @abstractmethod
    def shared(self) -> bool:
        """True when the bus reaches other processes."""

    def _deliver(self, topic: str, event: Event) -> None:
        if self._handler is not None and topic in self.topics:
            self._handler(topic, event)
