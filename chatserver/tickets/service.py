"""The ticket service: what agents (and contacts' messages) do to tickets, shared by REST and WebSocket.

It checks, changes state through :class:`~chatserver.tickets.store.TicketQueries` (compare-and-set on
version, audit and emails in the same transaction), then publishes a ``TicketEvent`` after commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from chatserver.chat import ChatService
from chatserver.errors import Conflict, Invalid, NotFound
from chatserver.model.events import AGENTS_TOPIC, TicketEvent
from chatserver.model.ids import now_ms
from chatserver.model.status import WAITING_STATUSES, Status
from chatserver.model.system_lines import ESCALATION_CODES, SystemLine, escalated
from chatserver.model.types import Agent, Author, AuthorKind, Contact, Conversation, Message, MessageKind
from chatserver.outbox.registry import NewDelivery
from chatserver.outbox.store import OutboxQueries
from chatserver.routing.config import DEFAULT_TICKET_ON
from chatserver.settings import Settings
from chatserver.store.store import Store
from chatserver.store.writer import PendingMessage
from chatserver.tickets import mail
from chatserver.tickets.model import (
    SYSTEM,
    Actor,
    Change,
    Priority,
    Ticket,
    field_values,
    plan_update,
)
from chatserver.tickets.model import (
    priority as parse_priority,
)
from chatserver.tickets.model import (
    subject as parse_subject,
)
from chatserver.tickets.model import (
    tags as parse_tags,
)
from chatserver.tickets.status import ACTIVE, TicketStatus, on_agent_reply, on_customer_reply
from chatserver.tickets.store import TicketQueries

if TYPE_CHECKING:
    from chatserver.tickets.sla import SlaService

log = logging.getLogger(__name__)

TICKET_INBOX = "Tickets"
NO_SMTP = "no email is sent: SMTP is not configured (CHATSERVER_SMTP_URL)"
NO_ADDRESS = "no email is sent: the requester has no email address"
CsatLink = Callable[[Ticket], str | None]
EmailThreads = Callable[..., Awaitable["mail.ThreadMail | None"]]
"""``(conversation_id, *, automatic)``: the ticket's mail in its conversation's email thread, or None
when the conversation is no email thread (set by the email channel)."""


def agent_actor(agent: Agent) -> Actor:
    return Actor("agent", agent.id, agent.name)


class TicketService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        chat: ChatService,
        queries: TicketQueries,
        outbox: OutboxQueries,
        *,
        wake_outbox: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.chat = chat
        self.q = queries
        self.outbox = outbox
        self.wake_outbox = wake_outbox or (lambda: None)
        self.csat_link: CsatLink = lambda t: None
        """Set by the CSAT module: the signed rating link for a solved ticket's email."""
        self.sla: SlaService | None = None
        """Set by the app: recomputes a ticket's SLA on every change, before it is published."""
        self.email_threads: EmailThreads | None = None
        """Set by the email channel: ticket mails of email conversations go in their thread."""
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self.chat.message_hooks.append(self._on_messages)
        sweeper = asyncio.get_running_loop().create_task(self._sweep_forever(), name="visitor-gone-sweep")
        self._tasks.add(sweeper)
        sweeper.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.chat.message_hooks.remove(self._on_messages)
        for task in self._tasks:
            task.cancel()  # visitor-gone timers: after a restart, the sweep finds what they would have
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- publishing --------------------------------------------------------------------------------------

    async def payload(self, ticket: Ticket) -> dict[str, Any]:
        body = ticket.to_wire()
        body["csat"] = None
        if self.chat.csat is not None:
            rating = await self.chat.csat.for_ticket(ticket.id)
            body["csat"] = rating.to_wire() if rating else None
        body["sla"] = await self.sla.view(ticket) if self.sla is not None else None
        return body

    async def summary_for(self, conversation_id: str) -> dict[str, Any] | None:
        """The conversation's ticket as its ``conversation`` payload shows it (``ticket``), or None."""
        ticket = await self.q.for_conversation(conversation_id)
        if ticket is None:
            return None
        return {"number": ticket.number, "status": ticket.status.value, "subject": ticket.subject}

    async def publish(self, ticket: Ticket) -> None:
        if self.sla is not None:
            try:
                await self.sla.recompute(ticket)
            except Exception:  # the change itself is committed; the next change or the worker recomputes
                log.exception("SLA recompute of #%d failed", ticket.number)
        watchers: tuple[str, ...] = ()
        if ticket.team_id is not None:
            with contextlib.suppress(NotFound):
                watchers = tuple(sorted((await self.store.get_team(ticket.team_id)).members))
        conv_ids = tuple(await self.q.conversation_ids(ticket))
        event = TicketEvent(
            ticket.number, ticket.version, await self.payload(ticket), ticket.assignee_id, watchers, conv_ids
        )
        self.chat.publish([(AGENTS_TOPIC, event)])

    # -- email --------------------------------------------------------------------------------------------

    def _email_note(self, contact: Contact) -> str | None:
        if not self.settings.smtp_url:
            return NO_SMTP
        if not contact.email:
            return NO_ADDRESS
        return None

    def _mailer(
        self, contact: Contact, build: Callable[[Ticket, str], NewDelivery]
    ) -> Callable[[Ticket], Sequence[NewDelivery]] | None:
        if self._email_note(contact) is not None or contact.email is None:
            return None
        address = contact.email
        return lambda t: [build(t, address)]

    async def _thread_mail(self, conversation_id: str, automatic: str | None) -> mail.ThreadMail | None:
        if self.email_threads is None or not self.settings.smtp_url:
            return None
        return await self.email_threads(conversation_id, automatic=automatic)

    # -- creating -----------------------------------------------------------------------------------------

    async def _ticket_inbox_id(self) -> str:
        for inbox in await self.store.list_inboxes():
            if inbox.channel == "ticket":
                return inbox.id
        return (await self.store.create_inbox(TICKET_INBOX, "ticket")).id

    async def create(
        self,
        actor: Actor,
        *,
        requester_id: str,
        subject: str,
        priority: Priority = Priority.NORMAL,
        conversation: Conversation | None = None,
        assignee_id: str | None = None,
        team_id: str | None = None,
        tags: Sequence[str] = (),
        fields: Mapping[str, Any] | None = None,
        text: str | None = None,
        parent_number: int | None = None,
        move_link: bool = False,
        quiet: str | None = None,
    ) -> Ticket:
        """``quiet``: why no "ticket received" mail may go (loop safety), or None to send it."""
        contact = await self.store.get_contact(requester_id)
        defs = await self.q.field_defs()
        # an escalation (agent, rule, visitor gone) cannot fill required fields; an agent does it later
        values = field_values(defs, dict(fields or {}), require=conversation is None)
        if assignee_id is not None:
            await self._agent(assignee_id)
        if team_id is not None:
            await self._team(team_id)
        if conversation is None:
            inbox = await self.store.get_inbox(await self._ticket_inbox_id())
            conversation = await self.store.create_conversation(
                inbox=inbox, contact_id=contact.id, status=Status.RESOLVED, team=team_id
            )
        mail_from = self.settings.mail_from
        email_note = self._email_note(contact)
        deliveries = self._mailer(
            contact, lambda t, to: mail.received(t, to, contact.name, mail_from=mail_from)
        )
        thread = None if quiet else await self._thread_mail(conversation.id, "auto-replied")
        if quiet:
            email_note, deliveries = email_note or f"no acknowledgement is sent: {quiet}", None
        elif thread is not None:
            email_note = thread.suppressed
            deliveries = lambda t: thread.deliveries(t.number, mail.received_text(t, contact.name))  # noqa: E731
        ticket = await self.q.create(
            subject=subject,
            priority=priority,
            requester_id=contact.id,
            conversation_id=conversation.id,
            actor=actor,
            status=TicketStatus.OPEN if assignee_id else TicketStatus.NEW,
            assignee_id=assignee_id,
            team_id=team_id,
            tags=tags,
            fields=values,
            parent_number=parent_number,
            email_note=email_note,
            deliveries=deliveries,
            move_link=move_link,
        )
        if text:
            author = contact_author(contact)
            await self.store.append_message(PendingMessage(conversation.id, author, MessageKind.TEXT, text))
        self.wake_outbox()
        await self.publish(ticket)
        return ticket

    async def escalate(
        self,
        actor: Actor,
        conversation_id: str,
        *,
        subject: str | None = None,
        priority: Priority | None = None,
        reason: str | None = None,
    ) -> Ticket:
        """A conversation becomes (or already is) a ticket; a waiting one leaves the queue."""
        existing = await self.q.for_conversation(conversation_id)
        if existing is not None:
            return existing
        conv = await self.store.get_conversation(conversation_id)
        contact = await self.store.get_contact(conv.contact_id)
        if subject is None:
            subject = await self._subject_from(conv, contact)
        ticket = await self.create(
            actor,
            requester_id=contact.id,
            subject=subject,
            priority=priority or Priority.NORMAL,
            conversation=conv,
            assignee_id=conv.assignee_id,
            team_id=conv.team if conv.team and await self._team_exists(conv.team) else None,
        )
        if conv.status in WAITING_STATUSES:
            with contextlib.suppress(Conflict):
                conv = await self.store.change_conversation(
                    conv.id, Status.RESOLVED, expect_status=WAITING_STATUSES
                )
                self.chat.wake_router("escalated")
        await self.chat.publish_conversation(conv)  # its payload names the ticket now
        line = escalated(ticket.number, reason)
        known = not reason or reason in ESCALATION_CODES
        await self.chat.system_event(conv.id, line, None if known else f"{line.text} ({reason})")
        return ticket

    async def _subject_from(self, conv: Conversation, contact: Contact) -> str:
        for m in await self.store.messages_after(conv.id, 0, limit=50, include_private=False):
            if m.author.kind is AuthorKind.CONTACT and m.text.strip():
                line = " ".join(m.text.split())
                return line if len(line) <= 80 else line[:79] + "…"
        return f"Conversation with {contact.name}"

    # -- changing -----------------------------------------------------------------------------------------

    async def _agent(self, agent_id: str) -> Agent:
        try:
            return await self.store.get_agent(agent_id)
        except NotFound:
            raise Invalid(f"no agent {agent_id!r}", data={"field": "assignee_id"}) from None

    async def _team(self, team_id: str) -> None:
        if not await self._team_exists(team_id):
            raise Invalid(f"no team {team_id!r}", data={"field": "team_id"})

    async def _team_exists(self, team_id: str) -> bool:
        try:
            await self.store.get_team(team_id)
        except NotFound:
            return False
        return True

    async def update(self, agent: Agent, number: int, patch: Mapping[str, Any]) -> Ticket:
        version = patch.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise Invalid("version (the ticket version you saw) is required", data={"field": "version"})
        ticket = await self.q.get(number)
        if version != ticket.version:
            raise Conflict(
                f"ticket #{number} changed since version {version} (now {ticket.version})",
                data={"ticket": ticket.to_wire()},
            )
        changes = plan_update(ticket, patch, await self.q.field_defs())
        for c in changes:
            if c.field == "assignee_id" and c.new is not None:
                await self._agent(c.new)
            if c.field == "team_id" and c.new is not None:
                await self._team(c.new)
        if not changes:
            return ticket
        deliveries = None
        if any(c.field == "status" and c.new == TicketStatus.SOLVED.value for c in changes):
            contact = await self.store.get_contact(ticket.requester_id)
            mail_from = self.settings.mail_from
            deliveries = self._mailer(
                contact,
                lambda t, to: mail.solved(t, to, contact.name, self.csat_link(t), mail_from=mail_from),
            )
            thread = await self._thread_mail(ticket.conversation_id, "auto-generated")
            if thread is not None:
                link = self.csat_link
                deliveries = lambda t: thread.deliveries(t.number, mail.solved_text(t, link(t)))  # noqa: E731
        extra: dict[str, Any] = {}
        if (
            any(c.field == "assignee_id" and c.new for c in changes)
            and ticket.status is TicketStatus.NEW
            and not any(c.field == "status" for c in changes)
        ):
            changes.append(Change("status", TicketStatus.NEW.value, TicketStatus.OPEN.value))
        ticket = await self.q.update(
            ticket, changes, agent_actor(agent), expect_version=version, extra=extra, deliveries=deliveries
        )
        self.wake_outbox()
        await self.publish(ticket)
        return ticket

    async def _active(self, number: int) -> Ticket:
        ticket = await self.q.get(number)
        if ticket.merged_into is not None:
            raise Conflict(
                f"ticket #{number} was merged into #{ticket.merged_into}",
                data={"merged_into": ticket.merged_into},
            )
        if ticket.status is TicketStatus.CLOSED:
            raise Conflict(f"ticket #{number} is closed", data={"field": "status", "allowed": []})
        return ticket

    async def reply(self, agent: Agent, number: int, text: str, *, private: bool) -> tuple[Ticket, Message]:
        """An agent's reply (emailed to the requester) or internal note, in the ticket's thread."""
        ticket = await self._active(number)
        contact = await self.store.get_contact(ticket.requester_id)
        deliveries: tuple[NewDelivery, ...] = ()
        conv = await self.store.get_conversation(ticket.conversation_id)
        # an email conversation's reply is its channel's: one mail in its thread (other channels keep
        # the ticket mail, so a closed platform window never refuses a ticket reply)
        builder = self.chat.outbound.get(conv.channel) if conv.channel == "email" else None
        if not private and builder is not None:
            deliveries = tuple(await builder(conv, agent.author, text))
        elif not private:
            mailer = self._mailer(
                contact,
                lambda t, to: mail.public_reply(
                    t, to, contact.name, agent.name, text, mail_from=self.settings.mail_from
                ),
            )
            if mailer is not None:
                deliveries = tuple(mailer(ticket))
        kind = MessageKind.NOTE if private else MessageKind.TEXT
        item = PendingMessage(ticket.conversation_id, agent.author, kind, text, deliveries=deliveries)
        message, _ = await self.store.append_message(item)
        if deliveries:
            self.wake_outbox()
        if not private:
            changes: list[Change] = [Change("reply", None, message.id)]
            target = on_agent_reply(ticket.status)
            if target is not ticket.status:
                changes.append(Change("status", ticket.status.value, target.value))
            extra: dict[str, Any] = {}
            if deliveries:
                extra["email_refs"] = [*ticket.email_refs, *(d.idempotency_key for d in deliveries)]
            if ticket.first_response_at is None:
                extra["first_response_at"] = message.created_at
            ticket = await self._retry_update(ticket, changes, agent_actor(agent), extra)
        await self.publish(ticket)
        return ticket, message

    async def _retry_update(
        self, ticket: Ticket, changes: list[Change], actor: Actor, extra: dict[str, Any]
    ) -> Ticket:
        """Apply system-side changes (not a client's patch), re-reading once on a concurrent change."""
        for _ in range(3):
            try:
                return await self.q.update(ticket, changes, actor, extra=extra)
            except Conflict:
                ticket = await self.q.get_by_id(ticket.id)
                if "email_refs" in extra:
                    new = [r for r in extra["email_refs"] if r not in ticket.email_refs]
                    extra["email_refs"] = [*ticket.email_refs, *new]
                changes = [c for c in changes if c.field != "status" or c.old == ticket.status.value]
        return await self.q.update(ticket, changes, actor, extra=extra)

    async def merge(self, agent: Agent, number: int, into: int) -> tuple[Ticket, Ticket]:
        if number == into:
            raise Conflict("a ticket cannot be merged into itself", data={"field": "into"})
        source = await self.q.get(number)
        try:
            target = await self.q.get(into)
        except NotFound:
            raise NotFound(f"ticket #{into} not found", data={"field": "into"}) from None
        if source.status is TicketStatus.CLOSED:
            raise Conflict(f"ticket #{number} is closed; it cannot be merged", data={"field": "status"})
        if target.status is TicketStatus.CLOSED:
            raise Conflict(f"ticket #{into} is closed; nothing can be merged into it", data={"field": "into"})
        source, target = await self.q.merge(source, target, agent_actor(agent))
        await self.chat.system_event(source.conversation_id, SystemLine.of("merged", number=target.number))
        await self.publish(source)
        await self.publish(target)
        return source, target

    # -- reading ------------------------------------------------------------------------------------------

    async def thread(self, ticket: Ticket) -> list[dict[str, Any]]:
        items: list[Message] = []
        for cid in await self.q.conversation_ids(ticket):
            items.extend(await self.store.messages_after(cid, 0, limit=2000))
        items.sort(key=lambda m: (m.created_at, m.conversation_id, m.seq))
        deliveries: dict[str, list[dict[str, Any]]] = {}
        for cid in {m.conversation_id for m in items}:
            for d in await self.outbox.deliveries(conversation_id=cid):
                if d.message_id is not None:
                    deliveries.setdefault(d.message_id, []).append(
                        {"kind": d.kind, "state": d.state.value, "reason": d.reason}
                    )
        out = []
        for m in items:
            wire = {"conversation_id": m.conversation_id, "seq": m.seq, **_message_wire(m)}
            if m.id in deliveries:
                wire["deliveries"] = deliveries[m.id]
            out.append(wire)
        return out

    async def full(self, ticket: Ticket) -> dict[str, Any]:
        body = await self.payload(ticket)
        body["thread"] = await self.thread(ticket)
        body["audit"] = [a.to_wire() for a in await self.q.audit(ticket.id)]
        return body

    # -- queue or ticket ---------------------------------------------------------------------------------

    def visitor_left(self, contact_id: str) -> None:
        """A visitor's connection closed: if they are still gone after ``visitor_gone_s`` and a
        conversation of theirs is still waiting, it becomes a ticket."""
        task = asyncio.get_running_loop().create_task(self._after_visitor_left(contact_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _after_visitor_left(self, contact_id: str) -> None:
        try:
            await asyncio.sleep(self.settings.visitor_gone_s)
            await self.ticket_if_gone(contact_id)
        except Exception:
            log.exception("visitor-gone check for %s failed", contact_id)

    async def _sweep_forever(self) -> None:
        interval = max(self.settings.visitor_gone_s, 5.0)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep_gone()
            except Exception:
                log.exception("visitor-gone sweep failed")

    async def sweep_gone(self) -> list[Ticket]:
        """What the per-connection timers would have done, for conversations whose timer died with a
        process (a restart, a crash): a widget conversation that has waited longer than
        ``visitor_gone_s`` since its last change, whose visitor is connected nowhere, becomes a ticket.
        Every process sweeps; a ticket is made once (its conversation link is unique)."""
        cutoff = now_ms() - int(self.settings.visitor_gone_s * 1000)
        waiting = await self.store.list_conversations(
            statuses=[s.value for s in WAITING_STATUSES], limit=200, newest_first=False
        )
        contacts = dict.fromkeys(
            c.contact_id for c in waiting if c.channel == "widget" and c.updated_at <= cutoff
        )
        out: list[Ticket] = []
        for contact_id in contacts:
            try:
                out.extend(await self.ticket_if_gone(contact_id))
            except Conflict:
                continue  # another process made it in the meantime
        return out

    async def ticket_if_gone(self, contact_id: str) -> list[Ticket]:
        from chatserver.presence import visitor_key

        if await self.chat.presence.connected([visitor_key(contact_id)]):
            return []  # back (another tab, a reload, another process)
        waiting = await self.store.list_conversations(
            contact_id=contact_id, statuses=[s.value for s in WAITING_STATUSES], limit=20
        )
        out = []
        for conv in waiting:
            if await self._contact_wrote(conv.id) and await self.q.for_conversation(conv.id) is None:
                out.append(await self.escalate(SYSTEM, conv.id, reason="the visitor left"))
        return out

    async def after_router_escalation(self, conv: Conversation, reason: str) -> Ticket | None:
        """Routing gave up on a conversation. Its rule's ``ticket_on`` says which reasons make a ticket
        at once (by default only its wait limit, ``max_wait_s``); otherwise (nobody eligible, closed) it
        stays pending while the visitor is there. A conversation nobody has written in yet becomes a
        ticket once the contact's first message is in (within ``FIRST_MESSAGE_WAIT_S``)."""
        if reason not in conv.routing.get("ticket_on", DEFAULT_TICKET_ON):
            return None
        if not await self._contact_wrote(conv.id):
            task = asyncio.get_running_loop().create_task(self._ticket_when_written(conv, reason))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return None
        why = ESCALATION_WHY.get(reason, reason)
        return await self.escalate(SYSTEM, conv.id, priority=_priority_of(conv), reason=why)

    async def _contact_wrote(self, conversation_id: str) -> bool:
        return any(
            m.author.kind is AuthorKind.CONTACT
            for m in await self.store.messages_after(conversation_id, 0, limit=50, include_private=False)
        )

    async def _ticket_when_written(self, conv: Conversation, reason: str) -> None:
        try:
            deadline = asyncio.get_running_loop().time() + FIRST_MESSAGE_WAIT_S
            while asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.5)
                current = await self.store.get_conversation(conv.id)
                if current.status not in WAITING_STATUSES:
                    return  # an agent took it, or it closed
                if await self._contact_wrote(conv.id):
                    why = ESCALATION_WHY.get(reason, reason)
                    await self.escalate(SYSTEM, conv.id, priority=_priority_of(current), reason=why)
                    return
        except Exception:
            log.exception("ticket for %s after routing gave up failed", conv.id)

    # -- contacts' later messages -------------------------------------------------------------------------

    def _on_messages(self, messages: Sequence[Message]) -> None:
        """After each commit (a batch of many conversations' messages): one task, one read for all."""
        latest: dict[str, Message] = {}
        for m in messages:
            if m.author.kind is AuthorKind.CONTACT and m.kind is MessageKind.TEXT:
                latest[m.conversation_id] = m  # once per conversation and commit is enough
        if latest:
            task = asyncio.get_running_loop().create_task(self._thread_batch(list(latest.values())))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _thread_batch(self, messages: Sequence[Message]) -> None:
        try:
            found = await self.q.for_contact_messages(
                [(m.conversation_id, m.author.id) for m in messages], [s.value for s in ACTIVE]
            )
        except Exception:
            log.exception("looking up the tickets of %d contact messages failed", len(messages))
            return
        for m in messages:  # the common case (live chats, no ticket) ends here: nothing found
            hit = found.get(m.conversation_id)
            if hit is None:
                continue
            try:
                await self._thread(m, *hit)
            except Exception:
                log.exception("threading message %s into a ticket failed", m.id)

    async def thread_contact_message(self, message: Message) -> Ticket | None:
        """A contact wrote: thread it into their ticket (reopening it), or follow up a finished one."""
        found = await self.q.for_contact_messages(
            [(message.conversation_id, message.author.id)], [s.value for s in ACTIVE]
        )
        hit = found.get(message.conversation_id)
        return None if hit is None else await self._thread(message, *hit)

    async def _thread(self, message: Message, ticket: Ticket, own: bool) -> Ticket | None:
        contact_id = message.author.id  # a contact's message is authored by the contact
        contact_actor = Actor("contact", contact_id, message.author.name)
        if not own:
            if not await self.q.link(ticket, message.conversation_id):
                return None
            ticket = await self._retry_update(
                ticket, [Change("conversation", None, message.conversation_id)], contact_actor, {}
            )
        while ticket.merged_into is not None:
            ticket = await self.q.get(ticket.merged_into)
        window_ms = int(self.settings.ticket_reopen_days * 86400 * 1000)
        within = ticket.solved_at is not None and now_ms() - ticket.solved_at <= window_ms
        target = on_customer_reply(ticket.status, within_window=within)
        if target is None:
            conv = await self.store.get_conversation(message.conversation_id)
            return await self.create(
                contact_actor,
                requester_id=conv.contact_id,
                subject=ticket.subject,
                priority=ticket.priority,
                conversation=conv,
                team_id=ticket.team_id,
                tags=ticket.tags,
                parent_number=ticket.number,
                move_link=True,
            )
        if target is not ticket.status:
            ticket = await self._retry_update(
                ticket, [Change("status", ticket.status.value, target.value)], contact_actor, {}
            )
        await self.publish(ticket)
        return ticket


FIRST_MESSAGE_WAIT_S = 30.0
"""How long a conversation routing gave up on waits for its first message before the ticket is made
(after that, the visitor-gone path makes it when the visitor leaves)."""
ESCALATION_WHY = {
    "max_wait_exceeded": "it waited too long",
    "no_agent_eligible": "nobody was available",
    "outside_business_hours": "it came outside business hours",
}


def _priority_of(conv: Conversation) -> Priority:
    """A routing priority (an integer, higher first) as a ticket priority."""
    if conv.priority >= 3:
        return Priority.URGENT
    if conv.priority >= 1:
        return Priority.HIGH
    return Priority.NORMAL


def contact_author(contact: Contact) -> Author:
    return Author(AuthorKind.CONTACT, contact.id, contact.name)


def _message_wire(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "author": {"kind": m.author.kind.value, "id": m.author.id, "name": m.author.name},
        "kind": m.kind.value,
        "text": m.text,
        "created_at": m.created_at,
    }


def parse_new_ticket(data: Mapping[str, Any]) -> dict[str, Any]:
    """The body of ``POST /api/v1/tickets``, checked."""
    allowed = {"requester_id", "subject", "priority", "assignee_id", "team_id", "tags", "fields", "text"}
    unknown = set(data) - allowed
    if unknown:
        first = sorted(unknown)[0]
        raise Invalid(f"unknown field {first!r}", data={"field": first})
    requester = data.get("requester_id")
    if not isinstance(requester, str) or not requester:
        raise Invalid("requester_id is required", data={"field": "requester_id"})
    out: dict[str, Any] = {"requester_id": requester, "subject": parse_subject(data.get("subject"))}
    if data.get("priority") is not None:
        out["priority"] = parse_priority(data["priority"])
    for ref in ("assignee_id", "team_id"):
        value = data.get(ref)
        if value is not None:
            if not isinstance(value, str) or not value:
                raise Invalid(f"{ref} must be an id", data={"field": ref})
            out[ref] = value
    if data.get("tags") is not None:
        out["tags"] = parse_tags(data["tags"])
    if data.get("fields") is not None:
        if not isinstance(data["fields"], dict):
            raise Invalid("fields must be an object of key: value", data={"field": "fields"})
        out["fields"] = data["fields"]
    if data.get("text") is not None:
        if not isinstance(data["text"], str) or len(data["text"]) > 20_000:
            raise Invalid("text must be a string of at most 20000 characters", data={"field": "text"})
        out["text"] = data["text"]
    return out


__all__ = ["SYSTEM", "TicketService", "agent_actor", "parse_new_ticket"]
