"""What adapters may do, on top of the conversation service: bots reply (with buttons), set contact
attributes and routing fields, and hand off; visitors click buttons and ask for a person; a bot that is
away longer than its grace period hands its conversations off by itself.

Every check happens before anything changes: a bot acting on a conversation of an inbox it does not
serve is ``Forbidden``; a handoff of a conversation not in ``bot`` is ``Conflict``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from chatserver.adapterapi.frames import InboundFile, Inject
from chatserver.adapterapi.model import (
    Action,
    Adapter,
    AdapterKind,
    GraceClock,
    Handoff,
    handoff_requested,
    is_reply,
)
from chatserver.adapterapi.statuses import Applied, StatusQueries
from chatserver.adapterapi.store import AdapterQueries
from chatserver.auth.secrets import sha256_hex
from chatserver.channels.inbound import EARLY_REPORT_ATTEMPTS, EARLY_REPORT_RETRY_S
from chatserver.chat import ChatService, InboundFiles
from chatserver.errors import Conflict, Forbidden, Invalid, NotFound, TooLarge
from chatserver.files.model import check_type
from chatserver.model.ids import now_ms
from chatserver.model.status import Status
from chatserver.model.types import (
    SYSTEM_AUTHOR,
    Author,
    AuthorKind,
    Contact,
    Conversation,
    Message,
    MessageKind,
)
from chatserver.outbox.registry import DeliveryState
from chatserver.outbox.worker import delivery_event
from chatserver.presence import Presence
from chatserver.store.writer import PendingMessage

log = logging.getLogger(__name__)

MAX_ATTRIBUTES = 100
REVOKE_CHECK_S = 5.0
"""How often each process looks for adapters revoked without a bus message (the CLI on embedded
defaults): their open sockets close within this long. With the bus (REST, or the CLI with Redis) at once."""


def adapter_key(adapter_id: str) -> str:
    """The presence key of an adapter's connections (any process)."""
    return f"adapter:{adapter_id}"


class AdapterService:
    def __init__(
        self,
        chat: ChatService,
        queries: AdapterQueries,
        presence: Presence,
        *,
        grace_s: float,
        handoff_words: Sequence[str],
    ) -> None:
        self.chat = chat
        self.queries = queries
        self.statuses = StatusQueries(queries.db)
        self.presence = presence
        self.handoff_words = tuple(handoff_words)
        self.clock = GraceClock(grace_s)
        self.down: set[str] = set()
        """Bots away longer than the grace period (and not back yet): their inboxes go to people."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._revoked: set[str] = set()
        self.close_local: Callable[[str], None] | None = None
        """Set by the app: end this process's connections of a revoked adapter (4401)."""
        self._watcher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # revoked before this process started: no socket of theirs can open here
        self._revoked = {a.id for a in await self.queries.all() if a.revoked_at is not None}
        self.chat.bot_for_inbox = self.bot_for_inbox
        self.chat.message_hooks.append(self._on_messages)
        self._watcher = asyncio.create_task(self._watch(), name="bot-grace")

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def bot_for_inbox(self, inbox_id: str) -> str | None:
        """The bot a new conversation of this inbox starts with; None while that bot is down."""
        bot = await self.queries.bot_for_inbox(inbox_id)
        return None if bot in self.down else bot

    # -- tokens --------------------------------------------------------------------------------------------

    def connected(self, adapter_id: str) -> None:
        """A connection of this adapter opened here: it is back (other processes see it in presence)."""
        self.clock.connected(adapter_id)
        self.down.discard(adapter_id)

    async def authenticate(self, token: str | None) -> Adapter | None:
        if not token:
            return None
        return await self.queries.for_token(sha256_hex(token))

    # -- access --------------------------------------------------------------------------------------------

    async def conversation(self, adapter: Adapter, conversation_id: str) -> Conversation:
        conv = await self.chat.store.get_conversation(conversation_id)
        if not adapter.serves(conv.inbox_id):
            raise Forbidden("this conversation belongs to an inbox this adapter does not serve")
        return conv

    # -- bots ----------------------------------------------------------------------------------------------

    async def bot_send(
        self,
        adapter: Adapter,
        conversation_id: str,
        *,
        text: str,
        client_id: str,
        actions: Sequence[Action] = (),
    ) -> tuple[Message, bool]:
        conv = await self.conversation(adapter, conversation_id)
        if adapter.kind is not AdapterKind.BOT:
            raise Forbidden("only bot adapters reply in conversations; channels inject messages")
        if conv.status is not Status.BOT:
            raise Conflict(f"the conversation is {conv.status.value}: it was handed off")
        message, duplicate = await self.chat.send(
            author=adapter.author, conv=conv, text=text, client_id=client_id, actions=tuple(actions)
        )
        return message, duplicate

    async def set_contact(self, adapter: Adapter, conversation_id: str, values: dict[str, Any]) -> Contact:
        """A bot fills in what it learned: name, email, language, custom attributes (merged)."""
        conv = await self.conversation(adapter, conversation_id)
        contact = await self.chat.store.get_contact(conv.contact_id)
        update: dict[str, Any] = {}
        for name in ("name", "email", "language"):
            if values.get(name) is not None:
                update[name] = values[name]
        attributes = values.get("attributes")
        if attributes:
            merged = {**contact.attributes, **attributes}
            if len(merged) > MAX_ATTRIBUTES:
                raise Invalid(
                    f"a contact has at most {MAX_ATTRIBUTES} attributes", data={"field": "attributes"}
                )
            update["attributes"] = merged
        if not update:
            return contact
        contact = await self.chat.store.update_contact(contact.id, **update)
        await self.chat.publish_conversation(await self.chat.store.get_conversation(conv.id))
        return contact

    async def set_routing(
        self, adapter: Adapter, conversation_id: str, *, skills: dict[str, int] | None, priority: int | None
    ) -> Conversation:
        conv = await self.conversation(adapter, conversation_id)
        if conv.status is not Status.BOT:
            raise Conflict(f"the conversation is {conv.status.value}: it was handed off")
        conv = await self.queries.set_routing_fields(conv, skills=skills, priority=priority)
        await self.chat.publish_conversation(conv)
        return conv

    async def hand_off(self, adapter: Adapter | None, conversation_id: str, handoff: Handoff) -> Conversation:
        """``bot`` -> ``queued``: the summary becomes a note at the top of what the agent sees and part
        of the conversation payload; routing offers it like any other."""
        if adapter is not None:
            conv = await self.conversation(adapter, conversation_id)
        else:
            conv = await self.chat.store.get_conversation(conversation_id)
        if conv.status is not Status.BOT:
            raise Conflict(f"the conversation is {conv.status.value}, not bot: nothing to hand off")
        if handoff.team is not None:
            teams = {t.id: t for t in await self.chat.store.list_teams()}
            by_name = {t.name: t for t in teams.values()}
            found = teams.get(handoff.team) or by_name.get(handoff.team)
            if found is None:
                raise NotFound("no such team")
            handoff = Handoff(handoff.summary, handoff.skills, handoff.priority, found.id, handoff.reason)
        by = adapter.name if adapter is not None else "bot"
        routing = dict(conv.routing)
        routing["handoff"] = {
            "summary": handoff.summary,
            "by": by,
            "reason": handoff.reason,
            "at": now_ms(),
        }
        conv = await self.queries.hand_off(
            conv, routing, skills=handoff.skills, priority=handoff.priority, team=handoff.team
        )
        note = f"Handoff from {by}: {handoff.summary}" if handoff.summary else f"Handoff from {by}"
        await self.chat.store.append_message(PendingMessage(conv.id, SYSTEM_AUTHOR, MessageKind.NOTE, note))
        await self.chat.publish_conversation(conv)
        self.chat.wake_router("handoff")
        return conv

    # -- custom channels -----------------------------------------------------------------------------------

    async def inject(self, adapter: Adapter, frame: Inject) -> tuple[Message, bool]:
        """A custom channel's inbound message, into the contact's open conversation of that inbox
        (deduped on the platform's ``external_id``); routed and translated like any other."""
        if adapter.kind is not AdapterKind.CHANNEL:
            raise Forbidden("only channel adapters inject messages")
        if not adapter.serves(frame.inbox_id):
            raise Forbidden("this adapter does not serve that inbox")
        inbox = await self.chat.store.get_inbox(frame.inbox_id)
        files = self._files(frame.files, frame.text)
        c = frame.contact
        message, duplicate = await self.chat.receive_channel_message(
            inbox,
            identity=channel_identity(adapter.id, c.external_id),
            external_id=frame.external_id,
            text=frame.text,
            name=c.name or c.external_id,
            language=c.language,
            files=files,
        )
        if c.email and not duplicate:
            conv = await self.chat.store.get_conversation(message.conversation_id)
            contact = await self.chat.store.get_contact(conv.contact_id)
            if contact.email is None:
                await self.chat.store.update_contact(contact.id, email=c.email)
        return message, duplicate

    def _files(self, files: Sequence[InboundFile], text: str) -> InboundFiles | None:
        """Check an injected message's files against the upload limits (type, size) before anything is
        stored; the callable stores them once the conversation is known."""
        if not files:
            return None
        store = self.chat.files
        if store is None:
            raise Invalid("files are not accepted here", data={"field": "attachments"})
        types: list[str] = []
        for i, f in enumerate(files):
            where = f"attachments.{i}"
            try:
                types.append(check_type(f.content_type, store.limits.types))
            except Invalid as exc:
                raise Invalid(exc.message, data={**exc.data, "field": where}) from None
            if len(f.data) > store.limits.max_bytes:
                raise TooLarge(
                    f"attachment {i} is over the limit of {store.limits.max_bytes} bytes",
                    data={"field": where, "limit": store.limits.max_bytes},
                )
            if not f.data:
                raise Invalid("the file is empty", data={"field": where})

        async def stored(conversation_id: str, contact: Author) -> tuple[str, tuple[dict[str, Any], ...]]:
            out = []
            for f, ctype in zip(files, types, strict=True):
                att = await store.create(
                    conversation_id, contact, name=f.name, content_type=ctype, data=f.data
                )
                out.append(att.to_wire())
            return text, tuple(out)

        return stored

    async def channel_identity(self, conv: Conversation) -> str | None:
        """The platform's id of the conversation's contact (what a channel adapter sends replies to)."""
        found = await self.queries.identity(conv.contact_id, conv.channel)
        return found.split(":", 1)[1] if found and ":" in found else found

    async def report_status(
        self, adapter: Adapter, message_id: str, state: str, reason: str | None
    ) -> Applied:
        """A custom channel says how far an agent's reply got (sent, delivered, read, failed): stored as
        that reply's delivery state (forward only) and shown to agents as ``message.status``."""
        if adapter.kind is not AdapterKind.CHANNEL:
            raise Forbidden("only channel adapters report delivery states")
        message = await self.chat.store.get_message(message_id)
        await self.conversation(adapter, message.conversation_id)  # Forbidden for another inbox's
        if not is_reply(message):
            raise Invalid(
                "only agents' and bots' public replies have a delivery state", data={"field": "message_id"}
            )
        report = (adapter.id, message.conversation_id, message.id, DeliveryState(state), reason)
        applied = await self._apply_status(*report)
        if applied.early:  # the POST to its URL is still in flight: apply once that is recorded
            self._spawn(self._apply_later(*report))
        return applied

    async def _apply_status(
        self, adapter_id: str, conversation_id: str, message_id: str, state: DeliveryState, reason: str | None
    ) -> Applied:
        applied = await self.statuses.apply(
            adapter_id, conversation_id=conversation_id, message_id=message_id, state=state, reason=reason
        )
        if applied.changed:
            self.chat.publish(delivery_event(applied.delivery))
        return applied

    async def _apply_later(
        self, adapter_id: str, conversation_id: str, message_id: str, state: DeliveryState, reason: str | None
    ) -> None:
        delay = EARLY_REPORT_RETRY_S
        for _ in range(EARLY_REPORT_ATTEMPTS):
            await asyncio.sleep(delay)
            applied = await self._apply_status(adapter_id, conversation_id, message_id, state, reason)
            if not applied.early:
                return
            delay *= 2
        log.info(
            "adapter %s: a %s report for %s was dropped (still being sent)", adapter_id, state, message_id
        )

    # -- visitors ------------------------------------------------------------------------------------------

    async def visitor_action(
        self, contact: Contact, conversation_id: str, message_id: str, action_id: str
    ) -> tuple[Message, bool]:
        """A click on a bot's button: stored as the visitor's message with the button's label."""
        conv = await self.chat.visitor_conversation(contact.id, conversation_id)
        message = await self.chat.store.get_message(message_id)
        if message.conversation_id != conv.id:
            raise NotFound("message not found")
        label = next((a.label for a in message.actions if a.id == action_id), None)
        if label is None:
            raise Invalid("that message has no button with this id", data={"field": "action_id"})
        key = hashlib.sha256(f"{message_id}:{action_id}".encode()).hexdigest()[:40]
        return await self.chat.send(
            author=contact_author(contact),
            conv=conv,
            text=label,
            client_id="act:" + key,
            contact_language=contact.language,
            actions=(Action(action_id, label, reply_to=message_id),),
        )

    def _on_messages(self, messages: Sequence[Message]) -> None:
        """After each commit: a visitor who types a handoff word in a bot conversation gets a person."""
        for m in messages:
            spoken = m.author.kind is AuthorKind.CONTACT and m.kind is MessageKind.TEXT and not m.actions
            if spoken and handoff_requested(m.text, self.handoff_words):
                self._spawn(self._visitor_handoff(m.conversation_id))

    async def _visitor_handoff(self, conversation_id: str) -> None:
        conv = await self.chat.store.get_conversation(conversation_id)
        if conv.status is not Status.BOT:
            return
        bot_id = await self.queries.bot_for_inbox(conv.inbox_id)
        bot = None
        if bot_id is not None:
            with contextlib.suppress(NotFound):
                bot = await self.queries.get(bot_id)
        with contextlib.suppress(Conflict, Forbidden):
            asked = Handoff("The visitor asked for a person.", reason="visitor")
            await self.hand_off(bot, conversation_id, asked)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("bot handoff failed: %r", task.exception())

    # -- grace period --------------------------------------------------------------------------------------

    async def _watch(self) -> None:
        interval = max(0.05, min(REVOKE_CHECK_S, self.clock.grace_s / 4))
        while True:
            await asyncio.sleep(interval)
            try:
                adapters = await self.queries.all()
                self.check_revoked(adapters)
                await self.check_bots(time.monotonic(), adapters)
            except Exception:
                log.exception("adapter check failed")

    def check_revoked(self, adapters: Sequence[Adapter]) -> list[str]:
        """Adapters revoked since the last check (by ``chatserver revoke-adapter`` with no bus to tell
        this process, or while the bus was down): their connections here close (4401). The ids."""
        revoked = {a.id for a in adapters if a.revoked_at is not None}
        new = sorted(revoked - self._revoked)
        self._revoked |= revoked
        for adapter_id in new:
            if self.close_local is not None:
                self.close_local(adapter_id)
        return new

    async def check_bots(self, now: float, adapters: Sequence[Adapter] | None = None) -> list[str]:
        """Hand off the conversations of bots away longer than the grace period; their ids."""
        found = adapters if adapters is not None else await self.queries.all()
        bots = [a for a in found if a.kind is AdapterKind.BOT and a.revoked_at is None]
        keys = {adapter_key(a.id): a for a in bots}
        connected = await self.presence.connected(list(keys))
        for key, adapter in keys.items():
            if key in connected:
                self.clock.connected(adapter.id)
                self.down.discard(adapter.id)
            else:
                self.clock.disconnected(adapter.id, now)
        due = self.clock.due(now)
        for adapter_id in due:
            self.down.add(adapter_id)
            adapter = next(a for a in bots if a.id == adapter_id)
            for conv in await self.queries.conversations_in(adapter.inbox_ids, [Status.BOT]):
                with contextlib.suppress(Conflict, NotFound, Forbidden):
                    await self.hand_off(
                        adapter,
                        conv.id,
                        Handoff(f"{adapter.name} is unavailable; the visitor was waiting.", reason="grace"),
                    )
            self.clock.disconnected(adapter_id, now)  # still away: again after another grace period
        return due


def channel_identity(adapter_id: str, external_id: str) -> str:
    """A custom channel's contact identity: its platform id, scoped to the adapter."""
    return f"{adapter_id}:{external_id}"


def contact_author(contact: Contact) -> Author:
    return Author(AuthorKind.CONTACT, contact.id, contact.name)
