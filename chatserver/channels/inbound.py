"""Apply an adapter's inbound events: messages into conversations (after commit), the rest logged.

Shared by the webhook endpoints and Telegram polling. Messages of one sender in one inbox are stored one
at a time (a striped lock), so a platform's concurrent retries of one message never make two
conversations or two messages in this process; across processes the platform id dedupe and the
identity's primary key do. With an HTTP client, the files of a message are downloaded and stored with it
(:mod:`chatserver.channels.media`); without one, the message only names them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from adapters.base import DeliveryStatus, Echo, Event, Ignored, InboundMessage
from chatserver.channels.inboxes import adapter_for
from chatserver.channels.media import MediaFetcher
from chatserver.channels.receipts import ReceiptQueries
from chatserver.chat import ChatService
from chatserver.model.types import Author, Inbox, Message
from chatserver.outbox.worker import delivery_event

log = logging.getLogger(__name__)

STRIPES = 64
EARLY_REPORT_RETRY_S = 0.5
EARLY_REPORT_ATTEMPTS = 6
"""A report that overtook the worker's record is applied again after 0.5, 1, 2 ... s (about 30 s)."""
DEFAULT_NAMES = {
    "telegram": "Telegram user",
    "messenger": "Messenger user",
    "instagram": "Instagram user",
    "whatsapp": "WhatsApp user",
    "sms": "SMS user",
}


@dataclass
class Outcome:
    stored: list[Message] = field(default_factory=list)
    duplicates: int = 0
    statuses: list[DeliveryStatus] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    echoes: int = 0


class Inbound:
    def __init__(self, service: ChatService, client: httpx.AsyncClient | None = None) -> None:
        self.service = service
        self.media = (
            MediaFetcher(client, service.files) if client is not None and service.files is not None else None
        )
        self.receipts = ReceiptQueries(service.store.db)
        self._locks = [asyncio.Lock() for _ in range(STRIPES)]
        self._later: set[asyncio.Task[None]] = set()

    async def stop(self) -> None:
        """Cancel the pending re-applications of early delivery reports (the process is stopping)."""
        tasks = list(self._later)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _lock(self, inbox_id: str, sender: str) -> asyncio.Lock:
        return self._locks[zlib.crc32(f"{inbox_id}\0{sender}".encode()) % STRIPES]

    async def apply(self, inbox: Inbox, events: Sequence[Event]) -> Outcome:
        """Store the messages (returns once each is committed); log what was not stored, in one line."""
        out = Outcome()
        for event in events:
            if isinstance(event, InboundMessage):
                async with self._lock(inbox.id, event.sender.external_id):
                    message, duplicate = await self._store(inbox, event)
                if duplicate:
                    out.duplicates += 1
                else:
                    out.stored.append(message)
            elif isinstance(event, DeliveryStatus):
                out.statuses.append(event)
            elif isinstance(event, Echo):
                out.echoes += 1
            elif isinstance(event, Ignored):
                out.ignored.append(event.what)
        if out.statuses:
            await self._apply_statuses(inbox, out.statuses)
        if out.ignored:
            log.info("%s inbox %s: nothing stored for %s", inbox.channel, inbox.id, "; ".join(out.ignored))
        return out

    async def _apply_statuses(self, inbox: Inbox, statuses: Sequence[DeliveryStatus]) -> None:
        """The platform's delivery states onto our deliveries (forward only), each change published to
        the conversation as ``message.status``; a report about nothing we sent is dropped. A report that
        overtook the worker (the platform answered, the worker has not recorded ``sent`` yet) is applied
        again a little later, a few times."""
        early = await self._apply_now(inbox, statuses)
        if early:
            task = asyncio.create_task(self._apply_later(inbox, early))
            self._later.add(task)
            task.add_done_callback(self._later.discard)

    async def _apply_now(self, inbox: Inbox, statuses: Sequence[DeliveryStatus]) -> list[DeliveryStatus]:
        changed, early = await self.receipts.apply_all(inbox.id, statuses)
        items = [item for d in changed for item in delivery_event(d)]
        if items:
            self.service.publish(items)
        return early

    async def _apply_later(self, inbox: Inbox, statuses: list[DeliveryStatus]) -> None:
        delay = EARLY_REPORT_RETRY_S
        for _ in range(EARLY_REPORT_ATTEMPTS):
            await asyncio.sleep(delay)
            try:
                statuses = await self._apply_now(inbox, statuses)
            except Exception:  # the database is down: the platform's next report will do
                log.exception("%s inbox %s: applying delivery reports failed", inbox.channel, inbox.id)
                return
            if not statuses:
                return
            delay *= 2
        log.info(
            "%s inbox %s: %d delivery reports for deliveries still being sent were dropped",
            inbox.channel,
            inbox.id,
            len(statuses),
        )

    async def _store(self, inbox: Inbox, event: InboundMessage) -> tuple[Message, bool]:
        profile = event.sender
        name = (
            profile.name or profile.phone or profile.username or DEFAULT_NAMES.get(inbox.channel, "Customer")
        )
        media = self.media
        adapter = adapter_for(inbox.channel)
        files = None
        if media is not None and adapter is not None and event.attachments:

            async def files(conversation_id: str, contact: Author) -> tuple[str, tuple[dict[str, Any], ...]]:
                assert media is not None and adapter is not None
                return await media.store(adapter, inbox, event, conversation_id, contact)

        return await self.service.receive_channel_message(
            inbox,
            identity=profile.external_id,
            external_id=event.external_id,
            text=event.display_text(),
            name=name[:200],
            language=profile.language,
            phone=profile.phone,
            sent_at_ms=event.timestamp_ms,
            files=files,
        )
