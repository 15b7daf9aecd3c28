"""What a change writes into the outbox in its own transaction besides itself: the events outgoing
webhooks subscribe to (``chatserver/webhooks/service.py`` is the :class:`ChangeEvents` of a running app).

So an event exists if and only if its change committed: a process that dies right after the commit
loses nothing, and a change that rolls back leaves no event. The writers call in here inside their
transaction:

- the message writer with the batch's new messages (:meth:`ChangeEvents.messages`, pure, no query);
- every conversation status write (:func:`conversation_changed`) and the creation of a conversation;
- every ticket write that bumps its version (:func:`ticket_changed`).

With nothing subscribed each is a method call that returns nothing: no query, no row. When something
is subscribed, a conversation's or ticket's event reads the object back in the same transaction (as of
the change) and inserts its rows there; a batch of messages adds its rows to the batch's own insert.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from chatserver.model.ids import now_ms
from chatserver.model.status import Status
from chatserver.model.types import Author, AuthorKind
from chatserver.store import rows
from chatserver.store.schema import agents, contacts, conversations

if TYPE_CHECKING:
    from chatserver.model.types import Message
    from chatserver.outbox.registry import NewDelivery
    from chatserver.store.db import Database


@dataclass(frozen=True, slots=True)
class ConversationChange:
    """A conversation as of its change (its ``conversation`` payload) and the status it had before
    (None: it was created)."""

    conversation: dict[str, Any]
    previous: Status | None


class ChangeEvents:
    """Who is told about changes; this base tells no one (no webhook subscribed, or none running)."""

    def messages(self, new: Sequence[Message]) -> list[NewDelivery]:
        """The deliveries of a batch's new messages. Called once per batch; pure (no I/O)."""
        return []

    def wants_conversation(self, *, created: bool) -> bool:
        """Whether a conversation's creation (or status change) is subscribed at all."""
        return False

    def conversations(self, changes: Sequence[ConversationChange]) -> list[NewDelivery]:
        return []

    def wants_ticket(self) -> bool:
        return False

    def tickets(self, snapshots: Sequence[dict[str, Any]]) -> list[NewDelivery]:
        """The deliveries of tickets as of their change (each a ticket's wire form)."""
        return []


NO_EVENTS = ChangeEvents()


async def conversation_snapshots(conn: AsyncConnection, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The ``conversation`` payload of each conversation as this transaction sees it: its row, its
    contact and its assignee (a bot's handoff summary too); read cursors, queue and ticket are not
    part of it."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    convs = [
        rows.conversation(r)
        for r in await conn.execute(sa.select(conversations).where(conversations.c.id.in_(wanted)))
    ]
    people = {
        r.id: rows.contact(r)
        for r in await conn.execute(
            sa.select(contacts).where(contacts.c.id.in_(sorted({c.contact_id for c in convs})))
        )
    }
    assignee_ids = sorted({c.assignee_id for c in convs if c.assignee_id is not None})
    names: dict[str, str] = {}
    if assignee_ids:
        names = {
            r.id: r.name
            for r in await conn.execute(
                sa.select(agents.c.id, agents.c.name).where(agents.c.id.in_(assignee_ids))
            )
        }
    out: dict[str, dict[str, Any]] = {}
    for conv in convs:
        assignee = None
        if conv.assignee_id is not None and conv.assignee_id in names:
            assignee = Author(AuthorKind.AGENT, conv.assignee_id, names[conv.assignee_id])
        payload = conv.to_wire(contact=people.get(conv.contact_id), assignee=assignee)
        if conv.routing.get("handoff"):
            payload["handoff"] = conv.routing["handoff"]
        out[conv.id] = payload
    return out


async def conversation_changed(
    conn: AsyncConnection, db: Database, changed: Sequence[tuple[str, Status | None]]
) -> None:
    """Inside the transaction that created conversations or changed their status (``(id, previous
    status)``, None for a new one): write the events of those changes. A status written again unchanged
    is no change."""
    events = db.changes
    wanted = [
        (conv_id, previous)
        for conv_id, previous in changed
        if events.wants_conversation(created=previous is None)
    ]
    if not wanted:
        return
    snapshots = await conversation_snapshots(conn, (conv_id for conv_id, _ in wanted))
    found = [
        ConversationChange(snapshots[conv_id], previous)
        for conv_id, previous in wanted
        if conv_id in snapshots and (previous is None or snapshots[conv_id]["status"] != previous.value)
    ]
    await _insert(conn, events.conversations(found))


async def ticket_changed(conn: AsyncConnection, db: Database, snapshots: Sequence[dict[str, Any]]) -> None:
    """Inside a ticket's write transaction: the events of the tickets as of that change."""
    if db.changes.wants_ticket():
        await _insert(conn, db.changes.tickets(snapshots))


async def _insert(conn: AsyncConnection, deliveries: Sequence[NewDelivery]) -> None:
    if deliveries:
        from chatserver.outbox.store import delivery_values, insert_deliveries

        now = now_ms()
        await insert_deliveries(conn, (delivery_values(d, now) for d in deliveries))
