"""The emails a ticket sends its requester, and how they thread. Pure.

Every mail gets a fresh Message-ID; In-Reply-To is the ticket's previous mail and References the
chain (the last 20), so every mail client shows one thread. The subject carries ``[#1001]`` and the
Reply-To is the sender's address plus-tagged with the number (``support+t1001@example.com``), which
the email channel reads to thread a reply back into the ticket.

A ticket whose conversation is an email thread mails in that thread instead (:class:`ThreadMail`,
built by the email channel: the inbox's address, the thread's headers and plus-address), so the
customer sees one conversation.
"""

from __future__ import annotations

import re
from email.utils import parseaddr
from typing import Protocol

from chatserver.model.ids import new_id
from chatserver.outbox.email import EMAIL_KIND, email_payload, header_text
from chatserver.outbox.registry import NewDelivery
from chatserver.tickets.model import Ticket

MAX_REFERENCES = 20
_TAG = re.compile(r"\[#(\d+)\]")
_PLUS = re.compile(r"\+t(\d+)@", re.IGNORECASE)


class ThreadMail(Protocol):
    """One mail of a ticket in its conversation's email thread (see chatserver/mail/outbound.py)."""

    @property
    def suppressed(self) -> str | None:
        """Why no mail goes (the per-sender limit on automatic mail), or None."""

    def deliveries(self, ticket_number: int, text: str, *, subject: str | None = None) -> list[NewDelivery]:
        """The mail, threaded; nothing when suppressed."""


def _domain(mail_from: str) -> str:
    address = parseaddr(mail_from)[1]
    return address.rsplit("@", 1)[1] if "@" in address else "localhost"


def message_id(ticket: Ticket, mail_from: str) -> str:
    return f"<{new_id()}.t{ticket.number}@{_domain(mail_from)}>"


def reply_to(ticket: Ticket, mail_from: str) -> str:
    address = parseaddr(mail_from)[1] or "support@localhost"
    local, _, domain = address.partition("@")
    return f"{local}+t{ticket.number}@{domain or 'localhost'}"


def subject(ticket: Ticket, *, reply: bool = False) -> str:
    line = f"[#{ticket.number}] {header_text(ticket.subject)}"
    return f"Re: {line}" if reply else line


def ticket_number_in(subject_line: str, to_address: str = "") -> int | None:
    """The ticket a reply belongs to: ``+t1001@`` in the address it was sent to, or ``[#1001]``."""
    found = _PLUS.search(to_address) or _TAG.search(subject_line)
    return int(found.group(1)) if found else None


def _mail(ticket: Ticket, to: str, name: str | None, subj: str, text: str, mail_from: str) -> NewDelivery:
    mid = message_id(ticket, mail_from)
    refs = list(ticket.email_refs[-MAX_REFERENCES:])
    payload = email_payload(
        to=to,
        to_name=name,
        subject=subj,
        text=text,
        message_id=mid,
        in_reply_to=refs[-1] if refs else None,
        references=refs,
        reply_to=reply_to(ticket, mail_from),
    )
    return NewDelivery(EMAIL_KIND, mid, payload, conversation_id=ticket.conversation_id)


def received_text(ticket: Ticket, name: str | None) -> str:
    return (
        f"Hello {name or ''},\n\n".replace(" ,", ",")
        + f"we received your request and opened ticket #{ticket.number}: {ticket.subject}\n"
        "Reply to this email to add to it.\n"
    )


def solved_text(ticket: Ticket, csat_url: str | None) -> str:
    text = f"Ticket #{ticket.number} ({ticket.subject}) is solved.\n"
    if csat_url:
        text += f"\nHow did we do? Rate us (one click): {csat_url}\n"
    return text + "\nReply to this email if anything is still open.\n"


def received(ticket: Ticket, to: str, name: str | None, *, mail_from: str) -> NewDelivery:
    return _mail(ticket, to, name, subject(ticket), received_text(ticket, name), mail_from)


def public_reply(
    ticket: Ticket, to: str, name: str | None, agent_name: str, body: str, *, mail_from: str
) -> NewDelivery:
    text = f"{body}\n\n-- \n{agent_name}, ticket #{ticket.number}\n"
    return _mail(ticket, to, name, subject(ticket, reply=True), text, mail_from)


def solved(ticket: Ticket, to: str, name: str | None, csat_url: str | None, *, mail_from: str) -> NewDelivery:
    return _mail(ticket, to, name, subject(ticket), solved_text(ticket, csat_url), mail_from)
