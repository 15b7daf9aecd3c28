"""Queries over the one schema, the same on SQLite and PostgreSQL.

Every state change of a conversation is a compare-and-set on ``version`` (and on status where it
matters), so two processes can never both claim one conversation (guarantee 8's foundation).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from types import EllipsisType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from chatserver.errors import Conflict, Duplicate, NotFound
from chatserver.model.ids import new_id, now_ms
from chatserver.model.status import Move, Status
from chatserver.model.types import (
    Agent,
    AgentStatus,
    Contact,
    Conversation,
    Inbox,
    Message,
    MessageKind,
    Role,
)
from chatserver.store import rows
from chatserver.store.canned import CannedQueries
from chatserver.store.changes import conversation_changed
from chatserver.store.channels import ChannelQueries
from chatserver.store.db import Database
from chatserver.store.moves import guard_status_writes, versioned_move
from chatserver.store.prepared import (
    CONTACT_BY_ID,
    CONVERSATION_BY_ID,
    CONVERSATION_FOR_UPDATE,
    HEADS,
    INBOX_BY_ID,
    INBOX_BY_KEY,
    MESSAGES_WITH_ACTIONS,
    NEW_CONVERSATION,
    conversation_page,
    messages_after_query,
)
from chatserver.store.routing import NO_OFFER, RoutingQueries
from chatserver.store.schema import (
    agent_sessions,
    agents,
    api_tokens,
    contact_identities,
    contacts,
    conversations,
    inboxes,
    messages,
    read_cursors,
)
from chatserver.store.views import ViewQueries
from chatserver.store.writer import MessageWriter, PendingMessage

PAGE_MAX = 200


def _move(
    current: Conversation, target: Status, assignee_id: str | EllipsisType | None
) -> tuple[Move, dict[str, Any]]:
    """The move from ``current`` to ``target`` (Conflict if illegal) and the columns it sets."""
    source = current.status
    move = Move.to(target, {source})  # raises Conflict when the move is illegal
    now = now_ms()
    values: dict[str, Any] = {"version": current.version + 1, "updated_at": now}
    if assignee_id is not ...:
        values["assignee_id"] = assignee_id
    values["resolved_at"] = now if target is Status.RESOLVED else None
    if target is not Status.OFFERED:
        values.update(NO_OFFER)
    if target is not Status.PENDING:
        values["pending_reason"] = None
    if target is Status.QUEUED and source is not Status.QUEUED:
        values["enqueued_at"] = now
    return move, values


INBOX_CACHE_S = 30.0
"""How long a process keeps an inbox for :meth:`Store.get_inbox_cached` (its changes in this process
clear it at once)."""


class Store(RoutingQueries, ChannelQueries, ViewQueries, CannedQueries):
    def __init__(self, db: Database, *, group_commit_max: int = 256) -> None:
        self.db = db
        self._inboxes: dict[str, tuple[float, Inbox]] = {}
        guard_status_writes(db.engine)
        self.writer = MessageWriter(db, max_batch=group_commit_max)

    async def start(self) -> None:
        self.writer.start()

    async def close(self) -> None:
        await self.writer.stop()
        await self.db.dispose()

    # -- inboxes ------------------------------------------------------------------------------------------

    async def create_inbox(
        self,
        name: str,
        channel: str = "widget",
        allowed_origins: Sequence[str] = (),
        config: dict[str, str] | None = None,
    ) -> Inbox:
        inbox = Inbox(
            id=new_id("ib_"),
            name=name,
            channel=channel,
            key=secrets.token_urlsafe(18),
            allowed_origins=tuple(o.rstrip("/") for o in allowed_origins),
            created_at=now_ms(),
            config=dict(config or {}),
        )
        async with self.db.write() as conn:
            await conn.execute(
                inboxes.insert().values(
                    id=inbox.id,
                    name=inbox.name,
                    channel=inbox.channel,
                    key=inbox.key,
                    allowed_origins=list(inbox.allowed_origins),
                    created_at=inbox.created_at,
                    config=inbox.config or None,
                )
            )
        return inbox

    async def get_inbox(self, inbox_id: str) -> Inbox:
        async with self.db.read() as conn:
            r = (await conn.execute(INBOX_BY_ID, {"b_id": inbox_id})).first()
        if r is None:
            raise NotFound("inbox not found")
        return rows.inbox(r)

    async def get_inbox_cached(self, inbox_id: str) -> Inbox:
        """The inbox as read at most :data:`INBOX_CACHE_S` ago: for what never changes (its id and
        channel: starting a conversation); read :meth:`get_inbox` for the rest."""
        now = time.monotonic()
        hit = self._inboxes.get(inbox_id)
        if hit is not None and now - hit[0] < INBOX_CACHE_S:
            return hit[1]
        inbox = await self.get_inbox(inbox_id)
        if len(self._inboxes) > 1000:
            self._inboxes.clear()
        self._inboxes[inbox_id] = (now, inbox)
        return inbox

    async def inbox_by_key(self, key: str) -> Inbox | None:
        async with self.db.read() as conn:
            r = (await conn.execute(INBOX_BY_KEY, {"b_key": key})).first()
        return rows.inbox(r) if r else None

    async def list_inboxes(self) -> list[Inbox]:
        async with self.db.read() as conn:
            return [rows.inbox(r) for r in await conn.execute(sa.select(inboxes).order_by(inboxes.c.id))]

    async def update_inbox(
        self, inbox_id: str, *, name: str | None, allowed_origins: Sequence[str] | None
    ) -> Inbox:
        values: dict[str, Any] = {}
        if name is not None:
            values["name"] = name
        if allowed_origins is not None:
            values["allowed_origins"] = [o.rstrip("/") for o in allowed_origins]
        if values:
            self._inboxes.pop(inbox_id, None)
            async with self.db.write() as conn:
                res = await conn.execute(inboxes.update().where(inboxes.c.id == inbox_id).values(**values))
                if res.rowcount == 0:
                    raise NotFound("inbox not found")
        return await self.get_inbox(inbox_id)

    async def delete_inbox(self, inbox_id: str) -> None:
        self._inboxes.pop(inbox_id, None)
        async with self.db.write() as conn:
            used = await conn.scalar(
                sa.select(sa.func.count())
                .select_from(conversations)
                .where(conversations.c.inbox_id == inbox_id)
            )
            if used:
                raise Conflict("the inbox has conversations; it cannot be deleted")
            res = await conn.execute(inboxes.delete().where(inboxes.c.id == inbox_id))
            if res.rowcount == 0:
                raise NotFound("inbox not found")

    # -- agents -------------------------------------------------------------------------------------------

    async def create_agent(
        self,
        *,
        email: str,
        name: str,
        role: Role,
        password_hash: str | None,
        languages: dict[str, int] | None = None,
        skills: dict[str, int] | None = None,
        max_concurrent: int | None = None,
        language: str | None = None,
        avatar_url: str | None = None,
    ) -> Agent:
        agent = Agent(
            id=new_id("ag_"),
            email=email.strip().lower(),
            name=name,
            role=role,
            languages=languages or {},
            skills=skills or {},
            max_concurrent=max_concurrent,
            created_at=now_ms(),
            language=language,
            avatar_url=avatar_url,
        )
        try:
            async with self.db.write() as conn:
                await conn.execute(
                    agents.insert().values(
                        id=agent.id,
                        email=agent.email,
                        name=agent.name,
                        role=agent.role.value,
                        password_hash=password_hash,
                        active=True,
                        status=agent.status.value,
                        languages=agent.languages,
                        skills=agent.skills,
                        max_concurrent=max_concurrent,
                        created_at=agent.created_at,
                        language=language,
                        avatar_url=avatar_url,
                    )
                )
        except Duplicate as exc:
            raise Conflict(f"an agent with email {agent.email} exists", data={"field": "email"}) from exc
        return agent

    async def get_agent(self, agent_id: str) -> Agent:
        async with self.db.read() as conn:
            r = (await conn.execute(sa.select(agents).where(agents.c.id == agent_id))).first()
        if r is None:
            raise NotFound("agent not found")
        return rows.agent(r)

    async def agent_credentials(self, email: str) -> tuple[Agent, str | None] | None:
        async with self.db.read() as conn:
            r = (await conn.execute(sa.select(agents).where(agents.c.email == email.strip().lower()))).first()
        return (rows.agent(r), r.password_hash) if r else None

    async def list_agents(self) -> list[Agent]:
        async with self.db.read() as conn:
            return [rows.agent(r) for r in await conn.execute(sa.select(agents).order_by(agents.c.id))]

    async def face_agents(self, limit: int) -> list[Agent]:
        """Up to ``limit`` active agents for the widget's team faces: with an avatar first, then the most
        recently assigned (one small query, whatever the team's size)."""
        order = (
            sa.case((agents.c.avatar_url.is_(None), 1), else_=0),
            sa.func.coalesce(agents.c.last_assigned_at, 0).desc(),
            agents.c.name,
            agents.c.id,
        )
        query = sa.select(agents).where(agents.c.active.is_(True)).order_by(*order).limit(limit)
        async with self.db.read() as conn:
            return [rows.agent(r) for r in await conn.execute(query)]

    async def count_agents(self) -> int:
        async with self.db.read() as conn:
            return int(await conn.scalar(sa.select(sa.func.count()).select_from(agents)) or 0)

    async def update_agent(self, agent_id: str, **values: Any) -> Agent:
        allowed = {
            "name",
            "role",
            "password_hash",
            "active",
            "status",
            "languages",
            "skills",
            "max_concurrent",
            "language",
            "avatar_url",
        }
        unknown = set(values) - allowed
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        if values:
            async with self.db.write() as conn:
                res = await conn.execute(agents.update().where(agents.c.id == agent_id).values(**values))
                if res.rowcount == 0:
                    raise NotFound("agent not found")
                if values.get("active") is False:
                    await conn.execute(agent_sessions.delete().where(agent_sessions.c.agent_id == agent_id))
        return await self.get_agent(agent_id)

    async def set_agent_status(self, agent_id: str, status: AgentStatus) -> None:
        await self.update_agent(agent_id, status=status.value)

    # -- API tokens and sessions ------------------------------------------------------------------------

    async def create_api_token(self, agent_id: str, token_hash: str, name: str) -> str:
        token_id = new_id("tok_")
        async with self.db.write() as conn:
            await conn.execute(
                api_tokens.insert().values(
                    id=token_id, agent_id=agent_id, token_hash=token_hash, name=name, created_at=now_ms()
                )
            )
        return token_id

    async def agent_for_token(self, token_hash: str) -> Agent | None:
        async with self.db.read() as conn:
            r = (
                await conn.execute(
                    sa.select(agents)
                    .join(api_tokens, api_tokens.c.agent_id == agents.c.id)
                    .where(
                        api_tokens.c.token_hash == token_hash,
                        api_tokens.c.revoked_at.is_(None),
                        agents.c.active.is_(True),
                    )
                )
            ).first()
        return rows.agent(r) if r else None

    async def create_session(self, id_hash: str, agent_id: str, ttl_s: int) -> int:
        now = now_ms()
        expires = now + ttl_s * 1000
        async with self.db.write() as conn:
            await conn.execute(
                agent_sessions.insert().values(
                    id_hash=id_hash, agent_id=agent_id, created_at=now, expires_at=expires
                )
            )
        return expires

    async def agent_for_session(self, id_hash: str) -> Agent | None:
        async with self.db.read() as conn:
            r = (
                await conn.execute(
                    sa.select(agents)
                    .join(agent_sessions, agent_sessions.c.agent_id == agents.c.id)
                    .where(
                        agent_sessions.c.id_hash == id_hash,
                        agent_sessions.c.expires_at > now_ms(),
                        agents.c.active.is_(True),
                    )
                )
            ).first()
        return rows.agent(r) if r else None

    async def delete_session(self, id_hash: str) -> None:
        async with self.db.write() as conn:
            await conn.execute(agent_sessions.delete().where(agent_sessions.c.id_hash == id_hash))

    async def revoke_sessions(self, agent_id: str, *, keep: str | None = None) -> int:
        """End every session of the agent (but the one whose id hash is ``keep``); returns how many."""
        query = agent_sessions.delete().where(agent_sessions.c.agent_id == agent_id)
        if keep is not None:
            query = query.where(agent_sessions.c.id_hash != keep)
        async with self.db.write() as conn:
            res = await conn.execute(query)
            return int(res.rowcount or 0)

    async def purge_expired_sessions(self) -> int:
        async with self.db.write() as conn:
            res = await conn.execute(agent_sessions.delete().where(agent_sessions.c.expires_at <= now_ms()))
            return int(res.rowcount or 0)

    # -- contacts -----------------------------------------------------------------------------------------

    async def create_contact(
        self, *, name: str, channel: str, external_id: str | None = None, language: str | None = None
    ) -> Contact:
        contact = Contact(id=new_id("ct_"), name=name, language=language, created_at=now_ms())
        async with self.db.write() as conn:
            await conn.execute(
                contacts.insert().values(
                    id=contact.id,
                    name=name,
                    language=language,
                    verified=False,
                    attributes={},
                    created_at=contact.created_at,
                )
            )
            await conn.execute(
                contact_identities.insert().values(
                    channel=channel,
                    external_id=external_id or contact.id,
                    contact_id=contact.id,
                    created_at=contact.created_at,
                )
            )
        return contact

    async def get_contact(self, contact_id: str) -> Contact:
        async with self.db.read() as conn:
            r = (await conn.execute(CONTACT_BY_ID, {"b_id": contact_id})).first()
        if r is None:
            raise NotFound("contact not found")
        return rows.contact(r)

    async def get_contacts(self, ids: Iterable[str]) -> dict[str, Contact]:
        wanted = set(ids)
        if not wanted:
            return {}
        async with self.db.read() as conn:
            found = await conn.execute(sa.select(contacts).where(contacts.c.id.in_(wanted)))
            return {r.id: rows.contact(r) for r in found}

    async def list_contacts(
        self, *, cursor: str | None, limit: int, query: str | None = None
    ) -> list[Contact]:
        stmt = sa.select(contacts).order_by(contacts.c.id.desc()).limit(min(limit, PAGE_MAX))
        if cursor:
            stmt = stmt.where(contacts.c.id < cursor)
        if query:
            like = f"%{query.lower()}%"
            stmt = stmt.where(
                sa.or_(sa.func.lower(contacts.c.name).like(like), sa.func.lower(contacts.c.email).like(like))
            )
        async with self.db.read() as conn:
            return [rows.contact(r) for r in await conn.execute(stmt)]

    async def update_contact(self, contact_id: str, **values: Any) -> Contact:
        allowed = {"name", "email", "phone", "language", "attributes"}
        if set(values) - allowed:
            raise ValueError(f"cannot update {sorted(set(values) - allowed)}")
        if values:
            async with self.db.write() as conn:
                res = await conn.execute(
                    contacts.update().where(contacts.c.id == contact_id).values(**values)
                )
                if res.rowcount == 0:
                    raise NotFound("contact not found")
        return await self.get_contact(contact_id)

    # -- conversations ------------------------------------------------------------------------------------

    async def create_conversation(
        self,
        *,
        inbox: Inbox,
        contact_id: str,
        status: Status = Status.QUEUED,
        language: str | None = None,
        skills: dict[str, int] | None = None,
        fields: dict[str, str] | None = None,
        priority: int = 0,
        team: str | None = None,
        routing: dict[str, Any] | None = None,
    ) -> Conversation:
        now = now_ms()
        conv = Conversation(
            id=new_id("cv_"),
            inbox_id=inbox.id,
            channel=inbox.channel,
            contact_id=contact_id,
            status=status,
            priority=priority,
            skills=skills or {},
            language=language,
            fields=fields or {},
            created_at=now,
            updated_at=now,
            team=team,
            routing=routing or {},
            enqueued_at=now if status is Status.QUEUED else None,
        )
        async with self.db.write() as conn:
            await conn.execute(
                NEW_CONVERSATION,
                {
                    "id": conv.id,
                    "inbox_id": conv.inbox_id,
                    "channel": conv.channel,
                    "contact_id": contact_id,
                    "status": conv.status.value,
                    "priority": priority,
                    "skills": conv.skills,
                    "language": language,
                    "team": team,
                    "assignee_id": None,
                    "fields": conv.fields,
                    "last_seq": 0,
                    "version": 1,
                    "created_at": now,
                    "updated_at": now,
                    "enqueued_at": conv.enqueued_at,
                    "routing": routing or None,
                },
            )
            await conversation_changed(conn, self.db, [(conv.id, None)])
        return conv

    async def get_conversation(self, conversation_id: str) -> Conversation:
        async with self.db.read() as conn:
            r = (await conn.execute(CONVERSATION_BY_ID, {"b_id": conversation_id})).first()
        if r is None:
            raise NotFound("conversation not found")
        return rows.conversation(r)

    async def list_conversations(
        self,
        *,
        statuses: Sequence[str] | None = None,
        cursor: str | None = None,
        limit: int = 50,
        assignee_id: str | None = None,
        contact_id: str | None = None,
        newest_first: bool = True,
    ) -> list[Conversation]:
        stmt = conversation_page(
            bool(statuses), bool(cursor), bool(assignee_id), bool(contact_id), newest_first
        )
        params = {
            "b_limit": min(max(limit, 1), PAGE_MAX),
            "b_statuses": list(statuses or ()),
            "b_cursor": cursor,
            "b_assignee": assignee_id,
            "b_contact": contact_id,
        }
        async with self.db.read() as conn:
            return [rows.conversation(r) for r in await conn.execute(stmt, params)]

    async def offers_for(self, agent_id: str) -> list[Conversation]:
        async with self.db.read() as conn:
            found = await conn.execute(
                sa.select(conversations).where(
                    conversations.c.offer_agent_id == agent_id, conversations.c.status == Status.OFFERED.value
                )
            )
            return [rows.conversation(r) for r in found]

    async def conversation_heads(self, ids: Iterable[str]) -> dict[str, tuple[int, int]]:
        """(last_seq, version) of each conversation, for gap detection and reconciliation."""
        wanted = list(set(ids))
        out: dict[str, tuple[int, int]] = {}
        async with self.db.read() as conn:
            for start in range(0, len(wanted), 500):
                found = await conn.execute(HEADS, {"b_ids": wanted[start : start + 500]})
                out.update({r.id: (r.last_seq, r.version) for r in found})
        return out

    async def change_conversation(
        self,
        conversation_id: str,
        target: Status,
        *,
        expect_status: Iterable[Status] | None = None,
        assignee_id: str | EllipsisType | None = ...,
        expect_assignee: str | EllipsisType | None = ...,
        current: Conversation | None = None,
    ) -> Conversation:
        """Move a conversation to ``target`` with a compare-and-set on its version (and, if given, on its
        current status and assignee). Raises Conflict if it changed underneath or the move is illegal.
        ``current`` is the conversation as the caller just read it (not read again: the compare-and-set
        still refuses the move if it changed since)."""
        if current is None or current.id != conversation_id:
            current = await self.get_conversation(conversation_id)
        source = current.status
        if expect_status is not None and source not in set(expect_status):
            raise Conflict(f"the conversation is {source.value}")
        if expect_assignee is not ... and current.assignee_id != expect_assignee:
            raise Conflict("the conversation's assignee changed")
        done = await self.move_conversation(current, target, assignee_id=assignee_id)
        if done is None:
            raise Conflict("the conversation changed at the same time; try again")
        return done

    async def move_conversation(
        self, current: Conversation, target: Status, *, assignee_id: str | EllipsisType | None = ...
    ) -> Conversation | None:
        """Move ``current`` (as read) to ``target``: a compare-and-set on its version and status. None if
        it changed since it was read; Conflict if the move is illegal."""
        move, values = _move(current, target, assignee_id)
        async with self.db.write() as conn:
            r = (await conn.execute(*versioned_move(current.id, current.version, move, values))).first()
            if r is None:
                return None
            await conversation_changed(conn, self.db, [(current.id, current.status)])
        return rows.conversation(r)

    async def move_conversation_if(
        self,
        conversation_id: str,
        target: Status,
        wanted: Callable[[Conversation], bool],
        *,
        assignee_id: str | EllipsisType | None = ...,
    ) -> tuple[Conversation, Conversation | None]:
        """Read the conversation and move it to ``target`` in one transaction, its row locked in between
        (FOR UPDATE on PostgreSQL; SQLite has one writer), so a concurrent change (the router's) cannot
        slip between the decision and the write. ``wanted(current)`` decides: True moves it, False leaves
        it as it is, an exception refuses. Returns (as read, as moved or None if not moved)."""
        async with self.db.write() as conn:
            r = (await conn.execute(CONVERSATION_FOR_UPDATE, {"b_id": conversation_id})).first()
            if r is None:
                raise NotFound("conversation not found")
            current = rows.conversation(r)
            if not wanted(current):
                return current, None
            move, values = _move(current, target, assignee_id)
            done = (await conn.execute(*versioned_move(current.id, current.version, move, values))).first()
            if done is not None:
                await conversation_changed(conn, self.db, [(current.id, current.status)])
        return current, rows.conversation(done) if done is not None else None

    async def set_conversation_language(self, conversation_id: str, language: str | None) -> Conversation:
        """Set the conversation's (the contact's) language; a compare-and-set on version."""
        current = await self.get_conversation(conversation_id)
        if current.language == language:
            return current
        async with self.db.write() as conn:
            r = (
                await conn.execute(
                    conversations.update()
                    .where(conversations.c.id == conversation_id, conversations.c.version == current.version)
                    .values(language=language, version=current.version + 1, updated_at=now_ms())
                    .returning(conversations)
                )
            ).first()
            if r is None:
                raise Conflict("the conversation changed at the same time; try again")
        return rows.conversation(r)

    # -- messages -----------------------------------------------------------------------------------------

    async def get_message(self, message_id: str) -> Message:
        async with self.db.read() as conn:
            r = (await conn.execute(MESSAGES_WITH_ACTIONS.where(messages.c.id == message_id))).first()
        if r is None:
            raise NotFound("message not found")
        return rows.message(r)

    async def record_translation(
        self, message_id: str, lang: str, *, text: str | None, reason: str | None
    ) -> Message:
        """Store a translation (clearing the language's untranslated reason) or the reason there is none."""
        async with self.db.write() as conn:
            r = (
                await conn.execute(
                    sa.select(messages.c.translations, messages.c.untranslated)
                    .where(messages.c.id == message_id)
                    .with_for_update()
                )
            ).first()
            if r is None:
                raise NotFound("message not found")
            translations = dict(r.translations or {})
            untranslated = dict(r.untranslated or {})
            if text is not None:
                translations[lang] = text
                untranslated.pop(lang, None)
            elif lang not in translations:
                untranslated[lang] = reason or "unknown"
            await conn.execute(
                messages.update()
                .where(messages.c.id == message_id)
                .values(translations=translations, untranslated=untranslated or None)
            )
        return await self.get_message(message_id)

    async def untranslated_since(self, since_ms: int, limit: int = 500) -> list[Message]:
        """Recent messages still missing a translation (to retry after a restart)."""
        async with self.db.read() as conn:
            found = await conn.execute(
                sa.select(messages)
                .where(messages.c.created_at >= since_ms, messages.c.untranslated.is_not(None))
                .order_by(messages.c.created_at)
                .limit(limit)
            )
            return [rows.message(r) for r in found if r.untranslated]

    async def append_message(self, item: PendingMessage) -> tuple[Message, bool]:
        return await self.writer.append(item)

    async def messages_after(
        self,
        conversation_id: str,
        after_seq: int,
        *,
        up_to: int | None = None,
        limit: int = 500,
        include_private: bool = True,
    ) -> list[Message]:
        stmt = messages_after_query(up_to is not None, include_private)
        params = {"b_conv": conversation_id, "b_after": after_seq, "b_limit": limit, "b_up_to": up_to}
        async with self.db.read() as conn:
            return [rows.message(r) for r in await conn.execute(stmt, params)]

    async def messages_before(
        self, conversation_id: str, before_seq: int, *, limit: int, include_private: bool
    ) -> list[Message]:
        stmt = (
            MESSAGES_WITH_ACTIONS.where(
                messages.c.conversation_id == conversation_id, messages.c.seq < before_seq
            )
            .order_by(messages.c.seq.desc())
            .limit(limit)
        )
        if not include_private:
            stmt = stmt.where(messages.c.kind != MessageKind.NOTE.value)
        async with self.db.read() as conn:
            found = [rows.message(r) for r in await conn.execute(stmt)]
        return found[::-1]

    async def set_read(self, conversation_id: str, reader_kind: str, reader_id: str, seq: int) -> int:
        """Move a reader's cursor forward (never back); return the stored cursor."""
        now = now_ms()
        key = (
            read_cursors.c.conversation_id == conversation_id,
            read_cursors.c.reader_kind == reader_kind,
            read_cursors.c.reader_id == reader_id,
        )
        async with self.db.write() as conn:
            current = await conn.scalar(sa.select(read_cursors.c.seq).where(*key).with_for_update())
            if current is None:
                try:
                    async with conn.begin_nested():
                        await conn.execute(
                            read_cursors.insert().values(
                                conversation_id=conversation_id,
                                reader_kind=reader_kind,
                                reader_id=reader_id,
                                seq=seq,
                                updated_at=now,
                            )
                        )
                    return seq
                except IntegrityError:
                    current = await conn.scalar(sa.select(read_cursors.c.seq).where(*key))
                    if current is None:
                        raise
            if seq > current:
                await conn.execute(read_cursors.update().where(*key).values(seq=seq, updated_at=now))
                return seq
            return int(current)

    async def read_cursors_for(self, conversation_id: str) -> list[tuple[str, str, int]]:
        async with self.db.read() as conn:
            found = await conn.execute(
                sa.select(read_cursors.c.reader_kind, read_cursors.c.reader_id, read_cursors.c.seq).where(
                    read_cursors.c.conversation_id == conversation_id
                )
            )
            return [(r.reader_kind, r.reader_id, r.seq) for r in found]
