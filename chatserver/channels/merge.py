"""Merging two contacts (the same person on two channels) into one.

In one transaction: the merged contact's identities, conversations, tickets (as requester) and CSAT
ratings move to the survivor, which takes the email, phone and language it lacked; the merged contact
stays as a pointer (``merged_into``). The moved conversations get a new version, so clients take the
new contact. Replies then go out on the channel of the conversation being answered, to the survivor's
identity on that channel. Bad input changes nothing: a contact merged into itself, or either contact
already merged, is a conflict; an unknown one is not found.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from chatserver.errors import Conflict, NotFound
from chatserver.model.ids import now_ms
from chatserver.model.types import Contact
from chatserver.store import rows
from chatserver.store.db import Database
from chatserver.store.schema import contact_identities, contacts, conversations, csat_ratings, tickets


async def merge_contacts(db: Database, source_id: str, into_id: str) -> tuple[Contact, list[str]]:
    """Merge ``source_id`` into ``into_id``; the survivor and the ids of the conversations that moved."""
    if source_id == into_id:
        raise Conflict("a contact cannot be merged into itself", data={"field": "into"})
    async with db.write() as conn:
        found = {
            r.id: r
            for r in await conn.execute(sa.select(contacts).where(contacts.c.id.in_([source_id, into_id])))
        }
        if source_id not in found:
            raise NotFound("contact not found")
        if into_id not in found:
            raise NotFound("the contact to merge into was not found", data={"field": "into"})
        source, into = found[source_id], found[into_id]
        if source.merged_into is not None:
            raise Conflict("this contact was merged already", data={"merged_into": source.merged_into})
        if into.merged_into is not None:
            raise Conflict(
                "the contact to merge into was itself merged",
                data={"field": "into", "merged_into": into.merged_into},
            )
        moved = list(
            await conn.scalars(sa.select(conversations.c.id).where(conversations.c.contact_id == source_id))
        )
        await conn.execute(
            contact_identities.update()
            .where(contact_identities.c.contact_id == source_id)
            .values(contact_id=into_id)
        )
        await conn.execute(
            conversations.update()
            .where(conversations.c.contact_id == source_id)
            .values(contact_id=into_id, version=conversations.c.version + 1, updated_at=now_ms())
        )
        await conn.execute(
            tickets.update().where(tickets.c.requester_id == source_id).values(requester_id=into_id)
        )
        await conn.execute(
            csat_ratings.update().where(csat_ratings.c.contact_id == source_id).values(contact_id=into_id)
        )
        fill: dict[str, Any] = {
            key: getattr(source, key)
            for key in ("email", "phone", "language")
            if getattr(into, key) is None and getattr(source, key) is not None
        }
        if fill:
            await conn.execute(contacts.update().where(contacts.c.id == into_id).values(**fill))
        res = await conn.execute(
            contacts.update()
            .where(contacts.c.id == source_id, contacts.c.merged_into.is_(None))
            .values(merged_into=into_id)
        )
        if res.rowcount != 1:  # merged meanwhile by another request: roll everything back
            raise Conflict("this contact was merged already")
        survivor = (await conn.execute(sa.select(contacts).where(contacts.c.id == into_id))).one()
    return rows.contact(survivor), moved
