"""The conversation service: what visitors and agents can do, shared by the WebSocket and REST layers.

It authorizes, changes state through the store (compare-and-set), and publishes events only after the
change committed (guarantee 5), in commit order, through one bounded publisher (``bus/publisher.py``).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from chatserver.bus import Bus, Publisher
from chatserver.errors import Conflict, Forbidden, Invalid, NotFound, Unavailable
from chatserver.model.events import (
    AGENTS_TOPIC,
    QUEUE_TOPIC,
    ROUTING_TOPIC,
    AccessEvent,
    ConversationEvent,
    Event,
    MessageEvent,
    OfferRevokedEvent,
    PresenceEvent,
    ReadEvent,
    TypingEvent,
    WakeEvent,
    agent_topic,
    conversation_topic,
    inbox_topic,
)
from chatserver.model.status import CLAIMABLE, OPEN_STATUSES, Status
from chatserver.model.system_lines import SystemLine
from chatserver.model.types import (
    SYSTEM_AUTHOR,
    Agent,
    AgentStatus,
    Author,
    AuthorKind,
    Contact,
    Conversation,
    Inbox,
    Message,
    MessageAction,
    MessageKind,
)
from chatserver.presence import Presence
from chatserver.routing.config import first_match
from chatserver.store.store import Store
from chatserver.store.writer import PendingMessage
from chatserver.translation.delivery import TranslationDelivery
from chatserver.translation.service import TranslationResult

if TYPE_CHECKING:
    from chatserver.adapterapi.service import AdapterService
    from chatserver.files.service import AttachmentService
    from chatserver.model.frames import TemplateRequest
    from chatserver.outbox.registry import NewDelivery
    from chatserver.tickets.csat import CsatService
    from chatserver.tickets.service import TicketService

log = logging.getLogger(__name__)

CLAIM_ATTEMPTS = 8
"""Compare-and-set attempts for a manual assignment racing other changes (the router's)."""
OFFERED_ONLY = "conversations are offered to agents by routing; a supervisor can assign one"

OutboundBuilder = Callable[[Conversation, Author, str], Awaitable[Sequence["NewDelivery"]]]
"""The outbound deliveries of a public reply in a conversation of one channel (an email, a platform
message), written in the reply's own transaction. It may refuse the reply before anything is stored
(raise ``Conflict``, e.g. outside WhatsApp's 24-hour window)."""
TemplateBuilder = Callable[
    [Conversation, Author, "TemplateRequest"], Awaitable[tuple[str, Sequence["NewDelivery"]]]
]
"""An agent's template message (WhatsApp): the text to store for it and its deliveries; Invalid for a
template the inbox does not list."""
FilesOutboundBuilder = Callable[
    [Conversation, Author, str, tuple[dict[str, Any], ...]], Awaitable[Sequence["NewDelivery"]]
]
"""The deliveries of a public reply with files (their wire form, already checked as the sender's
uploads), for the channels that can send files; it may refuse them (``invalid``) before anything is
stored."""
InboundFiles = Callable[[str, Author], Awaitable[tuple[str, tuple[dict[str, Any], ...]]]]
"""A channel message's files, stored once its conversation is known (never for a duplicate): given the
conversation id and the contact, the text to store and the stored files."""


class ChatService:
    def __init__(self, store: Store, bus: Bus, presence: Presence, *, routing: str = "manual") -> None:
        self.store = store
        self.bus = bus
        self.presence = presence
        self.routing = routing
        """offers: the router assigns and plain agents cannot claim; manual: agents claim."""
        self.translation: TranslationDelivery | None = None
        """Set by the app when translation is configured."""
        self.publisher = Publisher(bus)
        """Publishes in commit order through a bounded buffer (chatserver/bus/publisher.py)."""
        self.tickets: TicketService | None = None
        """Set by the app: escalation (``conversation.escalate``) and threading into tickets."""
        self.csat: CsatService | None = None
        self.message_hooks: list[Callable[[Sequence[Message]], None]] = []
        """Called after each commit with the new messages (tickets thread contacts' messages)."""
        self.outbound: dict[str, OutboundBuilder] = {}
        """channel -> the deliveries of a public reply in its conversations (registered by the app)."""
        self.templates: dict[str, TemplateBuilder] = {}
        """channel -> the text and deliveries of a template message (registered by the app)."""
        self.outbound_files: dict[str, FilesOutboundBuilder] = {}
        """channel -> the deliveries of a public reply with files (channels that can send files)."""
        self.bot_for_inbox: Callable[[str], Awaitable[str | None]] | None = None
        """Set by the adapter API: the bot serving an inbox; its new conversations start in ``bot``."""
        self.adapters: AdapterService | None = None
        """The adapter API (bots' buttons, handoffs), set by the app."""
        self.wake_outbox: Callable[[], None] = lambda: None
        """Set by the app when this process runs the outbox worker: send new deliveries now."""
        self.files: AttachmentService | None = None
        """Set by the app: files sent with messages (chatserver/files/)."""
        self._translating: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.store.writer.on_commit = self._on_commit
        self.publisher.start()

    async def stop(self) -> None:
        await self.publisher.stop()  # already-committed events go out first (bounded wait)

    @property
    def dropped_events(self) -> int:
        return self.publisher.dropped

    # -- publishing (after commit, in order) ---------------------------------------------------------------

    def _on_commit(self, messages: Sequence[Message]) -> None:
        self.publish([(conversation_topic(m.conversation_id), MessageEvent(m)) for m in messages])
        for hook in self.message_hooks:
            hook(messages)

    def publish(self, items: list[tuple[str, Event]]) -> None:
        self.publisher.publish(items)

    def revoke_access(self, agent_id: str, reason: str, *, session_hash: str | None = None) -> None:
        """End an agent's live connections on every process: ``deactivated`` and ``role`` all of them,
        ``logout`` those of the login session ``session_hash`` (after the change committed)."""
        self.publish([(agent_topic(agent_id), AccessEvent(agent_id, reason, session_hash))])

    # -- views -----------------------------------------------------------------------------------------------

    async def conversation_payload(
        self,
        conv: Conversation,
        *,
        contact: Contact | None = None,
        assignee: Agent | None = None,
        new: bool = False,
    ) -> dict[str, Any]:
        """The conversation's wire form. ``contact`` and ``assignee`` (if the caller has them: the
        assignee only when it is ``conv.assignee_id``) are not read again; ``new`` says the conversation
        was just created (no read cursors, no ticket yet). The rest is read in one transaction."""
        return (await self.conversation_payloads([conv], contact=contact, assignee=assignee, new=new))[0]

    async def conversation_payloads(
        self,
        convs: Sequence[Conversation],
        *,
        contact: Contact | None = None,
        assignee: Agent | None = None,
        new: bool = False,
    ) -> list[dict[str, Any]]:
        """The wire forms of several conversations, read together (one transaction, a statement per
        part, whatever their number): the router's offers of one cycle. ``contact``, ``assignee`` and
        ``new`` as for :meth:`conversation_payload`, for the conversations they fit."""
        parts = await self.store.conversation_parts(
            convs,
            skip_contacts=[contact.id] if contact is not None else (),
            skip_assignees=[assignee.id] if assignee is not None else (),
            skip_reads=[c.id for c in convs] if new else (),
            tickets_too=self.tickets is not None,
        )
        out = []
        for conv in convs:
            part = parts[conv.id]
            who = part.contact
            if contact is not None and contact.id == conv.contact_id:
                who = contact
            author, avatar = part.assignee, part.assignee_avatar
            if assignee is not None and assignee.id == conv.assignee_id:
                author, avatar = assignee.author, assignee.avatar_url
            payload = conv.to_wire(contact=who, assignee=author)
            if author is not None and avatar is not None:  # the widget shows the assigned agent's face
                payload["assignee"]["avatar_url"] = avatar
            if conv.routing.get("handoff"):  # a bot's handoff summary (adapter API)
                payload["handoff"] = conv.routing["handoff"]
            payload["reads"] = [
                {"reader": {"kind": kind, "id": reader_id}, "seq": seq} for kind, reader_id, seq in part.reads
            ]
            if self.tickets is not None:
                payload["ticket"] = part.ticket
            out.append(payload)
        return out

    async def publish_conversation(
        self,
        conv: Conversation,
        *,
        contact: Contact | None = None,
        assignee: Agent | None = None,
        new: bool = False,
    ) -> dict[str, Any]:
        payload = await self.conversation_payload(conv, contact=contact, assignee=assignee, new=new)
        self.publish_payload(conv, payload)
        return payload

    def publish_payload(self, conv: Conversation, payload: dict[str, Any]) -> None:
        """Publish a conversation change whose payload the caller built."""
        self.publish(conversation_targets(conv, ConversationEvent(conv.id, conv.version, payload)))

    # -- access ----------------------------------------------------------------------------------------------

    async def visitor_conversation(self, contact_id: str, conversation_id: str) -> Conversation:
        conv = await self.store.get_conversation(conversation_id)
        if conv.contact_id != contact_id:
            raise Forbidden("this conversation belongs to someone else")
        return conv

    async def agent_conversation(self, agent: Agent, conversation_id: str) -> Conversation:
        """Every agent of the account may see every conversation (collision shows who else is there)."""
        return await self.store.get_conversation(conversation_id)

    # -- visitor actions -------------------------------------------------------------------------------------

    async def start_conversation(
        self,
        *,
        contact_id: str,
        inbox_id: str,
        language: str | None,
        contact_language: str | None = None,
        skills: dict[str, int],
        fields: dict[str, str],
        reuse_open: bool = True,
    ) -> Conversation:
        """Start a conversation, or return the contact's open one in this inbox (a double click, a second
        tab) so a visitor never ends up with two parallel chats by accident. Channels with threads of
        their own (a new email thread) pass ``reuse_open=False``."""
        known = await self.store.start_context(contact_id, inbox_id, reuse_open=reuse_open)
        if known.open_conversation is not None:
            return known.open_conversation
        inbox = await self.store.get_inbox_cached(inbox_id)
        rule = first_match(
            await self.store.list_rules_cached(), inbox_id=inbox.id, channel=inbox.channel, fields=fields
        )
        routing: dict[str, Any] = {"preferred_agent_id": known.last_agent_id}
        if rule is not None:
            skills = {**rule.skills, **skills}
            routing.update(
                rule_id=rule.id,
                steps=[[r, s] for r, s in rule.steps],
                max_wait_s=rule.max_wait_s,
                offer_timeout_s=rule.offer_timeout_s,
                ticket_on=list(rule.ticket_on),
            )
        bot = await self.bot_for_inbox(inbox.id) if self.bot_for_inbox is not None else None
        conv = await self.store.create_conversation(
            inbox=inbox,
            status=Status.BOT if bot is not None else Status.QUEUED,
            contact_id=contact_id,
            language=_base_language(language or contact_language),
            skills=skills,
            fields=fields,
            priority=rule.priority if rule else 0,
            team=rule.team_id if rule else None,
            routing=routing,
        )
        await self.publish_conversation(conv, contact=known.contact, new=True)
        if bot is None:
            self.wake_router("queued")
        return conv

    async def receive_channel_message(
        self,
        inbox: Inbox,
        *,
        identity: str,
        external_id: str,
        text: str,
        name: str,
        language: str | None = None,
        phone: str | None = None,
        sent_at_ms: int = 0,
        files: InboundFiles | None = None,
    ) -> tuple[Message, bool]:
        """A customer's message from a channel (webhook or poll), returned once committed: into the
        contact's open conversation in this inbox (a new one after it was resolved), then routed and
        translated like a widget chat. A platform id already stored in the inbox returns that message
        (platforms deliver at least once). ``sent_at_ms`` is the platform's timestamp of the message (it
        opens reply windows, e.g. WhatsApp's 24 hours). ``files`` stores the message's media once the
        conversation is known and gives the text to store with them."""
        known = await self.store.message_by_external_id(inbox.id, external_id)
        if known is not None:
            return known, True
        contact = await self.store.ensure_contact(
            inbox.channel, identity, name=name, language=language, phone=phone, inbound_at_ms=sent_at_ms
        )
        conv = await self.start_conversation(
            contact_id=contact.id,
            inbox_id=inbox.id,
            language=None,
            contact_language=contact.language,
            skills={},
            fields={},
        )
        author = Author(AuthorKind.CONTACT, contact.id, contact.name)
        stored: tuple[dict[str, Any], ...] = ()
        if files is not None:
            text, stored = await files(conv.id, author)
        return await self.send(
            author=author,
            conv=conv,
            text=text,
            client_id="ext:" + hashlib.sha256(external_id.encode()).hexdigest()[:40],
            contact_language=contact.language,
            external_id=external_id,
            stored_files=stored,
        )

    def wake_router(self, reason: str) -> None:
        if self.routing == "offers":
            self.publish([(ROUTING_TOPIC, WakeEvent(reason))])

    # -- messages --------------------------------------------------------------------------------------------

    async def send(self, **kwargs: Any) -> tuple[Message, bool]:
        """Store one message and wait for its commit (see :meth:`submit`)."""
        return await (await self.submit(**kwargs))

    async def submit(
        self,
        *,
        author: Author,
        conv: Conversation,
        text: str,
        client_id: str | None,
        private: bool = False,
        agent: Agent | None = None,
        contact_language: str | None = None,
        actions: tuple[MessageAction, ...] = (),
        lang: str | None = None,
        external_id: str | None = None,
        attachments: Sequence[str] = (),
        stored_files: tuple[dict[str, Any], ...] = (),
        template: TemplateRequest | None = None,
    ) -> asyncio.Future[tuple[Message, bool]]:
        """Check and queue a message for the group commit, in call order, without waiting for the commit.
        The returned future is the stored message (and whether it was a duplicate), resolved right after
        the commit; so one connection can have several messages in the same batch and still get them in
        order.
        ``attachments`` are ids of the sender's uploads into this conversation; ``stored_files`` are
        files already stored for it (a channel's or an email's media)."""
        kind = MessageKind.TEXT
        stated = _base_language(lang)
        lang = None
        if author.kind is AuthorKind.CONTACT:
            if private:
                raise Forbidden("visitors cannot write private notes")
            if conv.status == Status.RESOLVED:
                conv = await self._reopen(conv)
            lang, conv = await self._detect(conv, text, contact_language)
        elif agent is not None:
            if private:
                kind = MessageKind.NOTE
            elif conv.assignee_id != agent.id and not agent.role.supervises:
                raise Forbidden("only the assigned agent (or a supervisor) can reply; write a private note")
            elif conv.status == Status.RESOLVED:
                raise Conflict("the conversation is resolved")
            if kind is MessageKind.TEXT:
                lang = stated or self._agent_language(agent)
        deliveries: tuple[NewDelivery, ...] = ()
        builder = self.outbound.get(conv.channel)
        outbound = builder is not None and kind is MessageKind.TEXT and author.kind is not AuthorKind.CONTACT
        files_builder = self.outbound_files.get(conv.channel) if outbound else None
        if attachments and (template is not None or (outbound and files_builder is None)):
            # the platform or the mail would get the text without the files: refuse, nothing stored
            raise Invalid(
                f"files cannot be sent in {conv.channel} conversations yet", data={"field": "attachments"}
            )
        files = stored_files
        if attachments:
            if self.files is None:
                raise Invalid("files are not accepted here", data={"field": "attachments"})
            files = (*files, *await self.files.for_message(conv.id, author, attachments))
        if template is not None:
            text, deliveries = await self._template(conv, author, agent, kind, template)
        elif files_builder is not None and attachments:
            deliveries = tuple(await files_builder(conv, author, text, files))
        elif builder is not None and outbound:
            deliveries = tuple(await builder(conv, author, text))
        item = PendingMessage(
            conv.id,
            author,
            kind,
            text,
            client_id=client_id,
            actions=actions,
            lang=lang,
            external_id=external_id,
            deliveries=deliveries,
            attachments=files,
        )
        future = await self.store.writer.submit(item)
        future.add_done_callback(functools.partial(self._committed, conv, agent, kind, bool(deliveries)))
        return future

    async def _template(
        self,
        conv: Conversation,
        author: Author,
        agent: Agent | None,
        kind: MessageKind,
        template: TemplateRequest,
    ) -> tuple[str, tuple[NewDelivery, ...]]:
        if agent is None or kind is not MessageKind.TEXT:
            raise Forbidden("only agents send templates, and never as notes")
        build = self.templates.get(conv.channel)
        if build is None:
            raise Invalid(f"{conv.channel} conversations take no templates", data={"field": "template"})
        text, deliveries = await build(conv, author, template)
        return text, tuple(deliveries)

    def _committed(
        self,
        conv: Conversation,
        agent: Agent | None,
        kind: MessageKind,
        queued: bool,
        future: asyncio.Future[tuple[Message, bool]],
    ) -> None:
        """Right after a message's commit (a callback, not a task per message): wake the outbox for its
        deliveries and schedule its translation."""
        if future.cancelled() or future.exception() is not None:
            return  # its sender is told (the future's exception); nothing was stored
        message, duplicate = future.result()
        if duplicate:
            return
        if queued:
            self.wake_outbox()
        if self.translation is None or kind is not MessageKind.TEXT:
            return
        if agent is not None:
            self.translation.schedule(message, conv.language)
            return
        if conv.assignee_id is None:
            self.translation.schedule(message, self._agent_language(None))
            return
        task = asyncio.get_running_loop().create_task(self._translate_for_assignee(message, conv))
        self._translating.add(task)
        task.add_done_callback(self._translating.discard)

    async def _translate_for_assignee(self, message: Message, conv: Conversation) -> None:
        """A visitor's message, for the assignee's language (one read of the agent)."""
        try:
            target = await self._assignee_language(conv)
        except Exception as exc:  # the message is stored and delivered; only its translation is lost
            log.warning("translation of %s not scheduled: %r", message.id, exc)
            return
        if self.translation is not None:
            self.translation.schedule(message, target)

    # -- languages -------------------------------------------------------------------------------------------

    def _agent_language(self, agent: Agent | None) -> str | None:
        if agent is not None and agent.language:
            return agent.language
        return self.translation.agent_language if self.translation is not None else None

    async def _assignee_language(self, conv: Conversation) -> str | None:
        if conv.assignee_id is None:
            return self._agent_language(None)
        try:
            return self._agent_language(await self.store.get_agent(conv.assignee_id))
        except NotFound:
            return self._agent_language(None)

    async def _detect(
        self, conv: Conversation, text: str, contact_language: str | None
    ) -> tuple[str | None, Conversation]:
        """The language of a visitor's text; a confident change becomes the conversation's language."""
        if self.translation is None:
            return conv.language, conv
        found = await self.translation.detect(text, prior=contact_language, current=conv.language)
        if found is None or found.lang is None:
            return conv.language, conv
        if found.reason == "detected" and found.lang != conv.language:
            try:
                conv = await self.store.set_conversation_language(conv.id, found.lang)
                await self.publish_conversation(conv)
            except Conflict:
                conv = await self.store.get_conversation(conv.id)
        return found.lang, conv

    async def set_language(self, agent: Agent, conversation_id: str, language: str | None) -> Conversation:
        """An agent overrides the conversation's (the visitor's) language."""
        conv = await self.store.set_conversation_language(conversation_id, _base_language(language))
        await self.publish_conversation(conv)
        return conv

    async def translate_draft(self, agent: Agent, conv: Conversation, text: str) -> TranslationResult:
        """Translate an agent's draft into the visitor's language before it is sent."""
        return await self.translate_for_visitor(text, self._agent_language(agent), conv)

    async def translate_for_visitor(
        self, text: str, source: str | None, conv: Conversation
    ) -> TranslationResult:
        """``text`` in the conversation's (the visitor's) language: drafts and canned responses."""
        if self.translation is None or not self.translation.enabled:
            return TranslationResult(None, "disabled", False)
        if conv.language is None:
            return TranslationResult(None, "same_language", False)
        return await self.translation.translate_text(text, source, conv.language)

    async def _reopen(self, conv: Conversation) -> Conversation:
        """A visitor who writes again reopens the conversation into the queue, never to an offline agent."""
        try:
            conv = await self.store.change_conversation(
                conv.id, Status.QUEUED, expect_status={Status.RESOLVED}, assignee_id=None
            )
        except Conflict:
            return await self.store.get_conversation(conv.id)  # someone else reopened it
        await self.publish_conversation(conv)
        self.wake_router("reopened")
        return conv

    async def system_event(self, conv_id: str, line: SystemLine, text: str | None = None) -> None:
        """Write a system line: its code and params for clients to say in their language, and ``text``
        (by default the line's English form) for everyone else."""
        await self.store.append_message(
            PendingMessage(conv_id, SYSTEM_AUTHOR, MessageKind.EVENT, text or line.text, event=line)
        )

    # -- agent actions ---------------------------------------------------------------------------------------

    async def claim(
        self, agent: Agent, conversation_id: str, target_agent_id: str | None = None
    ) -> Conversation:
        """Manual assignment: an agent takes a waiting conversation; a supervisor assigns anyone's.

        The compare-and-set is retried (:data:`CLAIM_ATTEMPTS` times) while the claim still makes sense,
        so the router offering, expiring or escalating the conversation at the same moment does not fail
        it; Conflict only when the conversation really went elsewhere (assigned to someone else, closed)."""
        target = agent
        plain_offers = self.routing == "offers" and not agent.role.supervises
        try:
            conv = await self.store.get_conversation(conversation_id)
        except NotFound:
            if plain_offers:  # (as for any conversation not pending: the console probes routing with this)
                raise Forbidden(OFFERED_ONLY) from None
            raise
        if plain_offers and conv.status is not Status.PENDING:
            raise Forbidden(OFFERED_ONLY)  # a pending one, which routing gave up on, any agent may take
        if target_agent_id is not None and target_agent_id != agent.id:
            if not agent.role.supervises:
                raise Forbidden("only supervisors and admins assign conversations to others")
            target = await self.store.get_agent(target_agent_id)
            if not target.active:
                raise Unavailable("that agent is deactivated")
        if agent.role.supervises:
            expect = set(CLAIMABLE)
        elif plain_offers:
            expect = {Status.PENDING, Status.QUEUED, Status.OFFERED}  # pending, or just re-offered
        else:
            expect = {Status.QUEUED, Status.OFFERED, Status.PENDING, Status.BOT}

        def wanted(c: Conversation) -> bool:
            if c.assignee_id == target.id and c.status == Status.ASSIGNED:
                return False  # theirs already
            if c.status not in expect:
                if c.status is Status.ASSIGNED and c.assignee_id is not None:
                    raise Conflict("the conversation was assigned to someone else")
                raise Conflict(f"the conversation is {c.status.value}")
            return True

        wanted(conv)
        for _ in range(CLAIM_ATTEMPTS):
            # read and write in one transaction, the row locked: the router cannot change it in between
            conv, done = await self.store.move_conversation_if(
                conversation_id, Status.ASSIGNED, wanted, assignee_id=target.id
            )
            if done is None:
                if conv.assignee_id == target.id and conv.status == Status.ASSIGNED:
                    return conv
                continue  # (not with the row locked; kept for a database that does not lock)
            await self.store.log_routing(done.id, target.id, "claim")
            if conv.offer_id and conv.offer_agent_id:
                revoked = OfferRevokedEvent(conv.offer_agent_id, conv.offer_id, conv.id, "assigned")
                self.publish([(agent_topic(conv.offer_agent_id), revoked)])
            await self._joined(done, target)
            self.wake_router("claimed")
            return done
        raise Conflict("the conversation kept changing; try again")

    async def _joined(self, conv: Conversation, agent: Agent) -> None:
        await self.publish_conversation(conv, assignee=agent)
        await self.system_event(conv.id, SystemLine.of("agent_joined", name=agent.name))
        if self.translation is not None:
            language = self._agent_language(agent)
            if language is not None:
                await self.translation.backfill(conv.id, language, authors=frozenset({AuthorKind.CONTACT}))

    async def answer_offer(self, agent: Agent, offer_id: str, *, accept: bool) -> Conversation:
        """An agent accepts (the conversation is theirs) or declines (it goes to the next agent)."""
        if accept:
            conv = await self.store.accept_offer(offer_id, agent.id)
            await self._joined(conv, agent)
        else:
            conv = await self.store.decline_offer(offer_id, agent.id)
            await self.publish_conversation(conv)
        self.wake_router("offer answered")
        return conv

    async def transfer(
        self,
        agent: Agent,
        conversation_id: str,
        *,
        to_agent: str | None = None,
        team: str | None = None,
        skills: dict[str, int] | None = None,
    ) -> Conversation:
        """Hand a conversation to an agent, a team or a skill set: the receiving side gets an offer."""
        conv = await self.store.get_conversation(conversation_id)
        if conv.assignee_id != agent.id and not agent.role.supervises:
            raise Forbidden("only the assigned agent or a supervisor can transfer this conversation")
        if conv.status == Status.RESOLVED:
            raise Conflict("the conversation is resolved")
        routing = dict(conv.routing)
        routing.update(
            requeued=True, preferred_agent_id=None, preferred_only=False, declined_by=[], timed_out_by=[]
        )
        if agent.id == conv.assignee_id:
            routing["declined_by"] = [agent.id]  # never straight back to whoever handed it on
        new_team = conv.team
        if to_agent is not None:
            target = await self.store.get_agent(to_agent)
            if not target.active or await self.effective_status(target) is not AgentStatus.ONLINE:
                raise Unavailable(f"{target.name} is not online; the conversation stays where it is")
            routing.update(preferred_agent_id=target.id, preferred_only=True, declined_by=[])
            line = SystemLine.of("transferred_to_agent", name=agent.name, target=target.name)
        elif team is not None:
            known = {t.id: t for t in await self.store.list_teams()}
            by_name = {t.name: t for t in known.values()}
            found = known.get(team) or by_name.get(team)
            if found is None:
                raise NotFound("no such team")
            new_team = found.id
            line = SystemLine.of("transferred_to_team", name=agent.name, team=found.name)
        else:
            wanted = ", ".join(f"{k}>={v}" for k, v in (skills or {}).items())
            line = SystemLine.of("transferred_to_skills", name=agent.name, skills=wanted)
        conv = await self.store.route_again(conv, routing, team=new_team, skills=skills)
        await self.publish_conversation(conv)
        await self.system_event(conv.id, line)
        self.wake_router("transferred")
        return conv

    async def close(self, agent: Agent, conversation_id: str) -> Conversation:
        conv = await self.store.get_conversation(conversation_id)
        if conv.assignee_id not in (None, agent.id) and not agent.role.supervises:
            raise Forbidden("only the assigned agent or a supervisor can close this conversation")
        if conv.status == Status.RESOLVED:
            return conv
        was = conv.status
        conv = await self.store.change_conversation(
            conversation_id, Status.RESOLVED, expect_status=OPEN_STATUSES, current=conv
        )
        if was in (Status.QUEUED.value, Status.OFFERED.value, Status.PENDING.value):
            await self.store.log_routing(conv.id, None, "abandon")
        await self.system_event(conv.id, SystemLine.of("agent_closed", name=agent.name))
        await self.publish_conversation(conv, assignee=agent)
        self.wake_router("closed")
        return conv

    async def mark_read(self, reader: Author, conv: Conversation, seq: int) -> int:
        if seq > conv.last_seq:
            fresh = await self.store.get_conversation(conv.id)
            if seq > fresh.last_seq:
                raise Invalid(f"seq {seq} is past the conversation's last message", data={"field": "seq"})
        stored = await self.store.set_read(conv.id, reader.kind.value, reader.id, seq)
        self.publish([(conversation_topic(conv.id), ReadEvent(conv.id, reader, stored))])
        return stored

    def typing(self, author: Author, conversation_id: str, state: str) -> None:
        self.publish([(conversation_topic(conversation_id), TypingEvent(conversation_id, author, state))])

    # -- presence --------------------------------------------------------------------------------------------

    async def effective_status(self, agent: Agent) -> AgentStatus:
        connected = await self.presence.connected([agent.id])
        return agent.status if agent.id in connected else AgentStatus.OFFLINE

    async def statuses(self, agents: Sequence[Agent]) -> dict[str, AgentStatus]:
        connected = await self.presence.connected([a.id for a in agents])
        return {a.id: (a.status if a.id in connected else AgentStatus.OFFLINE) for a in agents}

    async def publish_presence(self, agent: Agent) -> AgentStatus:
        status = await self.effective_status(agent)
        self.publish([(AGENTS_TOPIC, PresenceEvent(agent.author, status.value))])
        self.wake_router("presence")
        return status

    async def set_status(self, agent: Agent, status: AgentStatus) -> Agent:
        agent = await self.store.update_agent(agent.id, status=status.value)
        await self.publish_presence(agent)
        return agent


def conversation_targets(conv: Conversation, event: ConversationEvent) -> list[tuple[str, Event]]:
    """Where a conversation change goes: its followers, the queue watchers, its inbox's adapters, its
    assignee and the agent it is offered to. A constant number of topics, whatever the number of agents
    online."""
    items: list[tuple[str, Event]] = [
        (conversation_topic(conv.id), event),
        (QUEUE_TOPIC, event),
        (inbox_topic(conv.inbox_id), event),
    ]
    for agent_id in dict.fromkeys((conv.assignee_id, conv.offer_agent_id)):
        if agent_id is not None:
            items.append((agent_topic(agent_id), event))
    return items


def _base_language(tag: str | None) -> str | None:
    """``de-AT`` -> ``de``: conversations carry the base language, which is what providers translate."""
    if not tag:
        return None
    return tag.replace("_", "-").split("-")[0].lower() or None
