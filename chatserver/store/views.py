"""The reads behind a conversation's wire form and behind ``conversation.start``, batched.

A ``conversation`` payload needs the contact, the assignee's name, the read cursors and the ticket
summary. :meth:`ViewQueries.conversation_parts` reads them for any number of conversations in one
transaction with one statement per part (the router's cycle asks for all its offers at once), and
leaves out the parts the caller already has. :meth:`ViewQueries.start_context` is what starting a
conversation reads: the contact's open conversation in the inbox, the contact and the agent they last
talked to, in one transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from chatserver.model.status import OPEN_STATUSES
from chatserver.model.types import Author, AuthorKind, Contact, Conversation
from chatserver.store import rows
from chatserver.store.db import Database
from chatserver.store.schema import (
    agents,
    contacts,
    conversations,
    read_cursors,
    ticket_conversations,
    tickets,
)


@dataclass(slots=True)
class ConversationParts:
    """What a conversation's payload shows besides the conversation row itself."""

    contact: Contact | None = None
    assignee: Author | None = None
    reads: list[tuple[str, str, int]] = field(default_factory=list)
    """(reader kind, reader id, seq) of each read cursor."""
    ticket: dict[str, Any] | None = None
    """``{number, status, subject}`` of the conversation's ticket, if it has one."""


@dataclass(frozen=True, slots=True)
class StartContext:
    open_conversation: Conversation | None
    """The contact's newest open conversation in the inbox (reused instead of starting another)."""
    contact: Contact | None
    last_agent_id: str | None
    """The agent who last had one of the contact's conversations (routing prefers them)."""


class ViewQueries:
    db: Database

    async def conversation_parts(
        self,
        convs: Iterable[Conversation],
        *,
        skip_contacts: Collection[str] = (),
        skip_assignees: Collection[str] = (),
        skip_reads: Collection[str] = (),
        tickets_too: bool = True,
    ) -> dict[str, ConversationParts]:
        """The parts of each conversation's payload, by conversation id. The contact and assignee are
        read only for ids not in ``skip_contacts`` / ``skip_assignees`` (the caller has them); read cursors
        and tickets only for conversations not in ``skip_reads`` (one just created has neither); tickets
        only with ``tickets_too``. The assignee is the one ``conv`` names (the version the caller holds),
        an agent's name, or None if no agent has that id."""
        wanted = {c.id: c for c in convs}
        out = {cid: ConversationParts() for cid in wanted}
        contact_ids = {c.contact_id for c in wanted.values()} - set(skip_contacts)
        agent_ids = {c.assignee_id for c in wanted.values() if c.assignee_id} - set(skip_assignees)
        with_reads = [cid for cid in wanted if cid not in skip_reads]
        if not (contact_ids or agent_ids or with_reads):
            return out
        async with self.db.read() as conn:
            found_contacts: dict[str, Contact] = {}
            if contact_ids:
                found = await conn.execute(sa.select(contacts).where(contacts.c.id.in_(contact_ids)))
                found_contacts = {r.id: rows.contact(r) for r in found}
            names: dict[str, str] = {}
            if agent_ids:
                found = await conn.execute(
                    sa.select(agents.c.id, agents.c.name).where(agents.c.id.in_(agent_ids))
                )
                names = {r.id: r.name for r in found}
            if with_reads:
                found = await conn.execute(
                    sa.select(
                        read_cursors.c.conversation_id,
                        read_cursors.c.reader_kind,
                        read_cursors.c.reader_id,
                        read_cursors.c.seq,
                    ).where(read_cursors.c.conversation_id.in_(with_reads))
                )
                for r in found:
                    out[r.conversation_id].reads.append((r.reader_kind, r.reader_id, r.seq))
                if tickets_too:
                    found = await conn.execute(
                        sa.select(
                            ticket_conversations.c.conversation_id,
                            tickets.c.number,
                            tickets.c.status,
                            tickets.c.subject,
                        )
                        .join(tickets, tickets.c.id == ticket_conversations.c.ticket_id)
                        .where(ticket_conversations.c.conversation_id.in_(with_reads))
                    )
                    for r in found:
                        out[r.conversation_id].ticket = {
                            "number": r.number,
                            "status": r.status,
                            "subject": r.subject,
                        }
        for cid, conv in wanted.items():
            parts = out[cid]
            parts.contact = found_contacts.get(conv.contact_id)
            if conv.assignee_id in names:
                parts.assignee = Author(AuthorKind.AGENT, conv.assignee_id, names[conv.assignee_id])
        return out

    async def start_context(self, contact_id: str, inbox_id: str, *, reuse_open: bool) -> StartContext:
        """What ``conversation.start`` needs to know, in one transaction: the open conversation to reuse
        (only with ``reuse_open``), the contact, and the last agent of the contact."""
        c = conversations.c
        last_agent = (
            sa.select(c.assignee_id)
            .where(c.contact_id == contact_id, c.assignee_id.is_not(None))
            .order_by(c.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        async with self.db.read() as conn:
            existing = None
            if reuse_open:
                r = (
                    await conn.execute(
                        sa.select(conversations)
                        .where(
                            c.contact_id == contact_id,
                            c.inbox_id == inbox_id,
                            c.status.in_([s.value for s in OPEN_STATUSES]),
                        )
                        .order_by(c.id.desc())
                        .limit(1)
                    )
                ).first()
                if r is not None:
                    existing = rows.conversation(r)
                    return StartContext(existing, None, None)
            found = (
                await conn.execute(
                    sa.select(contacts, last_agent.label("last_agent_id")).where(contacts.c.id == contact_id)
                )
            ).first()
        if found is None:
            return StartContext(None, None, None)
        return StartContext(None, rows.contact(found), found.last_agent_id)
