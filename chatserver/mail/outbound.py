"""Outbound mail of email conversations: an agent's reply, a ticket's mails, all in the mail thread.

One builder for every path, so a reply is one correctly threaded mail whichever way it was written:

- ``ChatService.outbound["email"]`` (:meth:`EmailOutbound.reply`): a public agent or bot reply over
  the WebSocket, and the ticket REST's public reply (``TicketService.reply`` uses the same hook);
- ``TicketService.email_threads`` (:meth:`EmailOutbound.prepare`): the ticket's own mails ("ticket
  received", "solved") of a ticket whose conversation is an email thread.

Every Message-ID we make is recorded in ``email_messages`` (direction ``out``) before the mail is
queued: a customer's reply to it threads by In-Reply-To / References, and mail that comes back with
it is known as ours. Automatic answers (``Auto-Submitted: auto-replied``: the acknowledgement) obey
the per-sender rate limit; mail an agent's action causes (``auto-generated``: "solved") does not.
The headers are built by the pure :mod:`adapters.email.outgoing`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from adapters.email.loops import AutoReplyRate, auto_reply_rate_ok
from adapters.email.outgoing import (
    Automatic,
    ThreadContext,
    display_name,
    new_message_id,
    reply_payload,
)
from chatserver.chat import ChatService
from chatserver.errors import Conflict, NotFound
from chatserver.mail.config import email_config
from chatserver.mail.store import MailStore
from chatserver.model.ids import now_ms
from chatserver.model.types import Author, AuthorKind, Conversation
from chatserver.outbox.email import EMAIL_KIND
from chatserver.outbox.registry import NewDelivery
from chatserver.settings import Settings

log = logging.getLogger(__name__)

CHANNEL = "email"


@dataclass(frozen=True, slots=True)
class PreparedMail:
    """One mail of a ticket in its email thread, its Message-ID already recorded. ``suppressed``
    says why no mail goes (the per-sender limit on automatic mail)."""

    context: ThreadContext
    message_id: str
    conversation_id: str
    automatic: Automatic | None
    suppressed: str | None = None

    def deliveries(self, ticket_number: int, text: str, *, subject: str | None = None) -> list[NewDelivery]:
        if self.suppressed is not None:
            return []
        ctx = ThreadContext(
            self.context.inbox_address,
            self.context.token,
            self.context.subject,
            self.context.to_address,
            self.context.to_name,
            self.context.chain,
            ticket_number,
        )
        payload = reply_payload(
            ctx,
            message_id=self.message_id,
            text=text,
            from_name=None,
            automatic=self.automatic,
            subject=subject,
        )
        return [
            NewDelivery(EMAIL_KIND, str(payload["message_id"]), payload, conversation_id=self.conversation_id)
        ]


class EmailOutbound:
    def __init__(self, settings: Settings, service: ChatService, mail: MailStore) -> None:
        self.settings = settings
        self.service = service
        self.mail = mail
        self.rate = AutoReplyRate(max_per_window=settings.mail_auto_reply_limit, window_s=3600.0)

    def install(self) -> None:
        """Register on the conversation service (and its ticket service, when there is one)."""
        self.service.outbound[CHANNEL] = self.reply
        if self.service.tickets is not None:
            self.service.tickets.email_threads = self.prepare

    async def _ticket_number(self, conversation_id: str) -> int | None:
        tickets = self.service.tickets
        if tickets is None:
            return None
        ticket = await tickets.q.for_conversation(conversation_id)
        while ticket is not None and ticket.merged_into is not None:
            ticket = await tickets.q.get(ticket.merged_into)
        return ticket.number if ticket is not None else None

    async def context(self, conversation_id: str) -> tuple[ThreadContext, str, str | None] | None:
        """The thread of an email conversation: its context, inbox id and inbox name (None: not one)."""
        thread = await self.mail.thread(conversation_id)
        if thread is None:
            return None
        try:
            inbox = await self.service.store.get_inbox(thread.inbox_id)
            conv = await self.service.store.get_conversation(conversation_id)
            contact = await self.service.store.get_contact(conv.contact_id)
        except NotFound:
            return None
        config = email_config(inbox.config)
        if config is None:
            return None
        name = contact.name if contact.name and contact.name != thread.contact_address else None
        ctx = ThreadContext(
            inbox_address=config.address,
            token=thread.token,
            subject=thread.subject,
            to_address=thread.contact_address,
            to_name=name,
            chain=tuple(await self.mail.thread_chain(conversation_id)),
            ticket_number=await self._ticket_number(conversation_id),
        )
        return ctx, inbox.id, inbox.name

    async def _record(
        self, ctx: ThreadContext, inbox_id: str, conversation_id: str, subject: str, automatic: bool
    ) -> str:
        message_id = new_message_id(ctx.domain)
        await self.mail.record_outgoing(
            inbox_id=inbox_id,
            conversation_id=conversation_id,
            rfc_message_id=message_id,
            sender=ctx.inbox_address,
            subject=subject,
            automatic=automatic,
        )
        return message_id

    async def reply(self, conv: Conversation, author: Author, text: str) -> Sequence[NewDelivery]:
        """``ChatService.outbound["email"]``: the mail of a public reply, translated into the contact's
        language when translation is on (the agent keeps the original; a failure sends the original)."""
        found = await self.context(conv.id)
        if found is None:
            raise Conflict("this email conversation has no address to reply to")
        ctx, inbox_id, inbox_name = found
        body, lang = await self._translated(conv, author, text)
        message_id = await self._record(ctx, inbox_id, conv.id, ctx.subject, automatic=False)
        payload = reply_payload(
            ctx, message_id=message_id, text=body, from_name=display_name(author.name, inbox_name)
        )
        if lang is not None:
            payload["translated_to"] = lang
        if not self.settings.smtp_url:
            log.warning("reply in %s queued, but no SMTP is configured (CHATSERVER_SMTP_URL)", conv.id)
        return [NewDelivery(EMAIL_KIND, str(payload["message_id"]), payload, conversation_id=conv.id)]

    async def _translated(self, conv: Conversation, author: Author, text: str) -> tuple[str, str | None]:
        translation = self.service.translation
        if translation is None or not translation.enabled or conv.language is None:
            return text, None
        if author.kind is not AuthorKind.AGENT:
            return text, None
        try:
            agent = await self.service.store.get_agent(author.id)
            result = await self.service.translate_draft(agent, conv, text)
        except Exception:
            log.exception("translating the mail of a reply in %s failed; the original is sent", conv.id)
            return text, None
        if result.text is None:
            return text, None
        return result.text, conv.language

    async def prepare(self, conversation_id: str, *, automatic: Automatic | None) -> PreparedMail | None:
        """``TicketService.email_threads``: a ticket mail in the conversation's thread (None: the
        conversation is no email thread; the ticket mails as it does for other channels)."""
        found = await self.context(conversation_id)
        if found is None:
            return None
        ctx, inbox_id, _ = found
        answer = automatic == "auto-replied"  # an answer to their mail: what loops are made of
        if answer:
            now = now_ms()
            since = now - int(self.rate.window_s * 1000)
            sent = await self.mail.automatic_sent_at(ctx.to_address, since)
            if not auto_reply_rate_ok(sent, now, self.rate):
                suppressed = (
                    f"no automatic email: {ctx.to_address} got {len(sent)} in the last hour (the limit)"
                )
                log.warning("automatic mail to %s suppressed: %d in the last hour", ctx.to_address, len(sent))
                return PreparedMail(ctx, "", conversation_id, automatic, suppressed)
        message_id = await self._record(ctx, inbox_id, conversation_id, ctx.subject, answer)
        return PreparedMail(ctx, message_id, conversation_id, automatic)


def install_email_outbound(settings: Settings, service: ChatService) -> EmailOutbound:
    """Email replies and ticket mails of email conversations, on this process's services."""
    outbound = EmailOutbound(settings, service, MailStore(service.store.db))
    outbound.install()
    return outbound
