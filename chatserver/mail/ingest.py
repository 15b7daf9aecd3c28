"""One inbound mail -> one committed conversation message (SMTP and IMAP both come through here).

The steps: parse (pure), keep the raw bytes on disk, decide loop safety (pure), skip mail already
imported (by Message-ID per inbox), find the contact by address, thread (pure decision over what the
database knows), record the import, append the message through the group commit. ``ingest`` returns
only after the commit, so SMTP answers 250 and IMAP marks the mail processed only then.

An inbox with ``tickets: always`` (the default) makes a new thread a ticket at once: the ticket is
opened before the mail's message is appended (so the message threads into this ticket, not into
another open one of the contact), with the "ticket received" acknowledgement unless loop safety says
no; then the conversation leaves the live queue, as an escalated one does.
"""

from __future__ import annotations

import enum
import hashlib
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from adapters.email.address import new_token, normalize
from adapters.email.loops import loop_decision
from adapters.email.parse import Limits, ParsedEmail, parse_email
from adapters.email.thread import ThreadKind, TicketRef, decide_thread, thread_keys
from chatserver.chat import ChatService
from chatserver.errors import Conflict, Invalid, NotFound
from chatserver.mail.config import EmailConfig
from chatserver.mail.files import MailFiles
from chatserver.mail.store import MailStore
from chatserver.model.status import WAITING_STATUSES, Status
from chatserver.model.system_lines import SystemLine
from chatserver.model.types import Author, AuthorKind, Conversation, Inbox
from chatserver.settings import Settings

log = logging.getLogger(__name__)

MAX_MESSAGE_TEXT = 64 * 1024
"""Characters of a mail shown as the conversation message; the whole mail stays viewable."""

TicketLookup = Callable[[Collection[int]], Awaitable[Mapping[int, TicketRef]]]


async def no_tickets(numbers: Collection[int]) -> Mapping[int, TicketRef]:
    return {}


class Outcome(enum.StrEnum):
    IMPORTED = "imported"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    conversation_id: str | None = None
    message_id: str | None = None
    thread: ThreadKind | None = None


class Ingestor:
    def __init__(
        self,
        settings: Settings,
        service: ChatService,
        mail: MailStore,
        *,
        tickets: TicketLookup | None = None,
    ) -> None:
        self.service = service
        self.mail = mail
        self.files = MailFiles(settings.mail_path)
        self.tickets = tickets or self._ticket_refs
        """Ticket number -> conversation and contact address (by default from the ticket service)."""
        self.limits = Limits(
            max_attachments=settings.mail_max_attachments,
            max_attachment_bytes=settings.mail_max_attachment_bytes,
        )

    async def ingest(
        self, raw: bytes, *, inbox: Inbox, config: EmailConfig, recipients: Collection[str], source: str
    ) -> Result:
        parsed = parse_email(raw, self.limits)
        rfc_id = (parsed.message_id or f"sha256:{parsed.digest}")[:500]
        if parsed.problems:
            log.warning("mail %s to %s: %s", rfc_id, config.address, "; ".join(parsed.problems))
        for skipped in parsed.skipped:
            log.warning(
                "mail %s: attachment %r (%s, %d bytes) not stored: %s",
                rfc_id, skipped.filename, skipped.content_type, skipped.size, skipped.reason,
            )  # fmt: skip
        existing = await self.mail.find_email(inbox.id, rfc_id)
        if existing is not None and existing.message_id is not None:
            log.info("mail %s already imported into %s", rfc_id, existing.conversation_id)
            return Result(Outcome.DUPLICATE, existing.conversation_id, existing.message_id)
        own = [cfg.address for _, cfg in await self.mail.email_inboxes()] or [config.address]
        loop = loop_decision(
            parsed.headers,
            from_address=parsed.from_address,
            message_id=parsed.message_id,
            own_addresses=own,
            own_message_ids={rfc_id} if await self.mail.is_own_message_id(rfc_id) else (),
        )
        if loop.ignore:
            log.warning("mail %s from our own address %s ignored", rfc_id, parsed.from_address)
            return Result(Outcome.IGNORED)
        raw_path = await self.files.save_raw(parsed.digest, raw)
        await self.files.save_attachments(parsed.attachments)
        sender = parsed.from_address or f"unknown-sender@{config.address.split('@')[1]}"
        contact = await self.mail.contact_for_address(sender, parsed.from_name)

        conv: Conversation | None = None
        kind: ThreadKind
        if existing is not None and existing.conversation_id is not None:  # a retry after a crash
            kind = ThreadKind(existing.thread_kind or "new")
            conv = await self._conversation(existing.conversation_id)
        if conv is None:
            kind, conv = await self._thread(parsed, recipients, inbox, config, sender)
        if conv is None:
            conv = await self.service.start_conversation(
                contact_id=contact.id,
                inbox_id=inbox.id,
                language=None,
                contact_language=contact.language,
                skills={},
                fields={"subject": parsed.subject[:200]} if parsed.subject else {},
                reuse_open=False,
            )
            await self.mail.create_thread(conv.id, inbox.id, new_token(), parsed.subject, sender)
        record = existing or await self.mail.begin_email(
            inbox_id=inbox.id,
            rfc_message_id=rfc_id,
            conversation_id=conv.id,
            sender=sender,
            subject=parsed.subject[:500],
            thread_kind=kind.value,
            loop=loop.to_json(),
            attachments=_attachments_json(parsed),
            problems=list(parsed.problems),
            raw_path=str(raw_path),
            source=source,
        )
        if record.message_id is not None:  # imported by someone else meanwhile
            return Result(Outcome.DUPLICATE, record.conversation_id, record.message_id)
        if record.conversation_id is not None and record.conversation_id != conv.id:
            # another import of the same mail (a second poller, a retry) recorded its conversation first
            conv = await self._conversation(record.conversation_id) or conv
        ticket_number = None
        if kind is ThreadKind.NEW and config.tickets == "always":
            ticket_number = await self._open_ticket(conv, contact.id, parsed.subject, loop.reasons)
        author = Author(AuthorKind.CONTACT, contact.id, contact.name)
        message, duplicate = await self.service.send(
            author=author,
            conv=conv,
            text=message_text(parsed),
            client_id="mail:" + hashlib.sha256(rfc_id.encode()).hexdigest()[:40],
            contact_language=contact.language,
            external_id=rfc_id[:200],
            stored_files=await self._message_files(conv.id, author, parsed),
        )
        await self.mail.complete_email(record.id, message.id)
        if ticket_number is not None:
            await self._leave_queue(conv, ticket_number)
        log.info(
            "mail %s from %s -> %s (%s)%s",
            rfc_id, sender, conv.id, kind.value, "" if loop.auto_reply_allowed else f" loop:{loop.reasons}",
        )  # fmt: skip
        return Result(Outcome.DUPLICATE if duplicate else Outcome.IMPORTED, conv.id, message.id, kind)

    async def _ticket_refs(self, numbers: Collection[int]) -> Mapping[int, TicketRef]:
        tickets = self.service.tickets
        if tickets is None:
            return {}
        out: dict[int, TicketRef] = {}
        for number in list(numbers)[:5]:
            try:
                ticket = await tickets.q.get(number)
                for _ in range(10):  # a merged ticket's mail goes to the survivor
                    if ticket.merged_into is None:
                        break
                    ticket = await tickets.q.get(ticket.merged_into)
                contact = await self.service.store.get_contact(ticket.requester_id)
            except NotFound:
                continue
            if contact.email:
                out[number] = TicketRef(ticket.conversation_id, contact.email)
        return out

    async def _open_ticket(
        self, conv: Conversation, contact_id: str, subject: str, loop_reasons: tuple[str, ...]
    ) -> int | None:
        """A new thread in a ``tickets: always`` inbox becomes a ticket (once; a retry finds it)."""
        from chatserver.tickets.model import SYSTEM

        tickets = self.service.tickets
        if tickets is None:
            log.warning(
                "inbox wants tickets, but this process has no ticket service; %s stays a chat", conv.id
            )
            return None
        existing = await tickets.q.for_conversation(conv.id)
        if existing is not None:
            return existing.number
        quiet = ("the mail was automatic: " + ", ".join(loop_reasons)) if loop_reasons else None
        line = " ".join(subject.split())[:200] or "(no subject)"
        try:
            try:
                ticket = await tickets.create(
                    SYSTEM,
                    requester_id=contact_id,
                    subject=line,
                    conversation=conv,
                    team_id=conv.team,
                    quiet=quiet,
                )
            except Invalid:  # the routing rule's team is gone
                ticket = await tickets.create(
                    SYSTEM, requester_id=contact_id, subject=line, conversation=conv, quiet=quiet
                )
        except Conflict:  # another import of the same mail opened it
            found = await tickets.q.for_conversation(conv.id)
            return found.number if found is not None else None
        if quiet:
            log.info("ticket #%d opened without an acknowledgement: %s", ticket.number, quiet)
        return ticket.number

    async def _leave_queue(self, conv: Conversation, ticket_number: int) -> None:
        """The ticket's conversation leaves the live queue (as ``TicketService.escalate`` does)."""
        try:
            moved = await self.service.store.change_conversation(
                conv.id, Status.RESOLVED, expect_status=WAITING_STATUSES
            )
        except Conflict:  # an agent took it meanwhile: it stays theirs
            return
        await self.service.publish_conversation(moved)
        self.service.wake_router("ticket")
        await self.service.system_event(conv.id, SystemLine.of("ticket_from_email", number=ticket_number))

    async def _message_files(
        self, conversation_id: str, author: Author, parsed: ParsedEmail
    ) -> tuple[dict[str, Any], ...]:
        """The mail's stored attachments as files of its message (agents open them like any file in a
        conversation). The mail's own limits already applied; a file that cannot be recorded stays in the
        mail view (``/api/v1/email/messages/{id}/attachments/{n}``) and is logged."""
        files = self.service.files
        if files is None:
            return ()
        out = []
        for a in parsed.attachments:
            try:
                att = await files.create(
                    conversation_id,
                    author,
                    name=a.filename,
                    content_type=a.content_type,
                    data=a.data,
                    check=False,
                )
            except Exception:
                log.exception(
                    "attachment %s of a mail in %s not recorded as a file", a.filename, conversation_id
                )
                continue
            out.append(att.to_wire())
        return tuple(out)

    async def _conversation(self, conversation_id: str) -> Conversation | None:
        try:
            return await self.service.store.get_conversation(conversation_id)
        except NotFound:
            return None

    async def _thread(
        self,
        parsed: ParsedEmail,
        recipients: Collection[str],
        inbox: Inbox,
        config: EmailConfig,
        sender: str,
    ) -> tuple[ThreadKind, Conversation | None]:
        keys = thread_keys(
            recipients=recipients,
            inbox_address=config.address,
            in_reply_to=parsed.in_reply_to,
            references=parsed.references,
            subject=parsed.subject,
        )
        decision = decide_thread(
            keys,
            sender=sender,
            by_token=await self.mail.conversations_for_tokens(inbox.id, keys.tokens),
            by_message_id=await self.mail.conversations_for_message_ids(inbox.id, keys.message_ids),
            by_ticket=await self.tickets(keys.ticket_numbers) if keys.ticket_numbers else {},
        )
        if decision.conversation_id is None:
            return ThreadKind.NEW, None
        conv = await self._conversation(decision.conversation_id)
        return (decision.kind, conv) if conv is not None else (ThreadKind.NEW, None)


def message_text(parsed: ParsedEmail) -> str:
    """What agents see: the new text (history and signature folded away), the attachment list."""
    text = parsed.display_text
    if len(text) > MAX_MESSAGE_TEXT:
        text = text[:MAX_MESSAGE_TEXT] + "\n[... shortened; the whole mail is kept]"
    lines = [f"[attachment] {a.filename} ({a.content_type}, {_size(a.size)})" for a in parsed.attachments]
    lines += [f"[not stored: {s.reason}] {s.filename} ({_size(s.size)})" for s in parsed.skipped[:20]]
    if len(parsed.skipped) > 20:
        lines.append(f"[not stored: {len(parsed.skipped) - 20} more attachments]")
    if not text.strip():
        text = "(no text)" if not parsed.subject else f"(no text) {parsed.subject}"
    return text + ("\n\n" + "\n".join(lines) if lines else "")


def _size(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n / 1024:.0f} KB" if n < 1024 * 1024 else f"{n / 1048576:.1f} MB"


def _attachments_json(parsed: ParsedEmail) -> list[dict[str, object]]:
    out: list[dict[str, object]] = [
        {
            "filename": a.filename,
            "content_type": a.content_type,
            "size": a.size,
            "sha256": a.sha256,
            "inline": a.inline,
            "content_id": a.content_id,
            "warning": a.warning,
        }
        for a in parsed.attachments
    ]
    out += [
        {"filename": s.filename, "content_type": s.content_type, "size": s.size, "skipped": s.reason}
        for s in parsed.skipped
    ]
    return out


def normalized_recipients(rcpts: Collection[str]) -> list[str]:
    return [normalize(r) for r in rcpts]
