"""The event publisher: events go out on the bus in the order they were committed, through one bounded
buffer.

While the bus is down, events wait in the buffer and are retried with backoff, so other processes get
them as soon as it is back. The buffer holds at most ``limit`` events (counting the batch in flight);
beyond that the **oldest** waiting events are dropped and counted in :attr:`Publisher.dropped`. Dropping
is safe because the bus is only a notification: the database is the source of truth, and subscribers
repair what they missed by seq gap detection and reconciliation (guarantee 3). Keeping the newest
ones means the first events after an outage are the freshest state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable

from chatserver.bus.base import Bus
from chatserver.model.events import Event

log = logging.getLogger(__name__)

BATCH = 512
LIMIT = 20_000


class Publisher:
    def __init__(
        self,
        bus: Bus,
        *,
        limit: int = LIMIT,
        batch: int = BATCH,
        backoff_s: tuple[float, float] = (0.05, 2.0),
    ) -> None:
        if limit < 1 or batch < 1:
            raise ValueError("limit and batch must be positive")
        self.bus = bus
        self.limit = limit
        self.batch = min(batch, limit)
        self._backoff = backoff_s
        self._pending: deque[tuple[str, Event]] = deque()
        self._in_flight = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        """Events dropped because the buffer was full (repaired from the database by subscribers)."""
        self.published = 0

    @property
    def queued(self) -> int:
        """Events waiting, including the batch in flight."""
        return len(self._pending) + self._in_flight

    def publish(self, items: Iterable[tuple[str, Event]]) -> None:
        """Queue events (already committed) in order; never blocks."""
        self._pending.extend(items)
        over = len(self._pending) + self._in_flight - self.limit
        if over > 0:
            over = min(over, len(self._pending))
            for _ in range(over):
                self._pending.popleft()
            if self.dropped == 0 or self.dropped // 1000 != (self.dropped + over) // 1000:
                log.warning(
                    "bus publish buffer full (%d): dropped the %d oldest events, %d in all "
                    "(subscribers repair from the database)",
                    self.limit,
                    over,
                    self.dropped + over,
                )
            self.dropped += over
        if self._pending:
            self._idle.clear()
            self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="event-publisher")

    async def stop(self, flush_s: float = 2.0) -> None:
        """Let what is queued go out (bounded wait), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(flush_s):
                await self._idle.wait()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        backoff = self._backoff[0]
        while True:
            if not self._pending:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [self._pending.popleft() for _ in range(min(self.batch, len(self._pending)))]
            self._in_flight = len(batch)
            try:
                ok = await self.bus.publish(batch)
            except Exception:  # the bus reports its own failures; never let the publisher die
                log.exception("publish failed")
                ok = False
            finally:
                self._in_flight = 0
            if ok:
                self.published += len(batch)
                backoff = self._backoff[0]
                continue
            # put the batch back in front (order kept), then trim to the limit from the oldest
            self._pending.extendleft(reversed(batch))
            over = len(self._pending) - self.limit
            if over > 0:
                for _ in range(over):
                    self._pending.popleft()
                self.dropped += over
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._backoff[1])


__all__ = ["Publisher"]
