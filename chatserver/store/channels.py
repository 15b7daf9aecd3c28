"""Queries for channel inboxes: contacts by platform identity, messages by platform id (dedupe), and the
polling cursor of an inbox (Telegram's getUpdates offset)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from chatserver.errors import Duplicate
from chatserver.model.ids import new_id, now_ms
from chatserver.model.types import Contact, Message
from chatserver.store import rows
from chatserver.store.db import Database
from chatserver.store.schema import channel_cursors, contact_identities, contacts, conversations, messages

INBOUND_STEP_MS = 60_000


class ChannelQueries:
    db: Database

    async def contact_by_identity(self, channel: str, external_id: str) -> Contact | None:
        found = await self._identity(channel, external_id)
        return found[0] if found else None

    async def _identity(self, channel: str, external_id: str) -> tuple[Contact, int | None] | None:
        async with self.db.read() as conn:
            r = (
                await conn.execute(
                    sa.select(contacts, contact_identities.c.last_inbound_at)
                    .join(contact_identities, contact_identities.c.contact_id == contacts.c.id)
                    .where(
                        contact_identities.c.channel == channel,
                        contact_identities.c.external_id == external_id,
                    )
                )
            ).first()
        return (rows.contact(r), r.last_inbound_at) if r else None

    async def ensure_contact(
        self,
        channel: str,
        external_id: str,
        *,
        name: str,
        language: str | None = None,
        phone: str | None = None,
        inbound_at_ms: int | None = None,
    ) -> Contact:
        """The contact with this identity, created with the profile if there is none yet; a known contact
        gets the language and phone it lacked. Two processes creating the same identity at once end with
        one contact (the identity is the primary key).

        ``inbound_at_ms`` (the platform time of a message from them) moves the identity's
        ``last_inbound_at`` forward, in steps of at least INBOUND_STEP_MS so that a busy chat does not
        write once per message: a reply window counted from it closes up to that much early, never late.
        """
        found = await self._identity(channel, external_id)
        if found is None:
            now = now_ms()
            contact = Contact(id=new_id("ct_"), name=name, phone=phone, language=language, created_at=now)
            try:
                async with self.db.write() as conn:
                    await conn.execute(
                        contacts.insert().values(
                            id=contact.id,
                            name=name,
                            phone=phone,
                            language=language,
                            verified=False,
                            attributes={},
                            created_at=now,
                        )
                    )
                    await conn.execute(
                        contact_identities.insert().values(
                            channel=channel,
                            external_id=external_id,
                            contact_id=contact.id,
                            created_at=now,
                            last_inbound_at=inbound_at_ms or None,
                        )
                    )
                return contact
            except (IntegrityError, Duplicate):  # Duplicate: mapped at the end of the transaction
                found = await self._identity(channel, external_id)
                if found is None:
                    raise
        contact, last_inbound = found
        values: dict[str, str] = {}
        if language and not contact.language:
            values["language"] = language
        if phone and not contact.phone:
            values["phone"] = phone
        touch = (
            inbound_at_ms is not None
            and inbound_at_ms > 0
            and (last_inbound is None or inbound_at_ms - last_inbound >= INBOUND_STEP_MS)
        )
        if not values and not touch:
            return contact
        async with self.db.write() as conn:
            if values:
                await conn.execute(contacts.update().where(contacts.c.id == contact.id).values(**values))
            if touch:
                c = contact_identities.c
                await conn.execute(
                    contact_identities.update()
                    .where(
                        c.channel == channel,
                        c.external_id == external_id,
                        sa.or_(c.last_inbound_at.is_(None), c.last_inbound_at < inbound_at_ms),
                    )
                    .values(last_inbound_at=inbound_at_ms)
                )
        return (await self._identity(channel, external_id) or found)[0]

    async def channel_identity(self, contact_id: str, channel: str) -> tuple[str, int | None] | None:
        """The contact's address on ``channel`` (the most recently active one) and its last inbound time."""
        c = contact_identities.c
        async with self.db.read() as conn:
            r = (
                await conn.execute(
                    sa.select(c.external_id, c.last_inbound_at)
                    .where(c.contact_id == contact_id, c.channel == channel)
                    .order_by(c.last_inbound_at.desc().nulls_last(), c.created_at.desc())
                    .limit(1)
                )
            ).first()
        return (r.external_id, r.last_inbound_at) if r else None

    async def message_by_external_id(self, inbox_id: str, external_id: str) -> Message | None:
        """The message already stored for this platform id in this inbox (any of its conversations)."""
        async with self.db.read() as conn:
            r = (
                await conn.execute(
                    sa.select(messages)
                    .join(conversations, conversations.c.id == messages.c.conversation_id)
                    .where(messages.c.external_id == external_id, conversations.c.inbox_id == inbox_id)
                    .limit(1)
                )
            ).first()
        return rows.message(r) if r else None

    async def channel_cursor(self, inbox_id: str) -> int | None:
        async with self.db.read() as conn:
            value = await conn.scalar(
                sa.select(channel_cursors.c.position).where(channel_cursors.c.inbox_id == inbox_id)
            )
        return int(value) if value is not None else None

    async def set_channel_cursor(self, inbox_id: str, position: int) -> None:
        """Move the inbox's cursor forward (never back)."""
        now = now_ms()
        async with self.db.write() as conn:
            res = await conn.execute(
                channel_cursors.update()
                .where(channel_cursors.c.inbox_id == inbox_id, channel_cursors.c.position < position)
                .values(position=position, updated_at=now)
            )
            if res.rowcount:
                return
            exists = await conn.scalar(
                sa.select(channel_cursors.c.position).where(channel_cursors.c.inbox_id == inbox_id)
            )
            if exists is None:
                await conn.execute(
                    channel_cursors.insert().values(inbox_id=inbox_id, position=position, updated_at=now)
                )
