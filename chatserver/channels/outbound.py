"""From an agent's reply to a platform send: everything outbound delivery needs besides the outbox.

:func:`prepare_reply` decides, before anything is queued, whether a reply can go out on the
conversation's channel and to which address (the contact's identity on that channel); WhatsApp's
24-hour window is checked here, so a free-form reply outside it is refused with ``conflict`` and the
reason. :func:`deliver` then sends it through the inbox's adapter; its delivery errors (temporary with a
retry hint, or permanent with the platform's reason) are for the outbox to act on.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from adapters.base import Channel, Outbound, OutboundAttachment, SendResult, Template
from adapters.meta import whatsapp_window
from chatserver.channels.inboxes import adapter_for, webhook_url
from chatserver.errors import Conflict, Invalid
from chatserver.model.types import Conversation, Inbox
from chatserver.store.store import Store


@dataclass(frozen=True, slots=True)
class Reply:
    inbox: Inbox
    adapter: Channel
    outbound: Outbound


async def prepare_reply(
    store: Store,
    conv: Conversation,
    *,
    text: str = "",
    template: Template | None = None,
    attachments: tuple[OutboundAttachment, ...] = (),
    now_s: float,
    base_url: str,
) -> Reply:
    inbox = await store.get_inbox(conv.inbox_id)
    adapter = adapter_for(inbox.channel)
    if adapter is None:
        raise Invalid(f"{inbox.channel} conversations are not delivered through a channel adapter")
    if template is not None and inbox.channel != "whatsapp":
        raise Invalid("templates are for WhatsApp conversations", data={"field": "template"})
    if template is None and not text and not attachments:
        raise Invalid("nothing to send", data={"field": "text"})
    identity = await store.channel_identity(conv.contact_id, inbox.channel)
    if identity is None:
        raise Conflict(f"the contact has no {inbox.channel} address")
    to, last_inbound_ms = identity
    if inbox.channel == "whatsapp" and template is None:
        window = whatsapp_window(last_inbound_ms / 1000 if last_inbound_ms else None, now_s)
        if not window.allowed:
            raise Conflict(window.reason or "outside the WhatsApp window", data={"reason": "window_closed"})
    callback = None
    if inbox.channel == "sms":
        callback = f"{webhook_url(base_url, inbox)}/status"
    return Reply(
        inbox,
        adapter,
        Outbound(to=to, text=text, attachments=attachments, template=template, status_callback=callback),
    )


async def deliver(client: httpx.AsyncClient, reply: Reply) -> SendResult:
    return await reply.adapter.send(client, reply.inbox.config, reply.outbound)
