"""The receiving half of a connection: client frames, decoded and handled one at a time."""

from __future__ import annotations

import asyncio
import functools
import logging
import time

from chatserver.errors import (
    ApiError,
    BadFrame,
    Forbidden,
    NotFound,
    RateLimited,
    api_error,
)
from chatserver.model import frames
from chatserver.model.events import conversation_topic
from chatserver.model.status import Status
from chatserver.model.types import Conversation, Message
from chatserver.realtime.outbox import (
    Release,
    Resumed,
    Sync,
    Track,
)
from chatserver.realtime.sender import CLOSE_RATE_LIMITED, Sender
from chatserver.widgetcfg.store import check_start_fields

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 32
"""Messages one connection may have waiting for their commit at once."""


class Receiver(Sender):
    """Client frames: what a visitor or an agent asks for."""

    async def _follow(self, conv: Conversation, *, announce: bool = True) -> None:
        """From the receiver: follow ``conv`` (the sender sets the cursor, in order with the live stream)."""
        self._convs[conv.id] = conv
        baseline = await self._subscribe(conv.id)
        self._put(Track(conv, baseline, announce))

    # -- the receiver ------------------------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        while not self._closing:
            msg = await self.ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            self._heard = True
            try:
                if not await self._receive_one(msg.get("text")):
                    return
            finally:
                if not self._first_frame:  # normally the resume: it has placed the snapshot's cursors
                    self._first_frame = True
                    self._put(Release())

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
                self._acks.add(committed)
                committed.add_done_callback(functools.partial(self._acked, frame, conv))
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

    def _acked(
        self,
        frame: frames.MessageSend,
        conv: Conversation,
        committed: asyncio.Future[tuple[Message, bool]],
    ) -> None:
        """The message's commit (or its failure): answer the sender at once, a callback rather than a
        task per message."""
        self._acks.discard(committed)
        if self._in_flight is not None:
            self._in_flight.release()
        if committed.cancelled():
            return
        exc = committed.exception()
        if exc is not None:
            err = exc if isinstance(exc, Exception) else RuntimeError(repr(exc))
            self._error(err, frame.ref, "message.send")
            return
        message, _ = committed.result()
        self.send(frames.ack(frame.ref, message))
        if self.agent is not None:  # an agent who writes in a conversation follows it
            if conversation_topic(conv.id) in self.topics:
                self._put(Track(conv, None, False))
            else:
                task = asyncio.get_running_loop().create_task(self._follow_written(conv, frame.ref))
                self._following.add(task)
                task.add_done_callback(self._following.discard)

    async def _follow_written(self, conv: Conversation, ref: str | None) -> None:
        try:
            await self._follow(conv, announce=False)
        except Exception as exc:  # e.g. the database went away: say so (the message itself is acked)
            self._error(exc, ref, "message.send")

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
            self._put(Track(conv, None, True))
            self._put(Sync(cid, after))
            ok.append(cid)
        self._put(Resumed(frame.ref, tuple(ok), tuple(unknown)))
