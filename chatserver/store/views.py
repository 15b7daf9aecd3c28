"""The reads behind a conversation's wire form and behind ``conversation.start``, batched.

A ``conversation`` payload needs the contact, the assignee's name, the read cursors and the ticket
summary. :meth:`ViewQueries.conversation_parts` reads them for any number of conversations in one
transaction with one statement per part (the router's cycle asks for all its offers at once), and
leaves out the parts the caller already has. :meth:`ViewQueries.start_context` is what starting a
conversation reads: the contact's open conversation in the inbox, the contact and the agent they last
talked to, in one transaction.
"""

from __future__ import annotations

import functools
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
    assignee_avatar: str | None = None
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
        """The parts of each conversation's payload, by conversation id, in one transaction of at most
        two statements: the conversations joined to their contact, assignee and ticket, then the read
        cursors. The contact and assignee are read only for ids not in ``skip_contacts`` /
        ``skip_assignees`` (the caller has them); read cursors and tickets only for conversations not in
        ``skip_reads`` (one just created has neither); tickets only with ``tickets_too``. The contact and
        assignee are the ones ``conv`` names (the version the caller holds): should the stored row name
        others by now (a contact merge, a new assignee), those are read by id (a third statement)."""
        wanted = {c.id: c for c in convs}
        out = {cid: ConversationParts() for cid in wanted}
        need_contact = {cid for cid, c in wanted.items() if c.contact_id not in skip_contacts}
        need_agent = {
            cid
            for cid, c in wanted.items()
            if c.assignee_id is not None and c.assignee_id not in skip_assignees
        }
        with_reads = {cid for cid in wanted if cid not in skip_reads}
        with_ticket = with_reads if tickets_too else set()
        joined = need_contact | need_agent | with_ticket
        if not (joined or with_reads):
            return out
        contact_found: dict[str, Contact] = {}
        names: dict[str, tuple[str, str | None]] = {}
        """The assignees' names and avatars."""
        async with self.db.read() as conn:
            if joined:
                query = _parts_query(bool(need_contact), bool(need_agent), bool(with_ticket))
                for r in await conn.execute(query, {"b_ids": sorted(joined)}):
                    conv = wanted[r.conversation_id]
                    part = out[conv.id]
                    if need_contact and r.id is not None and r.id == conv.contact_id:
                        contact_found[r.id] = rows.contact(r)
                    if need_agent and r.agent_id is not None and r.agent_id == conv.assignee_id:
                        names[r.agent_id] = (r.agent_name, r.agent_avatar)
                    if r.conversation_id in with_ticket and r.ticket_number is not None:
                        part.ticket = {
                            "number": r.ticket_number,
                            "status": r.ticket_status,
                            "subject": r.ticket_subject,
                        }
                missing_contacts = {wanted[cid].contact_id for cid in need_contact} - set(contact_found)
                if missing_contacts:  # the stored row names another contact by now
                    found = await conn.execute(sa.select(contacts).where(contacts.c.id.in_(missing_contacts)))
                    contact_found.update({r.id: rows.contact(r) for r in found})
                missing_agents = {wanted[cid].assignee_id for cid in need_agent} - set(names) - {None}
                if missing_agents:
                    found = await conn.execute(
                        sa.select(agents.c.id, agents.c.name, agents.c.avatar_url).where(
                            agents.c.id.in_(missing_agents)
                        )
                    )
                    names.update({r.id: (r.name, r.avatar_url) for r in found})
            if with_reads:
                found = await conn.execute(_READS, {"b_ids": sorted(with_reads)})
                for r in found:
                    out[r.conversation_id].reads.append((r.reader_kind, r.reader_id, r.seq))
        for cid, conv in wanted.items():
            part = out[cid]
            part.contact = contact_found.get(conv.contact_id)
            if conv.assignee_id in names:
                name, part.assignee_avatar = names[conv.assignee_id]
                part.assignee = Author(AuthorKind.AGENT, conv.assignee_id, name)
        return out

    async def start_context(self, contact_id: str, inbox_id: str, *, reuse_open: bool) -> StartContext:
        """What ``conversation.start`` needs to know, in one transaction: the open conversation to reuse
        (only with ``reuse_open``), the contact, and the last agent of the contact."""
        async with self.db.read() as conn:
            if reuse_open:
                params = {"b_contact": contact_id, "b_inbox": inbox_id}
                r = (await conn.execute(_OPEN_IN_INBOX, params)).first()
                if r is not None:
                    return StartContext(rows.conversation(r), None, None)
            found = (await conn.execute(_CONTACT_AND_LAST_AGENT, {"b_contact": contact_id})).first()
        if found is None:
            return StartContext(None, None, None)
        return StartContext(None, rows.contact(found), found.last_agent_id)


# Built once (building a statement costs more than running it); values are bound parameters.
_READS = sa.select(
    read_cursors.c.conversation_id,
    read_cursors.c.reader_kind,
    read_cursors.c.reader_id,
    read_cursors.c.seq,
).where(read_cursors.c.conversation_id.in_(sa.bindparam("b_ids", expanding=True)))
_OPEN_IN_INBOX = (
    sa.select(conversations)
    .where(
        conversations.c.contact_id == sa.bindparam("b_contact"),
        conversations.c.inbox_id == sa.bindparam("b_inbox"),
        conversations.c.status.in_([s.value for s in OPEN_STATUSES]),
    )
    .order_by(conversations.c.id.desc())
    .limit(1)
)
_LAST_AGENT = (
    sa.select(conversations.c.assignee_id)
    .where(conversations.c.contact_id == sa.bindparam("b_contact"), conversations.c.assignee_id.is_not(None))
    .order_by(conversations.c.id.desc())
    .limit(1)
    .scalar_subquery()
)
_CONTACT_AND_LAST_AGENT = sa.select(contacts, _LAST_AGENT.label("last_agent_id")).where(
    contacts.c.id == sa.bindparam("b_contact")
)


@functools.cache
def _parts_query(contact: bool, agent: bool, ticket: bool) -> sa.Select[Any]:
    """The conversations ``b_ids`` (a bound list, as stored) with, as asked, their contact's columns, their
    assignee's id and name (``agent_id``, ``agent_name``) and their ticket (``ticket_number``,
    ``ticket_status``, ``ticket_subject``): one row each (a conversation belongs to at most one ticket).
    Built once per combination."""
    columns: list[Any] = [conversations.c.id.label("conversation_id")]
    source: Any = conversations
    if contact:
        columns.extend(contacts.c)
        source = source.outerjoin(contacts, contacts.c.id == conversations.c.contact_id)
    if agent:
        columns += [
            agents.c.id.label("agent_id"),
            agents.c.name.label("agent_name"),
            agents.c.avatar_url.label("agent_avatar"),
        ]
        source = source.outerjoin(agents, agents.c.id == conversations.c.assignee_id)
    if ticket:
        columns += [
            tickets.c.number.label("ticket_number"),
            tickets.c.status.label("ticket_status"),
            tickets.c.subject.label("ticket_subject"),
        ]
        source = source.outerjoin(
            ticket_conversations, ticket_conversations.c.conversation_id == conversations.c.id
        ).outerjoin(tickets, tickets.c.id == ticket_conversations.c.ticket_id)
    return (
        sa.select(*columns)
        .select_from(source)
        .where(conversations.c.id.in_(sa.bindparam("b_ids", expanding=True)))
    )
