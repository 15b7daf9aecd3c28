"""Ticket queries. Numbers come from one counter row, incremented inside the creating transaction
(the row lock on PostgreSQL, the single writer on SQLite), so processes never hand out the same
number; a unique index backs it. Every change is a compare-and-set on ``version`` and writes its
audit entries (and any outbound emails and its webhook events) in the same transaction."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from chatserver.errors import Conflict, Invalid, NotFound
from chatserver.model.ids import new_id, now_ms
from chatserver.outbox.registry import NewDelivery
from chatserver.outbox.store import delivery_values, insert_deliveries
from chatserver.store.changes import ticket_changed
from chatserver.store.db import Database
from chatserver.store.schema import (
    counters,
    ticket_audit,
    ticket_conversations,
    ticket_field_defs,
    tickets,
)
from chatserver.tickets.model import Actor, AuditEntry, Change, FieldDef, FieldType, Priority, Ticket
from chatserver.tickets.status import TicketStatus

NUMBER_COUNTER = "ticket_number"

Deliveries = Callable[[Ticket], Sequence[NewDelivery]]
"""Builds the emails of a change once the ticket (with its number) is known, inside the transaction."""


_CONTACT_TICKETS = sa.union_all(
    sa.select(tickets, ticket_conversations.c.conversation_id.label("linked_conversation"))
    .join(ticket_conversations, ticket_conversations.c.ticket_id == tickets.c.id)
    .where(ticket_conversations.c.conversation_id.in_(sa.bindparam("b_cids", expanding=True))),
    sa.select(
        tickets, sa.cast(sa.null(), ticket_conversations.c.conversation_id.type).label("linked_conversation")
    ).where(
        tickets.c.requester_id.in_(sa.bindparam("b_contacts", expanding=True)),
        tickets.c.status.in_(sa.bindparam("b_statuses", expanding=True)),
        tickets.c.merged_into.is_(None),
    ),
)
"""Per commit batch of contacts' messages: the tickets their conversations are linked to, and the
contacts' own tickets in the given statuses (``linked_conversation`` NULL), in one statement built once."""


def _ticket(r: Row[Any]) -> Ticket:
    return Ticket(
        id=r.id,
        number=r.number,
        subject=r.subject,
        status=TicketStatus(r.status),
        priority=Priority(r.priority),
        requester_id=r.requester_id,
        conversation_id=r.conversation_id,
        assignee_id=r.assignee_id,
        team_id=r.team_id,
        tags=tuple(r.tags or ()),
        fields=dict(r.fields or {}),
        merged_into=r.merged_into,
        parent_number=r.parent_number,
        version=r.version,
        created_at=r.created_at,
        updated_at=r.updated_at,
        solved_at=r.solved_at,
        first_response_at=r.first_response_at,
        email_refs=tuple(r.email_refs or ()),
        email_note=r.email_note,
    )


def _actor(raw: Mapping[str, Any]) -> Actor:
    return Actor(raw["kind"], raw["id"], raw["name"])


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Ticket]
    next_cursor: str | None


def _cursor(values: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(values))).decode().rstrip("=")


def _uncursor(raw: str) -> list[Any]:
    try:
        values = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        raise Invalid("cursor is not one this server gave out", data={"field": "cursor"}) from None
    if not isinstance(values, list) or len(values) != 2:
        raise Invalid("cursor is not one this server gave out", data={"field": "cursor"})
    return values


@dataclass(frozen=True, slots=True)
class TicketFilter:
    statuses: tuple[str, ...] = ()
    assignee_id: str | None = None
    team_id: str | None = None
    tag: str | None = None
    requester_id: str | None = None
    breached: bool | None = None


class TicketQueries:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- reads ------------------------------------------------------------------------------------------

    async def get(self, number: int) -> Ticket:
        async with self.db.read() as conn:
            r = (await conn.execute(sa.select(tickets).where(tickets.c.number == number))).first()
        if r is None:
            raise NotFound(f"ticket #{number} not found")
        return _ticket(r)

    async def get_by_id(self, ticket_id: str) -> Ticket:
        async with self.db.read() as conn:
            r = (await conn.execute(sa.select(tickets).where(tickets.c.id == ticket_id))).first()
        if r is None:
            raise NotFound("ticket not found")
        return _ticket(r)

    async def for_conversation(self, conversation_id: str) -> Ticket | None:
        async with self.db.read() as conn:
            r = (
                await conn.execute(
                    sa.select(tickets)
                    .join(ticket_conversations, ticket_conversations.c.ticket_id == tickets.c.id)
                    .where(ticket_conversations.c.conversation_id == conversation_id)
                )
            ).first()
        return _ticket(r) if r else None

    async def for_contact_messages(
        self, pairs: Sequence[tuple[str, str]], statuses: Iterable[str]
    ) -> dict[str, tuple[Ticket, bool]]:
        """For each (conversation, contact) that just got a contact's message, the ticket it belongs to:
        the conversation's own (``True``), else the contact's most recently updated one in ``statuses``
        (``False``); conversations with neither are left out. One read for a whole commit batch (it runs
        for every message contacts send, so it must not cost a query per message)."""
        if not pairs:
            return {}
        out: dict[str, tuple[Ticket, bool]] = {}
        latest: dict[str, tuple[int, str, Ticket]] = {}
        wanted = frozenset(statuses)
        async with self.db.read() as conn:
            found = await conn.execute(
                _CONTACT_TICKETS,
                {
                    "b_cids": sorted({c for c, _ in pairs}),
                    "b_contacts": sorted({ct for _, ct in pairs}),
                    "b_statuses": sorted(wanted),
                },
            )
            for r in found:
                if r.linked_conversation is not None:
                    out[r.linked_conversation] = (_ticket(r), True)
                    continue
                best = latest.get(r.requester_id)
                if best is None or (r.updated_at, r.id) > best[:2]:  # the most recently updated
                    latest[r.requester_id] = (r.updated_at, r.id, _ticket(r))
        for cid, contact_id in pairs:
            if cid not in out and contact_id in latest:
                out[cid] = (latest[contact_id][2], False)
        return out

    async def conversation_ids(self, ticket: Ticket) -> list[str]:
        async with self.db.read() as conn:
            linked = await conn.scalars(
                sa.select(ticket_conversations.c.conversation_id)
                .where(ticket_conversations.c.ticket_id == ticket.id)
                .order_by(ticket_conversations.c.linked_at)
            )
            ids = list(linked)
        if ticket.conversation_id not in ids:
            ids.insert(0, ticket.conversation_id)
        return ids

    async def audit(self, ticket_id: str) -> list[AuditEntry]:
        async with self.db.read() as conn:
            result = await conn.execute(
                sa.select(ticket_audit)
                .where(ticket_audit.c.ticket_id == ticket_id)
                .order_by(ticket_audit.c.at, ticket_audit.c.id)
            )
            return [
                AuditEntry(r.id, r.ticket_id, r.at, _actor(r.actor), r.field, r.old, r.new) for r in result
            ]

    async def search(self, f: TicketFilter, *, sort: str, limit: int, cursor: str | None) -> Page:
        q = sa.select(tickets)
        if f.statuses:
            q = q.where(tickets.c.status.in_(f.statuses))
        if f.assignee_id is not None:
            q = q.where(tickets.c.assignee_id == f.assignee_id)
        if f.team_id is not None:
            q = q.where(tickets.c.team_id == f.team_id)
        if f.requester_id is not None:
            q = q.where(tickets.c.requester_id == f.requester_id)
        if f.breached is not None:
            q = q.where(tickets.c.sla_breached.is_(f.breached))
        if f.tag is not None:
            q = q.where(sa.cast(tickets.c.tags, sa.Text).like(f'%"{f.tag.lower()}"%'))
        key: sa.ColumnElement[Any]
        if sort == "due":
            # due first (earliest first), tickets without a due time last
            key = sa.func.coalesce(tickets.c.sla_due_at, 2**62)
            if cursor is not None:
                at, last_id = _uncursor(cursor)
                q = q.where(sa.or_(key > at, sa.and_(key == at, tickets.c.id > last_id)))
            q = q.order_by(key, tickets.c.id)
        else:
            key = tickets.c.updated_at
            if cursor is not None:
                at, last_id = _uncursor(cursor)
                q = q.where(sa.or_(key < at, sa.and_(key == at, tickets.c.id < last_id)))
            q = q.order_by(key.desc(), tickets.c.id.desc())
        async with self.db.read() as conn:
            rows = [_ticket(r) for r in await conn.execute(q.limit(limit + 1))]
        items = rows[:limit]
        next_cursor = None
        if len(rows) > limit:
            last = items[-1]
            async with self.db.read() as conn:
                due = await conn.scalar(sa.select(tickets.c.sla_due_at).where(tickets.c.id == last.id))
            at = (due if due is not None else 2**62) if sort == "due" else last.updated_at
            next_cursor = _cursor([at, last.id])
        return Page(items, next_cursor)

    # -- writes -----------------------------------------------------------------------------------------

    async def _next_number(self, conn: AsyncConnection) -> int:
        number = await conn.scalar(
            counters.update()
            .where(counters.c.name == NUMBER_COUNTER)
            .values(value=counters.c.value + 1)
            .returning(counters.c.value)
        )
        if number is None:
            raise Conflict("the ticket number counter is missing: run `chatserver migrate`")
        return int(number)

    async def create(
        self,
        *,
        subject: str,
        priority: Priority,
        requester_id: str,
        conversation_id: str,
        actor: Actor,
        status: TicketStatus = TicketStatus.NEW,
        assignee_id: str | None = None,
        team_id: str | None = None,
        tags: Sequence[str] = (),
        fields: Mapping[str, Any] | None = None,
        parent_number: int | None = None,
        email_note: str | None = None,
        deliveries: Deliveries | None = None,
        move_link: bool = False,
    ) -> Ticket:
        """A new ticket for ``conversation_id``; ``move_link`` takes the conversation from the ticket it
        belonged to (a follow-up after that one was finished)."""
        now = now_ms()
        async with self.db.write() as conn:
            if move_link:
                await conn.execute(
                    ticket_conversations.delete().where(
                        ticket_conversations.c.conversation_id == conversation_id
                    )
                )
            linked = await conn.scalar(
                sa.select(ticket_conversations.c.ticket_id).where(
                    ticket_conversations.c.conversation_id == conversation_id
                )
            )
            if linked is not None:
                raise Conflict("this conversation already belongs to a ticket")
            number = await self._next_number(conn)
            ticket = Ticket(
                id=new_id("tk_"),
                number=number,
                subject=subject,
                status=status,
                priority=priority,
                requester_id=requester_id,
                conversation_id=conversation_id,
                assignee_id=assignee_id,
                team_id=team_id,
                tags=tuple(tags),
                fields=dict(fields or {}),
                parent_number=parent_number,
                created_at=now,
                updated_at=now,
                email_note=email_note,
            )
            outbound = list(deliveries(ticket)) if deliveries is not None else []
            refs = [d.idempotency_key for d in outbound if d.kind == "email"]
            await conn.execute(
                tickets.insert().values(
                    id=ticket.id,
                    number=number,
                    subject=subject,
                    status=status.value,
                    priority=priority.value,
                    requester_id=requester_id,
                    conversation_id=conversation_id,
                    assignee_id=assignee_id,
                    team_id=team_id,
                    tags=list(ticket.tags),
                    fields=dict(ticket.fields),
                    merged_into=None,
                    parent_number=parent_number,
                    version=1,
                    created_at=now,
                    updated_at=now,
                    solved_at=None,
                    first_response_at=None,
                    email_refs=refs,
                    email_note=email_note,
                    sla=None,
                    sla_due_at=None,
                    sla_breached=False,
                )
            )
            await conn.execute(
                ticket_conversations.insert().values(
                    conversation_id=conversation_id, ticket_id=ticket.id, linked_at=now
                )
            )
            await self._audit(conn, ticket.id, actor, [Change("created", None, number)], now)
            await insert_deliveries(conn, (delivery_values(d, now) for d in outbound))
            await self._changed(conn, ticket.id)
        return await self.get(number)

    async def _changed(self, conn: AsyncConnection, *ticket_ids: str) -> None:
        """The tickets' events (webhooks), as this transaction leaves them."""
        if self.db.changes.wants_ticket():
            found = await conn.execute(sa.select(tickets).where(tickets.c.id.in_(ticket_ids)))
            by_id = {r.id: _ticket(r).to_wire() for r in found}
            await ticket_changed(conn, self.db, [by_id[i] for i in ticket_ids if i in by_id])

    async def _audit(
        self, conn: AsyncConnection, ticket_id: str, actor: Actor, changes: Sequence[Change], now: int
    ) -> None:
        if changes:
            await conn.execute(
                ticket_audit.insert(),
                [
                    {
                        "id": new_id("au_"),
                        "ticket_id": ticket_id,
                        "at": now,
                        "actor": actor.to_wire(),
                        "field": c.field,
                        "old": c.old,
                        "new": c.new,
                    }
                    for c in changes
                ],
            )

    async def update(
        self,
        ticket: Ticket,
        changes: Sequence[Change],
        actor: Actor,
        *,
        expect_version: int | None = None,
        extra: Mapping[str, Any] | None = None,
        deliveries: Deliveries | None = None,
    ) -> Ticket:
        """Apply audited changes if the ticket is still at ``expect_version`` (default: the one read);
        a stale version raises Conflict with the current ticket in ``data.ticket``."""
        version = ticket.version if expect_version is None else expect_version
        now = now_ms()
        values: dict[str, Any] = dict(extra or {})
        fields = dict(ticket.fields)
        for c in changes:
            if c.field.startswith("fields."):
                key = c.field[len("fields.") :]
                if c.new is None:
                    fields.pop(key, None)
                else:
                    fields[key] = c.new
                values["fields"] = fields
            elif c.field in ("subject", "status", "priority", "assignee_id", "team_id", "tags"):
                values[c.field] = c.new
            elif c.field == "merged_into":
                values["merged_into"] = c.new
        if values.get("status") == TicketStatus.SOLVED.value:
            values["solved_at"] = now
        async with self.db.write() as conn:
            outbound = list(deliveries(ticket)) if deliveries is not None else []
            if outbound:
                values["email_refs"] = [
                    *ticket.email_refs,
                    *(d.idempotency_key for d in outbound if d.kind == "email"),
                ]
            res = await conn.execute(
                tickets.update()
                .where(tickets.c.id == ticket.id, tickets.c.version == version)
                .values(**values, version=tickets.c.version + 1, updated_at=now)
            )
            if res.rowcount != 1:
                current = (await conn.execute(sa.select(tickets).where(tickets.c.id == ticket.id))).first()
                if current is None:
                    raise NotFound("ticket not found")
                fresh = _ticket(current)
                raise Conflict(
                    f"ticket #{fresh.number} changed since version {version} (now {fresh.version})",
                    data={"ticket": fresh.to_wire()},
                )
            await self._audit(conn, ticket.id, actor, changes, now)
            await insert_deliveries(conn, (delivery_values(d, now) for d in outbound))
            await self._changed(conn, ticket.id)
        return await self.get_by_id(ticket.id)

    async def link(self, ticket: Ticket, conversation_id: str) -> bool:
        """Thread a conversation into the ticket; False if it already belongs to one."""
        async with self.db.write() as conn:
            linked = await conn.scalar(
                sa.select(ticket_conversations.c.ticket_id).where(
                    ticket_conversations.c.conversation_id == conversation_id
                )
            )
            if linked is not None:
                return False
            await conn.execute(
                ticket_conversations.insert().values(
                    conversation_id=conversation_id, ticket_id=ticket.id, linked_at=now_ms()
                )
            )
        return True

    async def merge(self, source: Ticket, target: Ticket, actor: Actor) -> tuple[Ticket, Ticket]:
        """Close ``source`` into ``target``: its conversations move to the target's thread."""
        now = now_ms()
        async with self.db.write() as conn:
            res = await conn.execute(
                tickets.update()
                .where(
                    tickets.c.id == source.id,
                    tickets.c.version == source.version,
                    tickets.c.status != TicketStatus.CLOSED.value,
                )
                .values(
                    status=TicketStatus.CLOSED.value,
                    merged_into=target.number,
                    version=tickets.c.version + 1,
                    updated_at=now,
                )
            )
            if res.rowcount != 1:
                raise Conflict(f"ticket #{source.number} changed meanwhile; try again")
            res = await conn.execute(
                tickets.update()
                .where(tickets.c.id == target.id, tickets.c.status != TicketStatus.CLOSED.value)
                .values(version=tickets.c.version + 1, updated_at=now)
            )
            if res.rowcount != 1:
                raise Conflict(f"ticket #{target.number} is closed; nothing can be merged into it")
            await conn.execute(
                ticket_conversations.update()
                .where(ticket_conversations.c.ticket_id == source.id)
                .values(ticket_id=target.id)
            )
            await self._audit(
                conn,
                source.id,
                actor,
                [
                    Change("status", source.status.value, TicketStatus.CLOSED.value),
                    Change("merged_into", None, target.number),
                ],
                now,
            )
            await self._audit(conn, target.id, actor, [Change("merged", None, source.number)], now)
            await self._changed(conn, source.id, target.id)
        return await self.get_by_id(source.id), await self.get_by_id(target.id)

    async def note_first_response(self, ticket: Ticket, at: int) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                tickets.update()
                .where(tickets.c.id == ticket.id, tickets.c.first_response_at.is_(None))
                .values(first_response_at=at)
            )

    # -- custom field definitions -----------------------------------------------------------------------

    async def field_defs(self) -> list[FieldDef]:
        async with self.db.read() as conn:
            result = await conn.execute(
                sa.select(ticket_field_defs).order_by(ticket_field_defs.c.position, ticket_field_defs.c.key)
            )
            return [
                FieldDef(
                    r.key, r.label, FieldType(r.type), tuple(r.options or ()), bool(r.required), r.position
                )
                for r in result
            ]

    async def save_field_def(self, d: FieldDef, *, create: bool) -> FieldDef:
        values = {
            "label": d.label,
            "type": d.type.value,
            "options": list(d.options),
            "required": d.required,
            "position": d.position,
        }
        async with self.db.write() as conn:
            exists = await conn.scalar(
                sa.select(ticket_field_defs.c.key).where(ticket_field_defs.c.key == d.key)
            )
            if create:
                if exists is not None:
                    raise Conflict(f"a field {d.key!r} already exists", data={"field": "key"})
                await conn.execute(
                    ticket_field_defs.insert().values(key=d.key, created_at=now_ms(), **values)
                )
            else:
                if exists is None:
                    raise NotFound(f"no field {d.key!r}")
                await conn.execute(
                    ticket_field_defs.update().where(ticket_field_defs.c.key == d.key).values(**values)
                )
        return d

    async def delete_field_def(self, key: str) -> None:
        async with self.db.write() as conn:
            res = await conn.execute(ticket_field_defs.delete().where(ticket_field_defs.c.key == key))
            if res.rowcount == 0:
                raise NotFound(f"no field {key!r}")
