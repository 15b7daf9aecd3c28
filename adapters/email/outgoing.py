"""Outgoing mail in an email thread: the headers of a reply we send. Pure: plain data in, payload out.

A reply threads in every mail client and back into our conversation:

- ``Message-ID``: a fresh one of ours (``<chat.<id>@<inbox domain>>``), recorded so that a reply to it
  threads by In-Reply-To / References and so that loop detection knows it;
- ``In-Reply-To``: the last mail of the thread (theirs or ours); ``References``: the thread's chain,
  capped at :data:`MAX_REFERENCES` (the first mail and the newest ones, as RFC 5322 suggests);
- ``Reply-To``: the inbox's plus-address with the thread's token (``support+<token>@``);
- ``Subject``: ``Re: <original subject>``, with ``[#1001]`` when the conversation has a ticket;
- ``From``: the inbox address, the agent's name as display name (made safe: no control characters,
  nothing that looks like an address);
- ``Auto-Submitted``: ``auto-replied`` (an answer to their mail) or ``auto-generated`` on automatic mail.

No header value ever carries CR or LF: everything user-typed goes through
:func:`adapters.email.headers.safe_header_text`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from adapters.email.address import normalize, plus_address
from adapters.email.headers import safe_header_text

__all__ = [
    "MAX_REFERENCES",
    "Automatic",
    "ThreadContext",
    "bracketed",
    "capped_references",
    "display_name",
    "new_message_id",
    "reply_payload",
    "reply_subject",
]

MAX_REFERENCES = 20
_PREFIX = re.compile(r"^\s*((re|aw|sv|fw|fwd|wg)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_TICKET = re.compile(r"\[#(\d{1,12})\]")
_NOT_IN_NAME = re.compile(r"[<>@\"\\,;:()\[\]]")

Automatic = Literal["auto-replied", "auto-generated"]


@dataclass(frozen=True, slots=True)
class ThreadContext:
    """What a reply in one email thread needs to know (the shell reads it from the database)."""

    inbox_address: str
    token: str
    subject: str
    """The thread's original subject (as the first mail had it)."""
    to_address: str
    to_name: str | None
    chain: tuple[str, ...]
    """Message-IDs of the thread's mails, oldest first, without angle brackets."""
    ticket_number: int | None = None

    @property
    def domain(self) -> str:
        return normalize(self.inbox_address).rpartition("@")[2] or "localhost"


def new_message_id(domain: str) -> str:
    """A Message-ID of ours, without angle brackets (as ``email_messages`` stores them)."""
    return f"chat.{secrets.token_hex(12)}@{safe_header_text(domain, max_chars=200).replace(' ', '')}"


def bracketed(message_id: str) -> str:
    return f"<{message_id.strip().strip('<>')}>"


def capped_references(chain: Sequence[str], cap: int = MAX_REFERENCES) -> list[str]:
    """The first Message-ID and the newest ``cap - 1``: the thread root stays, the middle goes."""
    ids = list(dict.fromkeys(i for i in chain if i))
    if len(ids) <= cap:
        return ids
    return [ids[0], *ids[len(ids) - (cap - 1) :]]


def reply_subject(original: str, ticket_number: int | None) -> str:
    """``Re: [#1001] <original>`` (one ``Re:``, one ticket tag), one safe line."""
    text = _PREFIX.sub("", safe_header_text(original, max_chars=400)).strip()
    if ticket_number is not None:
        found = _TICKET.search(text)
        if found is None:
            text = f"[#{ticket_number}] {text}".strip()
        elif int(found.group(1)) != ticket_number:
            text = f"[#{ticket_number}] {_TICKET.sub('', text).strip()}".strip()
    return f"Re: {text}" if text else "Re: your message"


def display_name(name: str | None, inbox_name: str | None = None) -> str | None:
    """A From display name that cannot pose as an address or break the header."""
    parts = [safe_header_text(_NOT_IN_NAME.sub(" ", n), max_chars=80) for n in (name, inbox_name) if n]
    parts = [p for p in parts if p]
    if not parts:
        return None
    if len(parts) == 2 and parts[0] != parts[1]:
        return f"{parts[0]} - {parts[1]}"
    return parts[0]


def reply_payload(
    ctx: ThreadContext,
    *,
    message_id: str,
    text: str,
    from_name: str | None,
    automatic: Automatic | None = None,
    subject: str | None = None,
) -> dict[str, Any]:
    """The outbox payload (see :mod:`chatserver.outbox.email`) of one mail in the thread."""
    refs = capped_references(ctx.chain)
    return {
        "to": normalize(ctx.to_address),
        "to_name": safe_header_text(ctx.to_name, max_chars=200) if ctx.to_name else None,
        "subject": safe_header_text(subject) if subject else reply_subject(ctx.subject, ctx.ticket_number),
        "text": text,
        "message_id": bracketed(message_id),
        "in_reply_to": bracketed(refs[-1]) if refs else None,
        "references": [bracketed(r) for r in refs],
        "reply_to": plus_address(ctx.inbox_address, ctx.token),
        "from_address": normalize(ctx.inbox_address),
        "from_name": from_name,
        "auto_submitted": automatic,
    }
