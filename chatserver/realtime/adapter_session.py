"""An adapter's connection (``/ws/adapter``): a bot or a custom channel, with protocol v1's framing,
ack, seq, resume and idempotency (it is a :class:`~chatserver.realtime.session.Session`).

What it sees: the conversations of the inboxes it serves (a bot: those in ``bot`` status when it
connects, and every new one; a channel: every open one) and their messages, as agents see them. What it
may do: the frames of :mod:`chatserver.adapterapi.frames`. A custom channel also receives each public
reply of agents and bots as a ``delivery`` frame, to send to its platform.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.websockets import WebSocket

from chatserver.adapterapi import frames as af
from chatserver.adapterapi.model import Adapter, AdapterKind, Handoff, is_reply
from chatserver.adapterapi.service import AdapterService
from chatserver.adapterapi.statuses import status_result
from chatserver.chat import ChatService
from chatserver.errors import ApiError, Conflict, Forbidden
from chatserver.model import frames
from chatserver.model.events import (
    AccessEvent,
    ConversationEvent,
    DeliveryEvent,
    Event,
    MessageEvent,
    ReadEvent,
    TranslatedEvent,
    TypingEvent,
    agent_topic,
    conversation_topic,
    inbox_topic,
)
from chatserver.model.status import OPEN_STATUSES, Status
from chatserver.model.types import Contact, Conversation, Message
from chatserver.realtime.hub import Hub
from chatserver.realtime.outbox import Follow
from chatserver.realtime.session import CLOSE_UNAUTHENTICATED, Session
from chatserver.settings import Settings

log = logging.getLogger(__name__)

_PASSED = (MessageEvent, TypingEvent, ReadEvent, DeliveryEvent, TranslatedEvent)


class AdapterSession(Session):
    def __init__(
        self,
        ws: WebSocket,
        *,
        settings: Settings,
        service: ChatService,
        hub: Hub,
        adapter: Adapter,
        api: AdapterService,
    ) -> None:
        super().__init__(ws, settings=settings, service=service, hub=hub, author=adapter.author)
        self.adapter = adapter
        self.api = api
        self.allowed = af.ADAPTER_TYPES

    @property
    def is_agent(self) -> bool:
        """An adapter sees conversations as agents do (full payloads, notes included)."""
        return True

    async def run(self) -> None:
        # its inboxes' conversations (new ones included), and its own topic (revocation)
        for topic in (*(inbox_topic(i) for i in self.adapter.inbox_ids), agent_topic(self.adapter.id)):
            await self.hub.subscribe(self, topic)
            self.topics.add(topic)
        await super().run()

    def _wants(self, status: Any) -> bool:
        if self.adapter.kind is AdapterKind.BOT:
            return bool(status == Status.BOT.value)
        return bool(status != Status.RESOLVED.value)

    # -- from the hub ----------------------------------------------------------------------------------

    def deliver(self, topic: str, event: Event) -> None:
        if isinstance(event, ConversationEvent):
            self._on_conversation(topic, event)
        elif isinstance(event, AccessEvent) and event.agent_id == self.adapter.id and not self._closing:
            self._closing = True  # revoked: nothing more is handled
            asyncio.get_running_loop().create_task(self._end(CLOSE_UNAUTHENTICATED, "adapter revoked"))
        elif isinstance(event, _PASSED):
            super().deliver(topic, event)
        # presence, offers, tickets and access changes are the console's business

    def _on_conversation(self, topic: str, event: ConversationEvent) -> None:
        if not self.adapter.serves(str(event.payload.get("inbox_id"))):
            return
        super()._on_conversation(topic, event)
        cid = event.conversation_id
        if conversation_topic(cid) not in self.topics and self._wants(event.payload.get("status")):
            self._put(Follow(cid))

    async def _send_message(self, m: Message) -> None:
        await super()._send_message(m)
        if self.adapter.kind is AdapterKind.CHANNEL and is_reply(m):
            await self._deliver_reply(m)

    async def _deliver_reply(self, m: Message) -> None:
        conv = await self._conversation(m.conversation_id)
        external_id = await self.api.channel_identity(conv)
        await self._write(af.delivery(conv.id, m.to_wire(), external_id, conv.inbox_id))

    # -- the snapshot after hello -----------------------------------------------------------------------

    async def _snapshot(self) -> None:
        statuses = [Status.BOT] if self.adapter.kind is AdapterKind.BOT else sorted(OPEN_STATUSES)
        convs = await self.api.queries.conversations_in(self.adapter.inbox_ids, statuses)
        for conv in convs:
            await self._track(conv, announce=False, hold=True)
            cursor = self._cursors.get(conv.id)
            if self.adapter.kind is AdapterKind.BOT and cursor is not None and not cursor.sent_any:
                cursor.seq = 0  # a bot gets the whole chat unless its resume says what it has seen
            self._versions[conv.id] = max(self._versions.get(conv.id, 0), conv.version)
            payload = await self.service.conversation_payload(conv)
            self._payloads[conv.id] = payload
            await self._write(frames.conversation(payload))
        await self._write(frames.snapshot([conv.id for conv in convs]))

    async def _track(
        self, conv: Conversation, *, announce: bool = True, hold: bool = False, wake: bool = True
    ) -> None:
        new = conversation_topic(conv.id) not in self.topics
        await super()._track(conv, announce=announce, hold=hold, wake=wake)
        if new and not hold and self.adapter.kind is AdapterKind.BOT:
            # a conversation that just started: its first messages may have committed before the
            # subscription, and the bot needs them all
            self._cursors.resume(conv.id, 0)
            await self._fill(conv.id, None)

    # -- the receiver ------------------------------------------------------------------------------------

    async def _conversation(self, cid: str, *, fresh: bool = False) -> Conversation:
        conv = None if fresh else self._convs.get(cid)
        if conv is None:
            conv = await self.api.conversation(self.adapter, cid)
            self._convs[cid] = conv
        return conv

    async def _handle_text(self, text: str) -> None:
        if self._closing:
            return
        try:
            frame = af.decode(
                text,
                max_text_bytes=self.settings.max_text_bytes,
                max_file_bytes=self.settings.upload_max_bytes,
            )
        except ApiError as exc:
            self.send(frames.error(exc))
            return
        try:
            await self._handle_adapter(frame)
        except Exception as exc:
            self._error(exc, frame.ref, type(frame).__name__)

    async def _handle_adapter(self, frame: af.AdapterFrame | frames.ClientFrame) -> None:
        api, adapter = self.api, self.adapter
        match frame:
            case af.BotSend():
                message, _ = await api.bot_send(
                    adapter,
                    frame.conversation_id,
                    text=frame.text,
                    client_id=frame.client_id,
                    actions=frame.actions,
                )
                self.send(frames.ack(frame.ref, message))
            case af.HandoffFrame():
                conv = await api.hand_off(
                    adapter,
                    frame.conversation_id,
                    Handoff(frame.summary, frame.skills, frame.priority, frame.team),
                )
                self._convs[conv.id] = conv
                self.send(frames.ack_simple(frame.ref, conversation_id=conv.id, status=conv.status))
            case af.ContactUpdate():
                contact = await api.set_contact(adapter, frame.conversation_id, frame.values)
                self.send(frames.ack_simple(frame.ref, contact=contact.to_wire()))
            case af.ConversationUpdate():
                conv = await api.set_routing(
                    adapter, frame.conversation_id, skills=frame.skills, priority=frame.priority
                )
                self._convs[conv.id] = conv
                self.send(
                    frames.ack_simple(
                        frame.ref, conversation_id=conv.id, skills=conv.skills, priority=conv.priority
                    )
                )
            case af.Inject():
                message, duplicate = await api.inject(adapter, frame)
                ack = frames.ack(frame.ref, message)
                ack["duplicate"] = duplicate
                self.send(ack)
                conv = await self._conversation(message.conversation_id, fresh=True)
                await self._follow(conv, announce=True)
            case af.StatusReport():
                applied = await api.report_status(adapter, frame.message_id, frame.state, frame.reason)
                self.send(frames.ack_simple(frame.ref, **status_result(applied)))
            case _:
                await self._handle(frame)


async def handle_action(
    service: ChatService, contact: Contact | None, frame: frames.ActionClick
) -> dict[str, Any]:
    """A visitor's button click (``action``): acked like a sent message."""
    if contact is None:
        raise Forbidden("only visitors click buttons")
    if service.adapters is None:
        raise Conflict("buttons are not enabled on this server")
    message, _ = await service.adapters.visitor_action(
        contact, frame.conversation_id, frame.message_id, frame.action_id
    )
    return frames.ack(frame.ref, message)
