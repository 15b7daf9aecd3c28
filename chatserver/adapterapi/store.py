"""Adapter queries: tokens (stored as SHA-256, like API tokens), inboxes served, inbox bots, buttons."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row

from chatserver.adapterapi.model import Action, Adapter, AdapterKind
from chatserver.errors import Conflict, Invalid, NotFound
from chatserver.model.ids import new_id, now_ms
from chatserver.model.status import Move, Status
from chatserver.model.types import Conversation, Message
from chatserver.store import rows
from chatserver.store.changes import conversation_changed
from chatserver.store.db import Database
from chatserver.store.moves import status_update
from chatserver.store.schema import (
    adapter_inboxes,
    adapters,
    contact_identities,
    conversations,
    inbox_bots,
    inboxes,
    message_actions,
    messages,
)

HANDOFF = Move.to(Status.QUEUED, {Status.BOT})


_BOT_OF_INBOX = sa.select(inbox_bots.c.adapter_id).where(inbox_bots.c.inbox_id == sa.bindparam("b_inbox"))
"""Asked on every conversation start: built once."""


class AdapterQueries:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        *,
        name: str,
        kind: AdapterKind,
        token_hash: str,
        inbox_ids: Sequence[str] = (),
        url: str | None = None,
        secret: str | None = None,
    ) -> Adapter:
        adapter_id = new_id("ad_")
        wanted = sorted(set(inbox_ids))
        async with self.db.write() as conn:
            if wanted:
                known = set(await conn.scalars(sa.select(inboxes.c.id).where(inboxes.c.id.in_(wanted))))
                missing = [i for i in wanted if i not in known]
                if missing:
                    raise Invalid(f"no such inbox: {missing[0]}", data={"field": "inboxes"})
            await conn.execute(
                adapters.insert().values(
                    id=adapter_id,
                    name=name,
                    kind=kind.value,
                    token_hash=token_hash,
                    url=url,
                    secret=secret,
                    created_at=now_ms(),
                )
            )
            if wanted:
                await conn.execute(
                    adapter_inboxes.insert(), [{"adapter_id": adapter_id, "inbox_id": i} for i in wanted]
                )
        return await self.get(adapter_id)

    async def _inboxes(self, ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
        out: dict[str, list[str]] = {i: [] for i in ids}
        if not ids:
            return {}
        async with self.db.read() as conn:
            found = await conn.execute(
                sa.select(adapter_inboxes)
                .where(adapter_inboxes.c.adapter_id.in_(list(ids)))
                .order_by(adapter_inboxes.c.inbox_id)
            )
            for r in found:
                out[r.adapter_id].append(r.inbox_id)
        return {k: tuple(v) for k, v in out.items()}

    @staticmethod
    def _adapter(r: Row[Any], inbox_ids: tuple[str, ...]) -> Adapter:
        return Adapter(
            id=r.id,
            name=r.name,
            kind=AdapterKind(r.kind),
            inbox_ids=inbox_ids,
            url=r.url,
            secret=r.secret,
            created_at=r.created_at,
            revoked_at=r.revoked_at,
        )

    async def get(self, adapter_id: str) -> Adapter:
        async with self.db.read() as conn:
            r = (await conn.execute(sa.select(adapters).where(adapters.c.id == adapter_id))).first()
        if r is None:
            raise NotFound("adapter not found")
        return self._adapter(r, (await self._inboxes([r.id]))[r.id])

    async def all(self) -> list[Adapter]:
        async with self.db.read() as conn:
            found = list(await conn.execute(sa.select(adapters).order_by(adapters.c.id)))
        served = await self._inboxes([r.id for r in found])
        return [self._adapter(r, served[r.id]) for r in found]

    async def for_token(self, token_hash: str) -> Adapter | None:
        """The live (not revoked) adapter of a token."""
        async with self.db.read() as conn:
            r = (
                await conn.execute(
                    sa.select(adapters).where(
                        adapters.c.token_hash == token_hash, adapters.c.revoked_at.is_(None)
                    )
                )
            ).first()
        if r is None:
            return None
        return self._adapter(r, (await self._inboxes([r.id]))[r.id])

    async def revoke(self, adapter_id: str) -> Adapter:
        async with self.db.write() as conn:
            res = await conn.execute(
                adapters.update()
                .where(adapters.c.id == adapter_id, adapters.c.revoked_at.is_(None))
                .values(revoked_at=now_ms())
            )
            if res.rowcount == 1:  # a revoked bot serves no inbox any more
                await conn.execute(inbox_bots.delete().where(inbox_bots.c.adapter_id == adapter_id))
        return await self.get(adapter_id)

    # -- inbox bots ----------------------------------------------------------------------------------------

    async def set_inbox_bot(self, inbox_id: str, adapter_id: str | None) -> None:
        """Give an inbox a bot (which then serves it), or none."""
        if adapter_id is not None:
            adapter = await self.get(adapter_id)
            if adapter.kind is not AdapterKind.BOT or adapter.revoked_at is not None:
                raise Invalid("bot must be the id of a live bot adapter", data={"field": "bot"})
        async with self.db.write() as conn:
            if await conn.scalar(sa.select(inboxes.c.id).where(inboxes.c.id == inbox_id)) is None:
                raise NotFound("inbox not found")
            await conn.execute(inbox_bots.delete().where(inbox_bots.c.inbox_id == inbox_id))
            if adapter_id is not None:
                await conn.execute(inbox_bots.insert().values(inbox_id=inbox_id, adapter_id=adapter_id))
                served = await conn.scalar(
                    sa.select(adapter_inboxes.c.inbox_id).where(
                        adapter_inboxes.c.adapter_id == adapter_id, adapter_inboxes.c.inbox_id == inbox_id
                    )
                )
                if served is None:
                    await conn.execute(
                        adapter_inboxes.insert().values(adapter_id=adapter_id, inbox_id=inbox_id)
                    )

    async def bot_for_inbox(self, inbox_id: str) -> str | None:
        async with self.db.read() as conn:
            found: str | None = await conn.scalar(_BOT_OF_INBOX, {"b_inbox": inbox_id})
            return found

    async def bot_inboxes(self, adapter_id: str) -> list[str]:
        async with self.db.read() as conn:
            return list(
                await conn.scalars(
                    sa.select(inbox_bots.c.inbox_id).where(inbox_bots.c.adapter_id == adapter_id)
                )
            )

    # -- buttons -------------------------------------------------------------------------------------------

    async def save_actions(self, message_id: str, conversation_id: str, actions: Sequence[Action]) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                message_actions.insert().values(
                    message_id=message_id,
                    conversation_id=conversation_id,
                    actions=[a.to_wire() for a in actions],
                )
            )

    async def actions_for(self, message_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        if not message_ids:
            return {}
        async with self.db.read() as conn:
            found = await conn.execute(
                sa.select(message_actions).where(message_actions.c.message_id.in_(list(message_ids)))
            )
            return {r.message_id: list(r.actions) for r in found}

    # -- conversations -------------------------------------------------------------------------------------

    async def conversations_in(
        self, inbox_ids: Sequence[str], statuses: Sequence[Status], *, limit: int = 500
    ) -> list[Conversation]:
        if not inbox_ids:
            return []
        stmt = (
            sa.select(conversations)
            .where(
                conversations.c.inbox_id.in_(list(inbox_ids)),
                conversations.c.status.in_([s.value for s in statuses]),
            )
            .order_by(conversations.c.id)
            .limit(limit)
        )
        async with self.db.read() as conn:
            return [rows.conversation(r) for r in await conn.execute(stmt)]

    async def hand_off(
        self,
        conv: Conversation,
        routing: dict[str, Any],
        *,
        skills: dict[str, int] | None,
        priority: int | None,
        team: str | None,
    ) -> Conversation:
        """``bot`` -> ``queued`` with the bot's requirements: a compare-and-set on status and version."""
        now = now_ms()
        values: dict[str, Any] = {
            "routing": routing,
            "enqueued_at": now,
            "version": conv.version + 1,
            "updated_at": now,
        }
        if skills is not None:
            values["skills"] = skills
        if priority is not None:
            values["priority"] = priority
        if team is not None:
            values["team"] = team
        async with self.db.write() as conn:
            res = await conn.execute(
                status_update(conv.id, HANDOFF, conversations.c.version == conv.version, **values)
            )
            if res.rowcount != 1:
                raise Conflict("the conversation changed at the same time; try again")
            await conversation_changed(conn, self.db, [(conv.id, Status.BOT)])
        async with self.db.read() as conn:
            r = (await conn.execute(sa.select(conversations).where(conversations.c.id == conv.id))).one()
        return rows.conversation(r)

    async def set_routing_fields(
        self, conv: Conversation, *, skills: dict[str, int] | None, priority: int | None
    ) -> Conversation:
        """A bot sets a conversation's skills and priority (used when it hands off, and by routing)."""
        values: dict[str, Any] = {"version": conv.version + 1, "updated_at": now_ms()}
        if skills is not None:
            values["skills"] = skills
        if priority is not None:
            values["priority"] = priority
        async with self.db.write() as conn:
            res = await conn.execute(
                conversations.update()
                .where(conversations.c.id == conv.id, conversations.c.version == conv.version)
                .values(**values)
            )
            if res.rowcount != 1:
                raise Conflict("the conversation changed at the same time; try again")
        async with self.db.read() as conn:
            r = (await conn.execute(sa.select(conversations).where(conversations.c.id == conv.id))).one()
        return rows.conversation(r)

    async def identity(self, contact_id: str, channel: str) -> str | None:
        async with self.db.read() as conn:
            found: str | None = await conn.scalar(
                sa.select(contact_identities.c.external_id)
                .where(contact_identities.c.contact_id == contact_id, contact_identities.c.channel == channel)
                .limit(1)
            )
            return found

    async def message_in(self, message_id: str) -> tuple[Message, Conversation]:
        """A message and its conversation (the outbox sender of channel replies)."""
        async with self.db.read() as conn:
            m = (await conn.execute(sa.select(messages).where(messages.c.id == message_id))).first()
            if m is None:
                raise NotFound("message not found")
            c = (
                await conn.execute(sa.select(conversations).where(conversations.c.id == m.conversation_id))
            ).one()
        return rows.message(m), rows.conversation(c)
