"""The threading decision: which conversation an inbound mail joins. Pure.

In order: our plus-address token (``support+<token>@``), then In-Reply-To / References against the
Message-IDs we know, then a ``[#1001]`` ticket number in the subject *with the same sender*, else a new
conversation. The shell extracts the keys (:func:`thread_keys`), looks them up, and hands the findings
back as plain data to :func:`decide_thread`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from adapters.email.address import normalize, split_plus

__all__ = ["ThreadDecision", "ThreadKeys", "ThreadKind", "TicketRef", "decide_thread", "thread_keys"]

_TICKET = re.compile(r"\[#(\d{1,12})\]")
_TICKET_TAG = re.compile(r"^[^@+]+\+t(\d{1,12})@", re.IGNORECASE)
"""``support+t1001@``: the Reply-To of ticket mails sent outside an email thread."""


class ThreadKind(enum.StrEnum):
    TOKEN = "token"
    HEADERS = "headers"
    TICKET = "ticket"
    NEW = "new"


@dataclass(frozen=True, slots=True)
class ThreadKeys:
    tokens: tuple[str, ...]
    message_ids: tuple[str, ...]
    """In-Reply-To first, then References newest first."""
    ticket_numbers: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TicketRef:
    conversation_id: str
    contact_address: str


@dataclass(frozen=True, slots=True)
class ThreadDecision:
    kind: ThreadKind
    conversation_id: str | None


def thread_keys(
    *,
    recipients: Collection[str],
    inbox_address: str,
    in_reply_to: tuple[str, ...],
    references: tuple[str, ...],
    subject: str,
) -> ThreadKeys:
    """``recipients``: the envelope RCPTs (SMTP) or To/Cc/Delivered-To (IMAP)."""
    base = normalize(inbox_address)
    tokens: list[str] = []
    numbers: list[int] = []
    for rcpt in recipients:
        address, token = split_plus(rcpt)
        if token and address == base and token not in tokens:
            tokens.append(token)
        tag = _TICKET_TAG.match(normalize(rcpt))
        if tag and address == base:
            numbers.append(int(tag.group(1)))
    ids: list[str] = []
    for mid in (*in_reply_to, *reversed(references)):
        if mid not in ids:
            ids.append(mid)
    numbers += [int(n) for n in _TICKET.findall(subject)]
    return ThreadKeys(tuple(tokens), tuple(ids), tuple(dict.fromkeys(numbers)))


def decide_thread(
    keys: ThreadKeys,
    *,
    sender: str,
    by_token: Mapping[str, str],
    by_message_id: Mapping[str, str],
    by_ticket: Mapping[int, TicketRef],
) -> ThreadDecision:
    """``by_token``: token -> conversation id; ``by_message_id``: Message-ID -> conversation id;
    ``by_ticket``: ticket number -> its conversation and contact address (only those found)."""
    for token in keys.tokens:
        if token in by_token:
            return ThreadDecision(ThreadKind.TOKEN, by_token[token])
    for mid in keys.message_ids:
        if mid in by_message_id:
            return ThreadDecision(ThreadKind.HEADERS, by_message_id[mid])
    who = normalize(sender)
    for number in keys.ticket_numbers:
        ref = by_ticket.get(number)
        if ref is not None and who and normalize(ref.contact_address) == who:
            return ThreadDecision(ThreadKind.TICKET, ref.conversation_id)
    return ThreadDecision(ThreadKind.NEW, None)
