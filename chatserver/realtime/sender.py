"""The sending half of a connection: its state, its bounded outbound queue and the one task that
writes to the socket, moving each conversation's cursor (guarantees 2, 3 and 6)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from starlette.websockets import WebSocket

from chatserver.chat import ChatService
from chatserver.errors import StoreError, api_error
from chatserver.model import frames
from chatserver.model.events import Event, conversation_topic
from chatserver.model.ids import new_id
from chatserver.model.status import OPEN_STATUSES, WAITING_STATUSES, Status
from chatserver.model.types import Agent, Author, AuthorKind, Contact, Conversation, Message, MessageKind
from chatserver.model.visitor import VisitorConversation
from chatserver.realtime.cursor import Cursors, Live
from chatserver.realtime.hub import Hub
from chatserver.realtime.outbox import (
    CloseItem,
    Fill,
    Follow,
    Item,
    Outbox,
    Refresh,
    Release,
    Resumed,
    SendFrame,
    SendMessage,
    SendText,
    Snapshot,
    Sync,
    Track,
)
from chatserver.realtime.ratelimit import TokenBucket
from chatserver.settings import Settings
from chatserver.transport.websocket import CORK

log = logging.getLogger(__name__)

CLOSE_SLOW = 4008
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_RATE_LIMITED = 4429
CLOSE_TRY_AGAIN = 1013
"""The database is unreachable while the connection is set up: reconnect later."""
PAGE = 500
RESUME_WINDOW_S = 2.0
"""How long live messages of the snapshot's conversations wait for the client's first frame (its resume),
counted from the end of the snapshot; a first frame that arrived but is still being handled (a slow
database in a reconnect storm) is waited for however long it takes."""
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 10.0
"""A resume or a fill whose read failed is tried again after 0.5 s, doubling up to 10 s, until it succeeds
(or the connection ends): the next live message would repair it, but there may never be one."""


class Sender:
    """The connection's state and its sender task: the only writer to the socket."""

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
        self._out = Outbox(settings.send_queue_size)
        self._cursors = Cursors()
        self._first_frame = False
        self._heard = False
        """The client's first frame arrived (its handling may not be over)."""
        self._release_timer: asyncio.TimerHandle | None = None
        self._versions: dict[str, int] = {}
        self._convs: dict[str, Conversation] = {}
        self._payloads: dict[str, dict[str, Any]] = {}
        self.topics: set[str] = set()
        self._bucket = TokenBucket(settings.rate_limit_per_s, settings.rate_limit_burst)
        self._strikes = 0
        self._closing = False
        self._sender: asyncio.Task[None] | None = None
        self._in_flight: asyncio.Semaphore | None = None  # made on the first message.send
        self._acks: set[asyncio.Future[tuple[Message, bool]]] = set()
        """Messages of this connection waiting for their commit (answered by a callback)."""
        self._following: set[asyncio.Task[None]] = set()
        self._retries = 0
        """Reads that failed in a row (the backoff of the next retry)."""

    def deliver(self, topic: str, event: Event) -> None:
        """An event from the hub (the session decides what it sends of it)."""
        raise NotImplementedError

    @property
    def is_agent(self) -> bool:
        return self.agent is not None

    @property
    def watches_queue(self) -> bool:
        """Supervisors, and every agent with manual routing (they take conversations from it), get each
        waiting conversation; other agents get their offers, their own, the pending conversations (which
        routing gave up on and anyone may take) and a summary of the queue."""
        agent = self.agent
        return agent is not None and (agent.role.supervises or self.settings.routing == "manual")

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
            self._out.put_nowait(CloseItem(code, reason))
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

    def _put(self, item: Item) -> None:
        if self._closing:
            return
        try:
            self._out.put_nowait(item)
        except asyncio.QueueFull:
            log.info("session %s is too slow; closing with %d", self.id, CLOSE_SLOW)
            asyncio.get_running_loop().create_task(self.close(CLOSE_SLOW, "slow consumer: resume"))

    def send(self, frame: dict[str, Any]) -> None:
        self._put(SendFrame(frame))

    async def _refresh_agent(self) -> None:
        """The agent's profile changed (language, skills, name): use the stored one from now on."""
        assert self.agent is not None
        with contextlib.suppress(Exception):
            self.agent = await self.service.store.get_agent(self.agent.id)
            self.author = self.agent.author

    def seq_hint(self, conversation_id: str, last_seq: int) -> None:
        self._put(Fill(conversation_id, last_seq))

    def resync(self) -> None:
        self._put(Snapshot())

    # -- the sender: the only writer to the socket -----------------------------------------------------

    async def _write(self, frame: dict[str, Any]) -> None:
        await self.ws.send_text(frames.encode(frame))

    async def _send_loop(self) -> None:
        # A burst (a commit of many messages, a snapshot) is written in one system call: corked while
        # more items wait, uncorked before waiting for the next (transport/websocket.py, CORK).
        cork = self.ws.scope.get("extensions", {}).get(CORK)
        out = self._out
        try:
            while True:
                if cork is not None and out.empty():
                    cork["uncork"]()
                item = await out.get()
                if cork is not None and not out.empty():
                    cork["cork"]()
                try:
                    if await self._process(item):
                        return
                    self._retries = 0
                except StoreError as exc:  # the database is away: say so, and try again later
                    log.info("session %s: %s", self.id, exc)
                    await self._write(frames.error(api_error(exc)))
                    self._retry_later(item)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the socket is gone or the database failed: end this session only
            log.info("session %s sender stopped: %r", self.id, exc)
            with contextlib.suppress(Exception):
                await self.ws.close(1011, "internal error")

    async def _process(self, item: Item) -> bool:
        """Send one item; True when the session must end."""
        match item:
            case SendFrame(frame=frame):
                await self._write(frame)
            case SendText(text=text):
                await self.ws.send_text(text)
            case SendMessage(message=m):
                await self._send_message(m)
            case Fill(conversation_id=cid, up_to=up_to):
                if self._cursors.wants_fill(cid, up_to):
                    await self._fill(cid, up_to)
            case Sync(conversation_id=cid, after=after):
                # a cursor past the head (a client from another database) would mute it forever
                heads = await self.service.store.conversation_heads([cid])
                self._cursors.resume(cid, min(after, heads.get(cid, (0, 0))[0]))
                await self._fill(cid, None)
            case Track(conv=conv, baseline=baseline, announce=announce):
                await self._announce(conv, announce)
                if baseline is not None and self._cursors.follow(conv.id, baseline):
                    # what committed between the receiver's subscription and now was not sent live
                    await self._fill(conv.id, None)
            case Release():
                for cid in self._cursors.release():
                    await self._fill(cid, None)
            case Resumed():
                cursors = {cid: self._cursors.seq(cid) for cid in item.conversation_ids}
                frame = frames.resumed(cursors, item.ref)
                if item.unknown:
                    frame["unknown"] = list(item.unknown)
                await self._write(frame)
            case Follow(conversation_id=cid):
                conv = await self.service.store.get_conversation(cid)
                await self._track(conv)
            case Snapshot():
                try:
                    await self._snapshot()
                finally:  # the window starts once the client has its snapshot
                    if self._release_timer is None and not self._first_frame:
                        loop = asyncio.get_running_loop()
                        self._release_timer = loop.call_later(RESUME_WINDOW_S, self._release_if_silent)
            case Refresh(frame=frame):
                await self._refresh_agent()
                await self._write(frame)
            case CloseItem(code=code, reason=reason):
                await self.ws.close(code, reason)
                return True  # the session is over
        return False

    def _retry_later(self, item: Item) -> None:
        """A resume, a fill or a release could not read the database: queue it again after a backoff. Else
        the client would wait for the next live message of the conversation to repair the gap, and after
        a resume there may be none (the agent has stopped writing)."""
        again: list[Item]
        match item:
            case Sync():
                again = [item]
            case Fill(conversation_id=cid):
                again = [Fill(cid, None)]
            case Release():  # the cursors are released; their fills did not all happen
                again = [Fill(cid, None) for cid in self._cursors.followed()]
            case _:
                return
        delay = min(RETRY_MAX_S, RETRY_FIRST_S * 2**self._retries)
        self._retries += 1
        asyncio.get_running_loop().call_later(delay, self._put_all, again)

    def _put_all(self, items: list[Item]) -> None:
        for item in items:
            self._put(item)

    def _release_if_silent(self) -> None:
        """The window passed: a client that has sent nothing gets its live stream now."""
        if not self._heard and not self._first_frame:
            self._first_frame = True
            self._put(Release())

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
        await self.ws.send_text(frames.message_text(m, visitor=not self.is_agent))
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
                await self.ws.send_text(frames.message_text(m, visitor=not self.is_agent))
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
            statuses = WAITING_STATUSES if self.watches_queue else {Status.PENDING}
            waiting = await service.store.list_conversations(
                statuses=[s.value for s in statuses], limit=200, newest_first=False
            )
            self.hub.note_waiting([(conv.id, conv.status.value) for conv in waiting])
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
