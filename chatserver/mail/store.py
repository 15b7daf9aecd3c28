"""Queries of the email channel (inbox settings, threads, Message-IDs, IMAP state), on SQLite and
PostgreSQL, next to the core Store."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from chatserver.errors import Conflict, Duplicate
from chatserver.mail.config import EmailConfig, email_config
from chatserver.model.ids import new_id, now_ms
from chatserver.model.types import Contact, Inbox
from chatserver.store import rows
from chatserver.store.db import Database
from chatserver.store.schema import (
    contact_identities,
    contacts,
    email_messages,
    email_threads,
    imap_state,
    inboxes,
    outbox,
)

CHANNEL = "email"


@dataclass(frozen=True, slots=True)
class ThreadRow:
    conversation_id: str
    inbox_id: str
    token: str
    subject: str
    contact_address: str


@dataclass(frozen=True, slots=True)
class EmailRecord:
    id: str
    inbox_id: str
    rfc_message_id: str
    direction: str
    conversation_id: str | None
    message_id: str | None
    sender: str
    subject: str
    thread_kind: str | None
    loop: dict[str, Any]
    attachments: list[dict[str, Any]]
    problems: list[str]
    raw_path: str | None
    source: str
    created_at: int


def _record(r: Any) -> EmailRecord:
    return EmailRecord(
        r.id, r.inbox_id, r.rfc_message_id, r.direction, r.conversation_id, r.message_id, r.sender,
        r.subject, r.thread_kind, dict(r.loop or {}), list(r.attachments or []), list(r.problems or []),
        r.raw_path, r.source, r.created_at,
    )  # fmt: skip


class MailStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- inboxes --------------------------------------------------------------------------------------------

    async def create_email_inbox(self, name: str, config: EmailConfig) -> Inbox:
        for _, other in await self.email_inboxes():
            if other.address == config.address:
                raise Conflict(f"an inbox for {config.address} exists", data={"field": "address"})
        inbox = Inbox(new_id("ib_"), name, CHANNEL, secrets.token_urlsafe(18), (), now_ms(), config.to_json())
        async with self.db.write() as conn:
            await conn.execute(
                inboxes.insert().values(
                    id=inbox.id,
                    name=name,
                    channel=CHANNEL,
                    key=inbox.key,
                    allowed_origins=[],
                    created_at=inbox.created_at,
                    config=inbox.config,
                )
            )
        return inbox

    async def email_inboxes(self) -> list[tuple[Inbox, EmailConfig]]:
        async with self.db.read() as conn:
            found = await conn.execute(
                sa.select(inboxes).where(inboxes.c.channel == CHANNEL).order_by(inboxes.c.id)
            )
            out = []
            for r in found:
                cfg = email_config(r.config)
                if cfg is not None:
                    out.append((rows.inbox(r), cfg))
            return out

    # -- contacts -------------------------------------------------------------------------------------------

    async def contact_for_address(self, address: str, name: str) -> Contact:
        """The contact with this email identity, else the contact with this email (a widget visitor
        who gave it), else a new one. Concurrent first mails from one address make one contact."""
        for _ in range(3):
            async with self.db.read() as conn:
                contact_id = await conn.scalar(
                    sa.select(contact_identities.c.contact_id).where(
                        contact_identities.c.channel == CHANNEL, contact_identities.c.external_id == address
                    )
                )
                if contact_id is not None:
                    r = (await conn.execute(sa.select(contacts).where(contacts.c.id == contact_id))).first()
                    if r is not None:
                        return rows.contact(r)
                else:
                    contact_id = await conn.scalar(
                        sa.select(contacts.c.id)
                        .where(sa.func.lower(contacts.c.email) == address)
                        .order_by(contacts.c.verified.desc(), contacts.c.id)
                        .limit(1)
                    )
            now = now_ms()
            try:
                async with self.db.write() as conn:
                    if contact_id is None:
                        contact_id = new_id("ct_")
                        await conn.execute(
                            contacts.insert().values(
                                id=contact_id,
                                name=name or address,
                                email=address,
                                verified=False,
                                attributes={},
                                created_at=now,
                            )
                        )
                    exists = await conn.scalar(
                        sa.select(sa.func.count())
                        .select_from(contact_identities)
                        .where(
                            contact_identities.c.channel == CHANNEL,
                            contact_identities.c.external_id == address,
                        )
                    )
                    if not exists:
                        await conn.execute(
                            contact_identities.insert().values(
                                channel=CHANNEL, external_id=address, contact_id=contact_id, created_at=now
                            )
                        )
            except (IntegrityError, Duplicate):  # Duplicate: mapped at the end of the transaction
                continue  # another import made it at the same time: read theirs
            async with self.db.read() as conn:
                r = (await conn.execute(sa.select(contacts).where(contacts.c.id == contact_id))).first()
            assert r is not None
            return rows.contact(r)
        raise RuntimeError("could not find or create the contact")

    # -- threads --------------------------------------------------------------------------------------------

    async def create_thread(
        self, conversation_id: str, inbox_id: str, token: str, subject: str, contact_address: str
    ) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                email_threads.insert().values(
                    conversation_id=conversation_id,
                    inbox_id=inbox_id,
                    token=token,
                    subject=subject[:500],
                    contact_address=contact_address,
                    created_at=now_ms(),
                )
            )

    async def thread(self, conversation_id: str) -> ThreadRow | None:
        async with self.db.read() as conn:
            r = (
                await conn.execute(
                    sa.select(email_threads).where(email_threads.c.conversation_id == conversation_id)
                )
            ).first()
        if r is None:
            return None
        return ThreadRow(r.conversation_id, r.inbox_id, r.token, r.subject, r.contact_address)

    async def thread_chain(self, conversation_id: str, limit: int = 500) -> list[str]:
        """The Message-IDs of the thread's mails, oldest first: every mail received, and every mail of
        ours that was queued (one recorded for a reply that was never committed has no outbox row)."""
        async with self.db.read() as conn:
            found = list(
                await conn.execute(
                    sa.select(email_messages.c.rfc_message_id, email_messages.c.direction)
                    .where(email_messages.c.conversation_id == conversation_id)
                    .order_by(email_messages.c.created_at.desc(), email_messages.c.id.desc())
                    .limit(limit)  # the newest; the thread's first mail is fetched apart below
                )
            )[::-1]
            first = (
                await conn.execute(
                    sa.select(email_messages.c.rfc_message_id, email_messages.c.direction)
                    .where(email_messages.c.conversation_id == conversation_id)
                    .order_by(email_messages.c.created_at, email_messages.c.id)
                    .limit(1)
                )
            ).first()
            if first is not None and found and first.rfc_message_id != found[0].rfc_message_id:
                found.insert(0, first)
            queued = set(
                await conn.scalars(
                    sa.select(outbox.c.idempotency_key).where(
                        outbox.c.conversation_id == conversation_id, outbox.c.kind == "email"
                    )
                )
            )
        return [r.rfc_message_id for r in found if r.direction == "in" or f"<{r.rfc_message_id}>" in queued]

    async def record_outgoing(
        self,
        *,
        inbox_id: str,
        conversation_id: str,
        rfc_message_id: str,
        sender: str,
        subject: str,
        automatic: bool,
    ) -> None:
        """A Message-ID of ours, before the mail is queued: replies to it thread by header, and mail
        that comes back with it is known as ours. ``thread_kind`` is ``auto`` for automatic mail (the
        per-sender rate limit counts those) and ``reply`` for an agent's."""
        async with self.db.write() as conn:
            await conn.execute(
                email_messages.insert().values(
                    id=new_id("em_"),
                    inbox_id=inbox_id,
                    rfc_message_id=rfc_message_id[:500],
                    direction="out",
                    conversation_id=conversation_id,
                    message_id=None,
                    sender=sender[:320],
                    subject=subject[:500],
                    thread_kind="auto" if automatic else "reply",
                    loop={},
                    attachments=[],
                    problems=[],
                    raw_path=None,
                    source="out",
                    created_at=now_ms(),
                )
            )

    async def automatic_sent_at(self, contact_address: str, since_ms: int) -> list[int]:
        """When automatic mail of ours went to this address (in any of its threads) since ``since_ms``."""
        async with self.db.read() as conn:
            found = await conn.scalars(
                sa.select(email_messages.c.created_at)
                .select_from(
                    email_messages.join(
                        email_threads, email_threads.c.conversation_id == email_messages.c.conversation_id
                    )
                )
                .where(
                    email_threads.c.contact_address == contact_address,
                    email_messages.c.direction == "out",
                    email_messages.c.thread_kind == "auto",
                    email_messages.c.created_at >= since_ms,
                )
                .limit(1000)
            )
            return [int(t) for t in found]

    async def thread_token(self, conversation_id: str) -> str | None:
        async with self.db.read() as conn:
            return await conn.scalar(
                sa.select(email_threads.c.token).where(email_threads.c.conversation_id == conversation_id)
            )

    async def conversations_for_tokens(self, inbox_id: str, tokens: Sequence[str]) -> dict[str, str]:
        if not tokens:
            return {}
        async with self.db.read() as conn:
            found = await conn.execute(
                sa.select(email_threads.c.token, email_threads.c.conversation_id).where(
                    email_threads.c.inbox_id == inbox_id, email_threads.c.token.in_(list(tokens))
                )
            )
            return {r.token: r.conversation_id for r in found}

    async def conversations_for_message_ids(self, inbox_id: str, ids: Sequence[str]) -> dict[str, str]:
        if not ids:
            return {}
        async with self.db.read() as conn:
            found = await conn.execute(
                sa.select(email_messages.c.rfc_message_id, email_messages.c.conversation_id).where(
                    email_messages.c.inbox_id == inbox_id,
                    email_messages.c.rfc_message_id.in_([i[:500] for i in ids[:100]]),
                    email_messages.c.conversation_id.is_not(None),
                )
            )
            return {r.rfc_message_id: r.conversation_id for r in found}

    # -- email messages -------------------------------------------------------------------------------------

    async def find_email(self, inbox_id: str, rfc_message_id: str) -> EmailRecord | None:
        async with self.db.read() as conn:
            r = (
                await conn.execute(
                    sa.select(email_messages).where(
                        email_messages.c.inbox_id == inbox_id,
                        email_messages.c.rfc_message_id == rfc_message_id,
                    )
                )
            ).first()
        return _record(r) if r else None

    async def is_own_message_id(self, rfc_message_id: str) -> bool:
        async with self.db.read() as conn:
            return bool(
                await conn.scalar(
                    sa.select(sa.func.count())
                    .select_from(email_messages)
                    .where(
                        email_messages.c.rfc_message_id == rfc_message_id, email_messages.c.direction == "out"
                    )
                )
            )

    async def begin_email(self, **values: Any) -> EmailRecord:
        """Record an import before its message is appended (so a retry after a crash finds it);
        returns the existing record when another import of the same mail got there first."""
        values = {
            "id": new_id("em_"),
            "direction": "in",
            "created_at": now_ms(),
            "message_id": None,
            **values,
        }
        try:
            async with self.db.write() as conn:
                await conn.execute(email_messages.insert().values(**values))
        except (IntegrityError, Duplicate):  # Duplicate: mapped at the end of the transaction
            found = await self.find_email(values["inbox_id"], values["rfc_message_id"])
            if found is None:
                raise
            return found
        found = await self.find_email(values["inbox_id"], values["rfc_message_id"])
        assert found is not None
        return found

    async def complete_email(self, email_id: str, message_id: str) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                email_messages.update().where(email_messages.c.id == email_id).values(message_id=message_id)
            )

    async def email_for_message(self, message_id: str) -> EmailRecord | None:
        async with self.db.read() as conn:
            r = (
                await conn.execute(sa.select(email_messages).where(email_messages.c.message_id == message_id))
            ).first()
        return _record(r) if r else None

    async def count_emails(self, inbox_id: str) -> int:
        """Mails received (imported) into the inbox."""
        async with self.db.read() as conn:
            return int(
                await conn.scalar(
                    sa.select(sa.func.count())
                    .select_from(email_messages)
                    .where(email_messages.c.inbox_id == inbox_id, email_messages.c.direction == "in")
                )
                or 0
            )

    # -- IMAP state -----------------------------------------------------------------------------------------

    async def imap_position(self, inbox_id: str) -> tuple[str, int, int] | None:
        """(mailbox, UIDVALIDITY, last imported UID)."""
        async with self.db.read() as conn:
            r = (await conn.execute(sa.select(imap_state).where(imap_state.c.inbox_id == inbox_id))).first()
        return (r.mailbox, int(r.uidvalidity), int(r.last_uid)) if r else None

    async def set_imap_position(self, inbox_id: str, mailbox: str, uidvalidity: int, last_uid: int) -> None:
        now = now_ms()
        async with self.db.write() as conn:
            res = await conn.execute(
                imap_state.update()
                .where(imap_state.c.inbox_id == inbox_id)
                .values(mailbox=mailbox, uidvalidity=uidvalidity, last_uid=last_uid, updated_at=now)
            )
            if res.rowcount == 0:
                await conn.execute(
                    imap_state.insert().values(
                        inbox_id=inbox_id,
                        mailbox=mailbox,
                        uidvalidity=uidvalidity,
                        last_uid=last_uid,
                        updated_at=now,
                    )
                )
