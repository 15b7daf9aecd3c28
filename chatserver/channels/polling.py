"""Telegram long polling, for servers without a public URL (an inbox with ``"mode": "polling"``).

One task per polling inbox calls getUpdates with the inbox's stored cursor (the last update id + 1,
which also confirms the earlier updates to Telegram), stores the messages (deduped like webhooks), and
only then moves the cursor forward in the database: a restart neither re-imports nor misses updates.
It runs in ``chatserver worker``, or inside ``serve`` in embedded mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import httpx

from adapters.telegram import get_updates, parse_update
from chatserver.channels.inbound import Inbound
from chatserver.errors import PermanentDeliveryError, TemporaryDeliveryError
from chatserver.model.types import Inbox
from chatserver.store.store import Store

log = logging.getLogger(__name__)


def polls(inbox: Inbox) -> bool:
    return inbox.channel == "telegram" and inbox.config.get("mode") == "polling"


class TelegramPollers:
    def __init__(
        self,
        store: Store,
        inbound: Inbound,
        client: httpx.AsyncClient,
        *,
        timeout_s: int = 25,
        rescan_s: float = 30.0,
        error_pause_s: float = 60.0,
    ) -> None:
        self.store = store
        self.inbound = inbound
        self.client = client
        self.timeout_s = timeout_s
        self.rescan_s = rescan_s
        self.error_pause_s = error_pause_s
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._supervisor: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._supervisor = asyncio.create_task(self._supervise(), name="telegram-pollers")

    async def stop(self) -> None:
        tasks = [t for t in (self._supervisor, *self._tasks.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def poll_once(self, inbox: Inbox) -> int:
        """One getUpdates round for ``inbox``; returns how many updates it handled."""
        offset = await self.store.channel_cursor(inbox.id)
        updates = await get_updates(self.client, inbox.config, offset, self.timeout_s)
        last = None
        for update in updates:
            await self.inbound.apply(inbox, [parse_update(update)])
            if isinstance(update, dict) and isinstance(update.get("update_id"), int):
                last = max(last or 0, update["update_id"])
        if last is not None:
            await self.store.set_channel_cursor(inbox.id, last + 1)
        return len(updates)

    async def _poll(self, inbox: Inbox) -> None:
        backoff = 1.0
        while True:
            try:
                await self.poll_once(inbox)
                backoff = 1.0
            except TemporaryDeliveryError as exc:
                wait = exc.retry_after_s if exc.retry_after_s is not None else backoff
                log.warning("telegram inbox %s: %s; polling again in %.0f s", inbox.id, exc.reason, wait)
                await asyncio.sleep(wait)
                backoff = min(backoff * 2, 60.0)
            except PermanentDeliveryError as exc:
                log.error(
                    "telegram inbox %s: %s; polling again in %.0f s", inbox.id, exc.reason, self.error_pause_s
                )
                await asyncio.sleep(self.error_pause_s)
            except Exception:  # the database or a bug: never let the poller die, try again later
                log.exception("telegram inbox %s: polling failed", inbox.id)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60.0)

    async def _supervise(self) -> None:
        """Keep one poller per polling inbox, following inboxes created and deleted meanwhile."""
        while True:
            try:
                wanted = {i.id: i for i in await self.store.list_inboxes() if polls(i)}
            except Exception as exc:  # keep the pollers running; look again later
                log.warning("listing inboxes for polling failed: %s", exc)
                await asyncio.sleep(self.rescan_s)
                continue
            for inbox_id in list(self._tasks):
                if inbox_id not in wanted:
                    self._tasks.pop(inbox_id).cancel()
            for inbox_id, inbox in wanted.items():
                if inbox_id not in self._tasks or self._tasks[inbox_id].done():
                    self._tasks[inbox_id] = asyncio.create_task(self._poll(inbox), name=f"poll-{inbox_id}")
            await asyncio.sleep(self.rescan_s)


@contextlib.asynccontextmanager
async def running_pollers(store: Store, inbound: Inbound) -> AsyncIterator[TelegramPollers]:
    """Pollers with their own HTTP client (its timeout past the long poll's), stopped on exit."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(40.0, connect=10.0)) as client:
        pollers = TelegramPollers(store, inbound, client)
        await pollers.start()
        try:
            yield pollers
        finally:
            await pollers.stop()
