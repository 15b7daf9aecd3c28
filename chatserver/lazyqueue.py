"""A FIFO with one consumer and no idle cost: the deque exists only while items wait, and one wake-up
future only while the consumer waits. An ``asyncio.Queue`` costs about 2 KiB more per instance and an
empty deque 0.76 KiB, which matters with one or two per connection and thousands of idle visitors.
Used for a session's outbound items (chatserver/realtime/outbox.py) and the WebSocket protocol's receive
queue (chatserver/transport/websocket.py)."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class LazyQueue(Generic[T]):
    """``put_nowait`` (``asyncio.QueueFull`` past ``limit``, if any), ``get``, ``empty``, ``qsize``."""

    __slots__ = ("_items", "_limit", "_waiter")

    def __init__(self, limit: int | None = None) -> None:
        self._items: deque[T] | None = None
        self._limit = limit
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: T) -> None:
        items = self._items
        if items is None:
            items = self._items = deque()
        elif self._limit is not None and len(items) >= self._limit:
            raise asyncio.QueueFull
        items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    async def get(self) -> T:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items.popleft()
        if not self._items:
            self._items = None  # an idle consumer keeps no deque
        return item


__all__ = ["LazyQueue"]
