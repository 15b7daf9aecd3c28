"""From an agent's reply to a platform send: everything outbound delivery needs besides the outbox.

:func:`prepare_reply` decides, before anything is queued, whether a reply can go out on the
conversation's channel and to which address (the contact's identity on that channel); WhatsApp's
24-hour window is checked here, so a free-form reply outside it is refused with ``conflict`` and the
reason. :func:`deliver` then sends it through the inbox's adapter; its delivery errors (temporary with a
retry hint, or permanent with the platform's reason) are for the outbox to act on.

:class:`ChannelReplies` is what the app registers on the conversation service: for every public agent
reply in a channel conversation, one ``channel`` delivery written in the reply's own transaction (sent
by :class:`~chatserver.channels.sender.ChannelSender`); for a WhatsApp template, the text to store and
its delivery; for a reply with files, one delivery with the text and then the files, each as a signed
link to ``{CHATSERVER_PUBLIC_URL}/files/{id}`` the platform fetches (valid for :data:`FILE_LINK_TTL_S`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from adapters.base import Channel, Outbound, OutboundAttachment, SendResult, Template
from adapters.channels import CHANNELS
from adapters.meta import choose_template, parse_templates, whatsapp_window
from chatserver.channels.inboxes import adapter_for, webhook_url
from chatserver.channels.sender import CHANNEL_KIND, reply_payload
from chatserver.errors import Conflict, Invalid
from chatserver.files.model import sign_link
from chatserver.model.frames import TemplateRequest
from chatserver.model.ids import new_id
from chatserver.model.types import Author, Conversation, Inbox
from chatserver.outbox.registry import NewDelivery
from chatserver.store.store import Store

if TYPE_CHECKING:
    from chatserver.chat import ChatService

FILE_LINK_TTL_S = 24 * 3600
"""How long the link a platform fetches a file from works (platforms fetch at once, some a little later;
a retry within the outbox's attempts reuses the link)."""


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


def reply_delivery(reply: Reply) -> NewDelivery:
    o = reply.outbound
    return NewDelivery(
        kind=CHANNEL_KIND,
        idempotency_key=new_id("chr_"),
        payload=reply_payload(
            inbox_id=reply.inbox.id,
            to=o.to,
            text=o.text,
            status_callback=o.status_callback,
            template=o.template,
            attachments=o.attachments,
        ),
    )


def file_links(
    adapter: Channel,
    files: Sequence[dict[str, Any]],
    *,
    public_url: str,
    secret: str,
    now_s: float,
) -> tuple[OutboundAttachment, ...]:
    """The files of a reply as the platform gets them: each a signed link to ``/files/{id}``, sent as an
    image or a document within the platform's limits; ``invalid`` (nothing stored) without a public URL
    or for a file the platform would refuse."""
    if not public_url:
        raise Invalid(
            "sending files on this channel needs CHATSERVER_PUBLIC_URL (the platform fetches them from it)",
            data={"field": "attachments"},
        )
    kinds = adapter.file_limits.kinds([(str(f["content_type"]), int(f["size"])) for f in files])
    expires = int(now_s) + FILE_LINK_TTL_S
    return tuple(
        OutboundAttachment(
            kind,
            f"{public_url}/files/{f['id']}?{sign_link(secret, str(f['id']), expires)}",
            str(f["name"]),
        )
        for kind, f in zip(kinds, files, strict=True)
    )


class ChannelReplies:
    """The outbound builders of the channel conversations, registered on a ChatService."""

    def __init__(
        self,
        store: Store,
        *,
        base_url: str,
        clock: Callable[[], float] = time.time,
        public_url: str = "",
        secret: str = "",
    ) -> None:
        self.store = store
        self.base_url = base_url
        self.clock = clock
        self.public_url = public_url
        self._secret = secret

    def register(self, service: ChatService) -> None:
        for channel in CHANNELS:
            service.outbound[channel] = self.reply
            service.outbound_files[channel] = self.reply_with_files
        service.templates["whatsapp"] = self.template

    async def reply_with_files(
        self, conv: Conversation, author: Author, text: str, files: tuple[dict[str, Any], ...]
    ) -> Sequence[NewDelivery]:
        """A reply with files: the text (split as usual), then each file, in one delivery."""
        now = self.clock()
        adapter = adapter_for(conv.channel)
        if adapter is None:
            raise Invalid(f"{conv.channel} conversations are not delivered through a channel adapter")
        links = file_links(adapter, files, public_url=self.public_url, secret=self._secret, now_s=now)
        reply = await prepare_reply(
            self.store, conv, text=text, attachments=links, now_s=now, base_url=self.base_url
        )
        return [reply_delivery(reply)]

    async def reply(self, conv: Conversation, author: Author, text: str) -> Sequence[NewDelivery]:
        reply = await prepare_reply(self.store, conv, text=text, now_s=self.clock(), base_url=self.base_url)
        return [reply_delivery(reply)]

    async def template(
        self, conv: Conversation, author: Author, request: TemplateRequest
    ) -> tuple[str, Sequence[NewDelivery]]:
        """An approved template of the conversation's inbox (Invalid for one it does not list); allowed
        outside WhatsApp's 24-hour window."""
        inbox = await self.store.get_inbox(conv.inbox_id)
        specs = parse_templates(inbox.config.get("templates", []))
        wanted = Template(request.name, request.language, request.parameters)
        spec = choose_template(specs, wanted)
        reply = await prepare_reply(
            self.store, conv, template=wanted, now_s=self.clock(), base_url=self.base_url
        )
        return spec.render(request.parameters), [reply_delivery(reply)]
