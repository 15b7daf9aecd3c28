"""One WebSocket connection: its identity, its subscriptions and its ordered, bounded outbound stream.

Everything the client receives goes through one bounded queue drained by one sender task, which is the
single place that enforces per-conversation order. What it sends of a conversation is decided by one
cursor per conversation (:mod:`chatserver.realtime.cursor`), for live messages, gap fills and resumes
alike, and only the sender moves it; the receiver only queues intents (follow, resume) behind the live
stream (guarantees 2 and 3). A client that cannot keep up fills the queue and is closed with 4008 (it resumes
by cursors); it never slows anyone else (guarantee 6).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from chatserver.model import frames
from chatserver.model.events import (
    AGENTS_TOPIC,
    PENDING_TOPIC,
    QUEUE_TOPIC,
    AccessEvent,
    ConversationEvent,
    DeliveryEvent,
    Event,
    MessageEvent,
    NoticeEvent,
    OfferEvent,
    OfferRevokedEvent,
    PresenceEvent,
    QueueEvent,
    ReadEvent,
    SlaEvent,
    TicketEvent,
    TranslatedEvent,
    TypingEvent,
    agent_topic,
    conversation_topic,
)
from chatserver.realtime.outbox import (
    Follow,
    Refresh,
    SendFrame,
    SendMessage,
    SendText,
    Snapshot,
)
from chatserver.realtime.queueboard import ThrottledSummary
from chatserver.realtime.receiver import Receiver
from chatserver.realtime.sender import (
    CLOSE_FORBIDDEN,
    CLOSE_RATE_LIMITED,
    CLOSE_SLOW,
    CLOSE_TRY_AGAIN,
    CLOSE_UNAUTHENTICATED,
)

log = logging.getLogger(__name__)


class Session(Receiver):
    """Shared by visitors and agents; the identity decides what is allowed and visible."""

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def run(self) -> None:
        limits = {
            "max_text_bytes": self.settings.max_text_bytes,
            "max_frame_bytes": self.settings.max_frame_bytes,
        }
        hello = frames.hello(self.id, self.settings.heartbeat_s, self.author, limits)
        if self.agent is not None:
            hello["routing"] = self.settings.routing  # offers: wait for offers; manual: take conversations
        await self.ws.send_text(frames.encode(hello))
        self._sender = asyncio.create_task(self._send_loop(), name=f"sender-{self.id}")
        summary: ThrottledSummary | None = None
        try:
            if self.agent is not None:
                topics = [AGENTS_TOPIC, agent_topic(self.agent.id)]
                topics.append(QUEUE_TOPIC if self.watches_queue else PENDING_TOPIC)
                for topic in topics:
                    await self.hub.subscribe(self, topic)
                    self.topics.add(topic)
            self._put(Snapshot())
            if self.agent is not None:  # every agent sees how many wait ("3 waiting")
                summary = ThrottledSummary(self.send)
                await self.hub.watch_summary(summary)
            await self._receive_loop()
        finally:
            if self._release_timer is not None:
                self._release_timer.cancel()
            if summary is not None:
                summary.cancel()
                await self.hub.unwatch_summary(summary)
            if self._acks:  # let messages already queued for commit be answered (bounded wait)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(2):
                        await asyncio.gather(*self._acks, return_exceptions=True)
            self._closing = True
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._sender
            await self.hub.unsubscribe_all(self, self.topics)

    # -- from the hub (synchronous, never blocks) -----------------------------------------------------------

    def deliver(self, topic: str, event: Event) -> None:
        match event:
            case MessageEvent(message=m):
                self._put(SendMessage(m))
            case ConversationEvent():
                self._on_conversation(topic, event)
            case TypingEvent():
                if event.author.id != self.author.id:
                    public = not self.is_agent
                    self.send(frames.typing(event.conversation_id, event.author, event.state, public=public))
            case ReadEvent():
                self.send(
                    frames.read(event.conversation_id, event.reader, event.seq, public=not self.is_agent)
                )
            case PresenceEvent():
                if self.is_agent:
                    self.send(frames.presence(event.agent, event.status))
            case OfferEvent():
                self.send(frames.offer(event.offer_id, event.payload, event.expires_at))
            case OfferRevokedEvent():
                self.send(frames.offer_revoked(event.offer_id, event.conversation_id, event.reason))
            case AccessEvent():
                self._on_access(event)
            case NoticeEvent():
                frame = frames.notice(event.code, event.message)
                self._put(Refresh(frame) if event.code == "profile" else SendFrame(frame))
            case QueueEvent():
                cached = self._payloads.get(event.conversation_id)
                if cached is not None and cached.get("status") in ("queued", "offered"):
                    queue = {"position": event.position, "estimated_wait_s": event.estimated_wait_s}
                    self.send(frames.conversation(self._view({**cached, "queue": queue})))
            case TicketEvent():
                if self._ticket_is_mine(event.assignee_id, event.watchers, event.conversation_ids):
                    self.send(frames.ticket(event.payload))
            case SlaEvent():
                conv_ids = (str(event.ticket.get("conversation_id")),)
                if self._ticket_is_mine(event.assignee_id, (), conv_ids):
                    self.send(frames.sla(event.ticket, event.kind, event.target, event.due_at))
            case DeliveryEvent():
                if self.is_agent:
                    self.send(
                        frames.message_status(
                            event.conversation_id,
                            event.message_id,
                            event.state,
                            event.reason,
                            delivery_id=event.delivery_id,
                            kind=event.kind,
                        )
                    )
            case TranslatedEvent():
                if event.for_agents and not self.is_agent:
                    return  # a visitor's own words, translated for the agent
                self.send(
                    frames.translated(
                        event.conversation_id,
                        event.message_id,
                        event.seq,
                        event.lang,
                        event.text,
                        event.reason,
                    )
                )

    def _ticket_is_mine(
        self, assignee_id: str | None, watchers: tuple[str, ...], conversation_ids: tuple[str, ...]
    ) -> bool:
        agent = self.agent
        if agent is None:
            return False
        return (
            agent.role.supervises
            or assignee_id == agent.id
            or agent.id in watchers
            or any(conversation_topic(c) in self.topics for c in conversation_ids)
        )

    def _on_access(self, event: AccessEvent) -> None:
        """Deactivation, logout or a role change: end this connection at once (no frame it sends after
        this is handled), on whichever process it lives."""
        if self.agent is None or event.agent_id != self.agent.id:
            return
        if event.reason == "logout" and event.session_hash != self.login_hash:
            return  # another login session of the same agent logged out
        code, reason = {
            "deactivated": (CLOSE_UNAUTHENTICATED, "account deactivated"),
            "logout": (CLOSE_UNAUTHENTICATED, "logged out"),
        }.get(event.reason, (CLOSE_FORBIDDEN, "role changed: reconnect"))
        log.info("session %s of %s: %s", self.id, event.agent_id, reason)
        if not self._closing:
            self._closing = True  # from now on nothing is queued or handled
            asyncio.get_running_loop().create_task(self._end(code, reason))

    def _on_conversation(self, topic: str, event: ConversationEvent) -> None:
        cid = event.conversation_id
        if event.version <= self._versions.get(cid, 0):
            return  # already sent (it arrives on the conversation's, the queue's and the agent's topics)
        self._versions[cid] = event.version
        self._convs.pop(cid, None)  # refetched when next needed
        self._payloads[cid] = event.payload
        encode = frames.conversation_text if self.is_agent else frames.visitor_conversation_text
        self._put(SendText(encode(cid, event.version, event.payload)))
        assignee = event.payload.get("assignee") or {}
        if (
            self.agent is not None
            and assignee.get("id") == self.agent.id
            and conversation_topic(cid) not in self.topics
        ):
            self._put(Follow(cid))


__all__ = [
    "CLOSE_FORBIDDEN",
    "CLOSE_RATE_LIMITED",
    "CLOSE_SLOW",
    "CLOSE_TRY_AGAIN",
    "CLOSE_UNAUTHENTICATED",
    "Session",
]
