"""Building the outbox from settings: the sender registry and the worker."""

from __future__ import annotations

import asyncio
import logging

from chatserver.bus import Bus
from chatserver.model.events import Event
from chatserver.outbox.email import EMAIL_KIND
from chatserver.outbox.registry import SenderRegistry
from chatserver.outbox.smtp import SmtpConfig, SmtpSender
from chatserver.outbox.store import OutboxQueries
from chatserver.outbox.worker import OutboxWorker, Publish
from chatserver.settings import Settings

log = logging.getLogger(__name__)


def build_registry(settings: Settings) -> SenderRegistry:
    registry = SenderRegistry()
    if settings.smtp_url:
        registry.register(EMAIL_KIND, SmtpSender(SmtpConfig.from_url(settings.smtp_url), settings.mail_from))
    return registry


def build_worker(
    settings: Settings, queries: OutboxQueries, registry: SenderRegistry, publish: Publish | None
) -> OutboxWorker:
    return OutboxWorker(
        queries,
        registry,
        publish,
        retry_s=settings.outbox_retry_s,
        max_attempts=settings.outbox_max_attempts,
        poll_s=min(1.0, settings.outbox_retry_s),
    )


class BusPublisher:
    """``publish`` for a process without a ChatService (``chatserver worker``): straight to the bus."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._tasks: set[asyncio.Task[bool]] = set()

    def __call__(self, items: list[tuple[str, Event]]) -> None:
        task = asyncio.get_running_loop().create_task(self.bus.publish(items))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
