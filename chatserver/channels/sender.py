"""The outbox sender of channel replies (kind ``channel``): one delivery -> the platform's send API.

The payload (written with the reply, see :mod:`chatserver.channels.outbound`) names the inbox, the
recipient, the text or template and the files (signed links, sent after the text); everything else is
read at send time:

- the inbox's config (a rotated token is used at once);
- the text in the contact's language when translation is on: the message's stored translation, else a
  translation now; on any failure the original (a reply is never held back by translation). The text
  of the first attempt is kept on the delivery, so a retry continues the same text;
- the parts already accepted (``channel_receipts``): a retry sends only the rest.

Errors come from the adapter as they are: temporary (429, 5xx, timeouts, with the platform's hint) or
permanent (4xx, with the platform's reason); the outbox worker retries or fails the delivery.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from adapters.base import Outbound, OutboundAttachment, Template
from chatserver.channels.inboxes import adapter_for
from chatserver.channels.receipts import ReceiptQueries
from chatserver.errors import NotFound, PermanentDeliveryError
from chatserver.model.types import Message
from chatserver.outbox.registry import Delivery, SenderRegistry
from chatserver.store.store import Store
from chatserver.translation.service import TranslationResult, same_language

log = logging.getLogger(__name__)

CHANNEL_KIND = "channel"
SEND_TIMEOUT = httpx.Timeout(30.0, connect=10.0)

Translate = Callable[[str, str | None, str], Awaitable[TranslationResult]]


def channel_client() -> httpx.AsyncClient:
    """The one HTTP client of a process's channel sends (connection reuse, bounded waits)."""
    return httpx.AsyncClient(
        timeout=SEND_TIMEOUT, limits=httpx.Limits(max_connections=50, max_keepalive_connections=20)
    )


def reply_payload(
    *,
    inbox_id: str,
    to: str,
    text: str,
    status_callback: str | None = None,
    template: Template | None = None,
    attachments: tuple[OutboundAttachment, ...] = (),
) -> dict[str, Any]:
    payload: dict[str, Any] = {"inbox_id": inbox_id, "to": to, "text": text}
    if attachments:
        payload["attachments"] = [{"kind": a.kind, "url": a.url, "filename": a.filename} for a in attachments]
    if status_callback:
        payload["status_callback"] = status_callback
    if template is not None:
        payload["template"] = {
            "name": template.name,
            "language": template.language,
            "parameters": list(template.parameters),
        }
    return payload


def _attachments(raw: Any) -> tuple[OutboundAttachment, ...]:
    if not isinstance(raw, list):
        return ()
    return tuple(
        OutboundAttachment(
            "image" if a.get("kind") == "image" else "file",
            str(a["url"]),
            str(a["filename"]) if a.get("filename") else None,
        )
        for a in raw
        if isinstance(a, dict) and a.get("url")
    )


def _template(raw: Any) -> Template | None:
    if not isinstance(raw, dict):
        return None
    return Template(str(raw["name"]), str(raw["language"]), tuple(str(p) for p in raw.get("parameters", [])))


class ChannelSender:
    def __init__(self, store: Store, client: httpx.AsyncClient, translate: Translate | None = None) -> None:
        self.store = store
        self.client = client
        self.translate = translate
        self.receipts = ReceiptQueries(store.db)

    async def __call__(self, delivery: Delivery) -> None:
        p = delivery.payload
        try:
            inbox = await self.store.get_inbox(str(p["inbox_id"]))
        except NotFound as exc:
            raise PermanentDeliveryError("the inbox was deleted") from exc
        adapter = adapter_for(inbox.channel)
        if adapter is None:
            raise PermanentDeliveryError(f"{inbox.channel} has no channel adapter")
        template = _template(p.get("template"))
        done = await self.receipts.sent_parts(delivery.id)
        text = str(p.get("text") or "")
        if template is None:
            kept = p.get("sent_text")
            if isinstance(kept, str):
                text = kept
            elif not done and text:
                text = await self._in_contact_language(delivery, text)
                if text != p.get("text"):
                    await self.receipts.remember_text(delivery, text)
        to = str(p["to"])
        outbound = Outbound(
            to=to,
            text="" if template is not None else text,
            template=template,
            attachments=_attachments(p.get("attachments")),
            status_callback=p.get("status_callback") or None,
            sent=tuple(done),
        )

        async def on_part(part: int, external_id: str) -> None:
            await self.receipts.record_part(inbox.id, delivery.id, part, external_id, to)

        await adapter.send(self.client, inbox.config, outbound, on_part=on_part)

    async def _in_contact_language(self, delivery: Delivery, text: str) -> str:
        """The reply in the conversation's (the contact's) language; the original when that is not known,
        the same, or translation fails."""
        if self.translate is None or delivery.message_id is None or delivery.conversation_id is None:
            return text
        try:
            conv = await self.store.get_conversation(delivery.conversation_id)
            message: Message = await self.store.get_message(delivery.message_id)
        except NotFound:
            return text
        target = conv.language
        if target is None or (message.lang is not None and same_language(message.lang, target)):
            return text
        stored = message.translations.get(target)
        if stored:
            return stored
        try:
            result = await self.translate(text, message.lang, target)
        except Exception as exc:  # translation never holds a reply back
            log.warning("delivery %s: translation failed (%s); sending the original", delivery.id, exc)
            return text
        return result.text if result.translated and result.text else text


def register_channel_sender(
    registry: SenderRegistry, store: Store, translate: Translate | None
) -> httpx.AsyncClient:
    """Register the ``channel`` sender on a process's outbox registry; the caller closes the client it
    returns on shutdown."""
    client = channel_client()
    registry.register(CHANNEL_KIND, ChannelSender(store, client, translate))
    return client
