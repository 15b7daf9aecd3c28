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
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocket

from chatserver.chat import ChatService
from chatserver.errors import (
    ApiError,
    BadFrame,
    Forbidden,
    NotFound,
    RateLimited,
    StoreError,
    api_error,
)
from chatserver.model import frames
from chatserver.model.events import (
    AGENTS_TOPIC,
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
from chatserver.model.ids import new_id
from chatserver.model.status import OPEN_STATUSES, WAITING_STATUSES, Status
from chatserver.model.types import Agent, Author, AuthorKind, Contact, Conversation, Message, MessageKind
from chatserver.model.visitor import VisitorConversation
from chatserver.realtime.cursor import Cursors, Live
from chatserver.realtime.hub import Hub
from chatserver.realtime.ratelimit import TokenBucket
from chatserver.settings import Settings
from chatserver.widgetcfg.store import check_start_fields

log = logging.getLogger(__name__)

CLOSE_SLOW = 4008
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_RATE_LIMITED = 4429
CLOSE_TRY_AGAIN = 1013
"""The database is unreachable while the connection is set up: reconnect later."""
PAGE = 500
MAX_IN_FLIGHT = 32
"""Messages one connection may have waiting for their commit at once."""
RESUME_WINDOW_S = 2.0
"""How long live messages of the snapshot's conversations wait for the client's first frame (its resume)."""


# Items of the outbound queue --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Frame:
    frame: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Text:
    """A frame already encoded (shared by every connection that receives it)."""

    text: str


@dataclass(frozen=True, slots=True)
class _Msg:
    message: Message


@dataclass(frozen=True, slots=True)
class _Fill:
    conversation_id: str
    up_to: int


@dataclass(frozen=True, slots=True)
class _Sync:
    conversation_id: str
    after: int


@dataclass(frozen=True, slots=True)
class _Track:
    """Follow ``conv`` from ``baseline`` (None: subscribed elsewhere), announcing its state if new."""

    conv: Conversation
    baseline: int | None
    announce: bool


@dataclass(frozen=True, slots=True)
class _Release:
    """The client's first frame was handled (or the window passed): stop holding snapshot cursors."""


@dataclass(frozen=True, slots=True)
class _Resumed:
    ref: str | None
    conversation_ids: tuple[str, ...]
    unknown: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Follow:
    conversation_id: str


@dataclass(frozen=True, slots=True)
class _Snapshot:
    pass


@dataclass(frozen=True, slots=True)
class _Refresh:
    """Reload the agent's profile, then send ``frame`` (so the client sees it only once it applies)."""

    frame: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Close:
    code: int
    reason: str


_Item = (
    _Frame
    | _Text
    | _Msg
    | _Fill
    | _Sync
    | _Track
    | _Release
    | _Resumed
    | _Follow
    | _Snapshot
    | _Refresh
    | _Close
)


class _Outbox:
    """A bounded FIFO with one consumer: a deque and one wake-up future (an asyncio.Queue costs ~2 KiB
    more per connection, which matters with thousands of idle visitors)."""

    __slots__ = ("_items", "_limit", "_waiter")

    def __init__(self, limit: int) -> None:
        self._items: deque[_Item] = deque()
        self._limit = limit
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: _Item) -> None:
        if len(self._items) >= self._limit:
            raise asyncio.QueueFull
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> _Item:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()


class Session:
    """Shared by visitors and agents; the identity decides what is allowed and visible."""

    def __init__(
        self,
        ws: WebSocket,
        *,
        settings: Settings,
        service: ChatService,
        hub: Hub,
        contact: Contact | None = None,
        inbox_id: str | None = None,
        agent: Agent | None = None,
        login_hash: str | None = None,
        author: Author | None = None,
    ) -> None:
        assert (contact is None) != (agent is None) or author is not None  # author: an adapter
        self.ws = ws
        self.settings = settings
        self.service = service
        self.hub = hub
        self.contact = contact
        self.inbox_id = inbox_id
        self.agent = agent
        self.login_hash = login_hash
        """The hash of the login session (cookie) this connection was opened with; None for API tokens."""
        self.id = new_id("ws_")
        self.author: Author = author or (
            agent.author if agent else Author(AuthorKind.CONTACT, contact.id, contact.name)  # type: ignore[union-attr]
        )
        self.allowed = frames.AGENT_TYPES if agent else frames.VISITOR_TYPES
        self._out = _Outbox(settings.send_queue_size)
        self._cursors = Cursors()
        self._first_frame = False
        self._versions: dict[str, int] = {}
        self._convs: dict[str, Conversation] = {}
        self._payloads: dict[str, dict[str, Any]] = {}
        self.topics: set[str] = set()
        self._bucket = TokenBucket(settings.rate_limit_per_s, settings.rate_limit_burst)
        self._strikes = 0
        self._closing = False
        self._sender: asyncio.Task[None] | None = None
        self._in_flight: asyncio.Semaphore | None = None  # made on the first message.send
        self._acks: set[asyncio.Task[None]] = set()

    @property
    def is_agent(self) -> bool:
        return self.agent is not None

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
        release_timer: asyncio.TimerHandle | None = None
        try:
            if self.agent is not None:
                for topic in (AGENTS_TOPIC, agent_topic(self.agent.id)):
                    await self.hub.subscribe(self, topic)
                    self.topics.add(topic)
            self._put(_Snapshot())
            release_timer = asyncio.get_running_loop().call_later(RESUME_WINDOW_S, self._put, _Release())
            await self._receive_loop()
        finally:
            if release_timer is not None:
                release_timer.cancel()
            if self._acks:  # let messages already queued for commit be answered (bounded wait)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(2):
                        await asyncio.gather(*self._acks, return_exceptions=True)
            self._closing = True
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._sender
            await self.hub.unsubscribe_all(self, self.topics)

    async def close(self, code: int, reason: str = "") -> None:
        if self._closing:
            return
        self._closing = True
        await self._end(code, reason)

    async def _end(self, code: int, reason: str) -> None:
        if self._sender is not None and asyncio.current_task() is not self._sender:
            self._sender.cancel()
        with contextlib.suppress(Exception):
            await self.ws.close(code, reason)

    async def close_after_flush(self, code: int, reason: str, wait_s: float = 2.0) -> None:
        """Close once what is queued (e.g. the errors explaining why) has been sent."""
        if self._closing:
            return
        try:
            self._out.put_nowait(_Close(code, reason))
        except asyncio.QueueFull:
            await self.close(code, reason)
            return
        self._closing = True
        sender = self._sender
        if sender is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(sender), wait_s)
            if not sender.done():
                sender.cancel()
                with contextlib.suppress(Exception):
                    await self.ws.close(code, reason)

    def _put(self, item: _Item) -> None:
        if self._closing:
            return
        try:
            self._out.put_nowait(item)
        except asyncio.QueueFull:
            log.info("session %s is too slow; closing with %d", self.id, CLOSE_SLOW)
            asyncio.get_running_loop().create_task(self.close(CLOSE_SLOW, "slow consumer: resume"))

    def send(self, frame: dict[str, Any]) -> None:
        self._put(_Frame(frame))

    # -- from the hub (synchronous, never blocks) -----------------------------------------------------------

    def deliver(self, topic: str, event: Event) -> None:
        match event:
            case MessageEvent(message=m):
                self._put(_Msg(m))
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
                self._put(_Refresh(frame) if event.code == "profile" else _Frame(frame))
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
            return  # already sent (it arrives on the agents topic and the conversation topic)
        self._versions[cid] = event.version
        self._convs.pop(cid, None)  # refetched when next needed
        self._payloads[cid] = event.payload
        encode = frames.conversation_text if self.is_agent else frames.visitor_conversation_text
        self._put(_Text(encode(cid, event.version, event.payload)))
        assignee = event.payload.get("assignee") or {}
        if (
            self.agent is not None
            and assignee.get("id") == self.agent.id
            and conversation_topic(cid) not in self.topics
        ):
            self._put(_Follow(cid))

    async def _refresh_agent(self) -> None:
        """The agent's profile changed (language, skills, name): use the stored one from now on."""
        assert self.agent is not None
        with contextlib.suppress(Exception):
            self.agent = await self.service.store.get_agent(self.agent.id)
            self.author = self.agent.author

    def seq_hint(self, conversation_id: str, last_seq: int) -> None:
        self._put(_Fill(conversation_id, last_seq))

    def resync(self) -> None:
        self._put(_Snapshot())

    # -- the sender: the only writer to the socket -----------------------------------------------------

    async def _write(self, frame: dict[str, Any]) -> None:
        await self.ws.send_text(frames.encode(frame))

    async def _send_loop(self) -> None:
        try:
            while True:
                item = await self._out.get()
                try:
                    if await self._process(item):
                        return
                except StoreError as exc:  # the database is away: say so; cursors repair when it is back
                    log.info("session %s: %s", self.id, exc)
                    await self._write(frames.error(api_error(exc)))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the socket is gone or the database failed: end this session only
            log.info("session %s sender stopped: %r", self.id, exc)
            with contextlib.suppress(Exception):
                await self.ws.close(1011, "internal error")

    async def _process(self, item: _Item) -> bool:
        """Send one item; True when the session must end."""
        match item:
            case _Frame(frame=frame):
                await self._write(frame)
            case _Text(text=text):
                await self.ws.send_text(text)
            case _Msg(message=m):
                await self._send_message(m)
            case _Fill(conversation_id=cid, up_to=up_to):
                if self._cursors.wants_fill(cid, up_to):
                    await self._fill(cid, up_to)
            case _Sync(conversation_id=cid, after=after):
                # a cursor past the head (a client from another database) would mute it forever
                heads = await self.service.store.conversation_heads([cid])
                self._cursors.resume(cid, min(after, heads.get(cid, (0, 0))[0]))
                await self._fill(cid, None)
            case _Track(conv=conv, baseline=baseline, announce=announce):
                await self._announce(conv, announce)
                if baseline is not None and self._cursors.follow(conv.id, baseline):
                    # what committed between the receiver's subscription and now was not sent live
                    await self._fill(conv.id, None)
            case _Release():
                for cid in self._cursors.release():
                    await self._fill(cid, None)
            case _Resumed():
                cursors = {cid: self._cursors.seq(cid) for cid in item.conversation_ids}
                frame = frames.resumed(cursors, item.ref)
                if item.unknown:
                    frame["unknown"] = list(item.unknown)
                await self._write(frame)
            case _Follow(conversation_id=cid):
                conv = await self.service.store.get_conversation(cid)
                await self._track(conv)
            case _Snapshot():
                await self._snapshot()
            case _Refresh(frame=frame):
                await self._refresh_agent()
                await self._write(frame)
            case _Close(code=code, reason=reason):
                await self.ws.close(code, reason)
                return True  # the session is over
        return False

    async def _send_message(self, m: Message) -> None:
        cid = m.conversation_id
        decision = self._cursors.live(cid, m.seq)
        if decision is Live.SKIP:
            return  # not followed (its baseline decides), held until the client's resume, or already sent
        if decision is Live.FILL:
            await self._fill(cid, m.seq - 1)
        if not self._visible(m):
            self._cursors.skip_to(cid, m.seq)
            return
        await self.ws.send_text(frames.message_text(m))
        self._cursors.sent(cid, m.seq)

    def _visible(self, m: Message) -> bool:
        return self.is_agent or m.kind is not MessageKind.NOTE

    async def _fill(self, cid: str, up_to: int | None) -> None:
        """Send every message after the cursor (up to ``up_to``) from the database, in seq order."""
        while True:
            batch = await self.service.store.messages_after(
                cid, self._cursors.seq(cid), up_to=up_to, limit=PAGE, include_private=self.is_agent
            )
            for m in batch:
                await self.ws.send_text(frames.message_text(m))
                self._cursors.sent(cid, m.seq)
            if len(batch) < PAGE:
                break
        if up_to is not None:
            self._cursors.skip_to(cid, up_to)  # the rest were private notes this client does not see

    async def _snapshot(self) -> None:
        service = self.service
        if self.contact is not None:
            convs = await service.store.list_conversations(
                contact_id=self.contact.id, statuses=[s.value for s in OPEN_STATUSES], limit=50
            )
        else:
            assert self.agent is not None
            waiting = await service.store.list_conversations(
                statuses=[s.value for s in WAITING_STATUSES], limit=200, newest_first=False
            )
            mine = await service.store.list_conversations(
                assignee_id=self.agent.id, statuses=[s.value for s in OPEN_STATUSES], limit=200
            )
            for conv in mine:
                await self._track(conv, announce=False, hold=True)
            convs = waiting + mine
        for conv in convs:
            if self.contact is not None:  # subscribed first: the baseline is as early as it can be
                await self._track(conv, announce=False, hold=True, wake=False)
            self._versions[conv.id] = max(self._versions.get(conv.id, 0), conv.version)
            payload = await service.conversation_payload(conv)
            self._payloads[conv.id] = payload
            self._wake_if_waiting(conv)  # now: the queue position the router publishes needs the payload
            await self._write(frames.conversation(self._view(payload)))
        await self._write(frames.snapshot([conv.id for conv in convs]))
        if self.agent is not None:  # offers still open for this agent (e.g. after a reconnect)
            for conv in await service.store.offers_for(self.agent.id):
                if conv.offer_id and conv.offer_expires_at:
                    payload = await service.conversation_payload(conv)
                    await self._write(frames.offer(conv.offer_id, payload, conv.offer_expires_at))

    async def _track(
        self, conv: Conversation, *, announce: bool = True, hold: bool = False, wake: bool = True
    ) -> None:
        """Follow a conversation from the sender: subscribe, then take the baseline from the database (the
        events that arrive meanwhile queue behind this item, so nothing committed after it is missed)."""
        topic = conversation_topic(conv.id)
        if topic not in self.topics:  # else followed already, or the receiver is subscribing
            self.topics.add(topic)
            await self.hub.subscribe(self, topic)
            heads = await self.service.store.conversation_heads([conv.id])
            self._cursors.follow(conv.id, heads.get(conv.id, (conv.last_seq, 0))[0], hold=hold)
        await self._announce(conv, announce, wake=wake)  # subscribed first: the router's answer arrives

    async def _announce(self, conv: Conversation, announce: bool, *, wake: bool = True) -> None:
        """Send the conversation's state if this connection has not seen this version yet."""
        self._convs[conv.id] = conv
        if announce and conv.version > self._versions.get(conv.id, 0):
            self._versions[conv.id] = conv.version
            payload = await self.service.conversation_payload(conv)
            self._payloads[conv.id] = payload
            await self._write(frames.conversation(self._view(payload)))
        if wake:
            self._wake_if_waiting(conv)

    def _wake_if_waiting(self, conv: Conversation) -> None:
        """A visitor watches a waiting conversation: the router publishes its queue position."""
        if self.contact is not None and conv.status in (Status.QUEUED.value, Status.OFFERED.value):
            self.service.wake_router(f"watch:{conv.id}")

    def _view(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The conversation as this connection may see it: all of it for agents, the visitor
        projection for visitors (chatserver/model/visitor.py)."""
        return payload if self.is_agent else VisitorConversation.from_payload(payload).to_wire()

    async def _subscribe(self, cid: str) -> int | None:
        """From the receiver: subscribe before the next frame is read; return the baseline (the head in
        the database once subscribed), or None when the conversation is already subscribed."""
        topic = conversation_topic(cid)
        if topic in self.topics:
            return None
        self.topics.add(topic)
        await self.hub.subscribe(self, topic)
        heads = await self.service.store.conversation_heads([cid])
        return heads.get(cid, (0, 0))[0]

    async def _follow(self, conv: Conversation, *, announce: bool = True) -> None:
        """From the receiver: follow ``conv`` (the sender sets the cursor, in order with the live stream)."""
        self._convs[conv.id] = conv
        baseline = await self._subscribe(conv.id)
        self._put(_Track(conv, baseline, announce))

    # -- the receiver ------------------------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        while not self._closing:
            msg = await self.ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            try:
                if not await self._receive_one(msg.get("text")):
                    return
            finally:
                if not self._first_frame:  # normally the resume: it has placed the snapshot's cursors
                    self._first_frame = True
                    self._put(_Release())

    async def _receive_one(self, text: str | None) -> bool:
        """Handle one client frame; False when the session must end."""
        if text is None:
            self.send(frames.error(BadFrame("binary frames are not part of the protocol; send JSON text")))
            return True
        if not self._bucket.take(time.monotonic()):
            self._strikes += 1
            self.send(frames.error(RateLimited("too many frames; slow down")))
            if self._strikes >= self.settings.rate_limit_strikes:
                await self.close_after_flush(CLOSE_RATE_LIMITED, "rate limited")
                return False
            return True
        self._strikes = 0
        await self._handle_text(text)
        return True

    async def _handle_text(self, text: str) -> None:
        if self._closing:
            return  # e.g. access revoked: nothing more is done for this connection
        try:
            frame = frames.decode(text, allowed=self.allowed, max_text_bytes=self.settings.max_text_bytes)
        except ApiError as exc:
            self.send(frames.error(exc))
            return
        try:
            await self._handle(frame)
        except Exception as exc:
            self._error(exc, frame.ref, type(frame).__name__)

    def _error(self, exc: Exception, ref: str | None, what: str) -> None:
        """Tell the client what failed (one mapping for every frame: errors.api_error); never close."""
        err = api_error(exc, context=f"frame {what}")
        if ref is not None:
            err.data.setdefault("ref", ref)
        self.send(frames.error(err))

    async def _conversation(self, cid: str, *, fresh: bool = False) -> Conversation:
        conv = None if fresh else self._convs.get(cid)
        if conv is not None:
            return conv
        if self.contact is not None:
            conv = await self.service.visitor_conversation(self.contact.id, cid)
        else:
            assert self.agent is not None
            conv = await self.service.agent_conversation(self.agent, cid)
        self._convs[cid] = conv
        return conv

    async def _handle(self, frame: frames.ClientFrame) -> None:
        service = self.service
        match frame:
            case frames.Ping(ref=ref):
                self.send(frames.pong(ref))
            case frames.ConversationStart():
                assert self.contact is not None and self.inbox_id is not None
                await check_start_fields(service.store, self.inbox_id, frame.fields)  # pre-chat answers
                conv = await service.start_conversation(
                    contact_id=self.contact.id,
                    inbox_id=self.inbox_id,
                    language=frame.language,
                    contact_language=self.contact.language,
                    skills=frame.skills,
                    fields=frame.fields,
                )
                self.send(frames.ack_simple(frame.ref, conversation_id=conv.id))
                await self._follow(conv)
            case frames.MessageSend():
                conv = await self._conversation(frame.conversation_id)
                if conv.status == Status.RESOLVED:
                    conv = await self._conversation(frame.conversation_id, fresh=True)
                if self._in_flight is None:
                    self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
                in_flight = self._in_flight
                await in_flight.acquire()
                try:
                    committed = await service.submit(
                        author=self.author,
                        conv=conv,
                        text=frame.text,
                        client_id=frame.client_id,
                        private=frame.private,
                        agent=self.agent,
                        contact_language=self.contact.language if self.contact else None,
                        lang=frame.lang if self.agent else None,
                        attachments=frame.attachments,
                        template=frame.template,
                    )
                except BaseException:
                    in_flight.release()
                    raise
                # the next frame is read while this one commits: several can share a batch, in order
                task = asyncio.get_running_loop().create_task(
                    self._ack_when_committed(frame, conv, committed)
                )
                self._acks.add(task)
                task.add_done_callback(self._acks.discard)
            case frames.Typing():
                await self._conversation(frame.conversation_id)
                service.typing(self.author, frame.conversation_id, frame.state)
            case frames.Read():
                conv = await self._conversation(frame.conversation_id)
                seq = await service.mark_read(self.author, conv, frame.seq)
                self.send(frames.ack_simple(frame.ref, conversation_id=conv.id, seq=seq))
            case frames.Resume():
                await self._resume(frame)
            case frames.StatusSet():
                assert self.agent is not None
                self.agent = await service.set_status(self.agent, frame.status)
                self.send(frames.ack_simple(frame.ref, status=frame.status.value))
            case frames.ConversationClaim():
                assert self.agent is not None
                conv = await service.claim(self.agent, frame.conversation_id, frame.agent_id)
                self.send(frames.ack_simple(frame.ref, conversation_id=conv.id, status=conv.status))
                if conv.assignee_id == self.agent.id:
                    await self._follow(conv)
            case frames.ConversationView():
                assert self.agent is not None
                conv = await self._conversation(frame.conversation_id, fresh=True)
                self.send(frames.ack_simple(frame.ref, conversation_id=conv.id))
                await self._follow(conv)
            case frames.OfferAnswer():
                assert self.agent is not None
                conv = await service.answer_offer(self.agent, frame.offer_id, accept=frame.accept)
                self.send(frames.ack_simple(frame.ref, conversation_id=conv.id, status=conv.status))
                if frame.accept:
                    await self._follow(conv)
            case frames.ConversationTransfer():
                assert self.agent is not None
                conv = await service.transfer(
                    self.agent,
                    frame.conversation_id,
                    to_agent=frame.agent_id,
                    team=frame.team,
                    skills=frame.skills,
                )
                self.send(frames.ack_simple(frame.ref, conversation_id=conv.id, status=conv.status))
            case frames.DraftTranslate():
                assert self.agent is not None
                conv = await self._conversation(frame.conversation_id, fresh=True)
                result = await service.translate_draft(self.agent, conv, frame.text)
                self.send(
                    frames.ack_simple(
                        frame.ref,
                        conversation_id=conv.id,
                        lang=conv.language,
                        text=result.text,
                        reason=result.untranslated_reason,
                    )
                )
            case frames.ConversationClose():
                assert self.agent is not None
                conv = await service.close(self.agent, frame.conversation_id)
                self.send(frames.ack_simple(frame.ref, conversation_id=conv.id, status=conv.status))
            case frames.ConversationEscalate() | frames.CsatSubmit():
                from chatserver.tickets.frames import handle_ticket_frame

                self.send(await handle_ticket_frame(service, self.agent, self.contact, frame))
            case frames.ActionClick():
                from chatserver.realtime.adapter_session import handle_action

                self.send(await handle_action(service, self.contact, frame))

    async def _ack_when_committed(
        self,
        frame: frames.MessageSend,
        conv: Conversation,
        committed: Coroutine[Any, Any, tuple[Message, bool]],
    ) -> None:
        try:
            message, _ = await committed
            self.send(frames.ack(frame.ref, message))
            if self.agent is not None:
                await self._follow(conv, announce=False)
        except Exception as exc:
            self._error(exc, frame.ref, "message.send")
        finally:
            if self._in_flight is not None:
                self._in_flight.release()

    async def _resume(self, frame: frames.Resume) -> None:
        ok: list[str] = []
        unknown: list[str] = []
        for cid, after in frame.cursors.items():
            try:
                conv = await self._conversation(cid)
            except (NotFound, Forbidden):
                unknown.append(cid)
                continue
            await self._subscribe(cid)
            # its current state first (it may have closed meanwhile), then what the client missed
            self._put(_Track(conv, None, True))
            self._put(_Sync(cid, after))
            ok.append(cid)
        self._put(_Resumed(frame.ref, tuple(ok), tuple(unknown)))


__all__ = [
    "CLOSE_FORBIDDEN",
    "CLOSE_RATE_LIMITED",
    "CLOSE_SLOW",
    "CLOSE_TRY_AGAIN",
    "CLOSE_UNAUTHENTICATED",
    "Session",
]
