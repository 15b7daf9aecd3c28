"""Routing persistence: teams, rules, and the compare-and-set operations the router applies.

Every routing write checks the fencing token first (``routing_fence``): a leader whose lease was taken
over holds a smaller token and its writes change nothing. An offer also locks the agent's row and
counts what the agent holds in the same transaction, so capacity is never exceeded even if two leaders
overlap (guarantee 8).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from chatserver.errors import Conflict, Duplicate, Forbidden, Invalid, NotFound
from chatserver.model.ids import new_id, now_ms
from chatserver.model.status import OPEN_STATUSES, WAITING_STATUSES, Move, Status
from chatserver.model.types import Agent, AuthorKind, Conversation
from chatserver.routing.config import DEFAULT_TICKET_ON, Rule, Team
from chatserver.store import rows
from chatserver.store.changes import conversation_changed
from chatserver.store.db import Database
from chatserver.store.moves import status_update, versioned_move
from chatserver.store.schema import (
    agents,
    conversations,
    messages,
    routing_events,
    routing_fence,
    routing_rules,
    team_members,
    teams,
)

HOLDING = (Status.ASSIGNED.value, Status.OFFERED.value)
NO_OFFER: dict[str, Any] = {"offer_id": None, "offer_agent_id": None, "offer_expires_at": None}
"""The column values of a conversation with no offer out."""

# The status changes routing makes (each legal by construction, see model/status.py).
OFFER = Move.to(Status.OFFERED, {Status.QUEUED})
EXPIRE = Move.to(Status.QUEUED, {Status.OFFERED})
DECLINE = EXPIRE
ACCEPT = Move.to(Status.ASSIGNED, {Status.OFFERED})
ESCALATE = Move.to(Status.PENDING, {Status.QUEUED, Status.OFFERED})
REQUEUE = Move.to(Status.QUEUED, {Status.ASSIGNED})
UNPEND = Move.to(Status.QUEUED, {Status.PENDING})
TRANSFER = Move.to(Status.QUEUED, OPEN_STATUSES)

# The statements every routing cycle, offer and answer runs, built once (building a statement costs more
# than running it; these take their values as bound parameters).
_HOLDER = sa.func.coalesce(conversations.c.offer_agent_id, conversations.c.assignee_id)
_MEMBERS = sa.select(team_members.c.team_id, team_members.c.agent_id)
_TEAMS = sa.select(teams).order_by(teams.c.name)
_HELD = (
    sa.select(_HOLDER.label("agent"), sa.func.count().label("n"))
    .where(conversations.c.status.in_(HOLDING))
    .group_by(_HOLDER)
)
_HELD_BY = _HELD.where(_HOLDER.in_(sa.bindparam("b_agents", expanding=True)))
_ACTIVE_AGENTS = sa.select(agents).where(agents.c.active.is_(True))
_WAITING = (
    sa.select(conversations)
    .where(conversations.c.status.in_([s.value for s in WAITING_STATUSES]))
    .order_by(conversations.c.id)
)
_LOCK_AGENTS = (
    sa.select(agents.c.id)
    .where(agents.c.id.in_(sa.bindparam("b_agents", expanding=True)))
    .order_by(agents.c.id)
    .with_for_update()
)
_FENCE = (
    routing_fence.update()
    .where(routing_fence.c.name == "routing", routing_fence.c.token <= sa.bindparam("b_token"))
    .values(token=sa.bindparam("b_token"))
)
_ACCEPT = status_update(
    None,
    ACCEPT,
    conversations.c.offer_agent_id == sa.bindparam("b_agent"),
    conversations.c.offer_id == sa.bindparam("b_offer"),
    sa.or_(
        conversations.c.offer_expires_at.is_(None), conversations.c.offer_expires_at > sa.bindparam("b_now")
    ),
    assignee_id=sa.bindparam("b_agent"),
    **{k: sa.null() for k in NO_OFFER},
    pending_reason=sa.null(),
    updated_at=sa.bindparam("b_now"),
).returning(conversations)
_ACCEPTED_BY = (
    agents.update()
    .where(agents.c.id == sa.bindparam("b_agent"))
    .values(missed_offers=0, last_assigned_at=sa.bindparam("b_now"))
)
_OFFERED_TO = sa.select(conversations).where(
    conversations.c.offer_agent_id == sa.bindparam("b_agent"),
    conversations.c.offer_id == sa.bindparam("b_offer"),
)
_LOG = routing_events.insert()
_QUEUE_COUNTS = (
    sa.select(
        conversations.c.team,
        conversations.c.status,
        sa.func.count(),
        sa.func.min(sa.func.coalesce(conversations.c.enqueued_at, conversations.c.created_at)),
    )
    .where(conversations.c.status.in_([s.value for s in WAITING_STATUSES]))
    .group_by(conversations.c.team, conversations.c.status)
)


RULES_CACHE_S = 5.0
"""How long a process starts conversations with the routing rules as read (its own rule changes clear
them at once; another process's apply within this time)."""


@dataclass(frozen=True, slots=True)
class AgentLoad:
    agent: Agent
    teams: frozenset[str]
    active: int


@dataclass(frozen=True, slots=True)
class RoutingView:
    """What one routing cycle reads, in one transaction."""

    loads: list[AgentLoad]
    teams: list[Team]
    waiting: list[Conversation]
    """Queued and offered, by id."""
    pending: list[Conversation]
    """Pending, oldest arrival first."""


def _team(r: Any, members: Iterable[str]) -> Team:
    hours = r.hours
    return Team(
        id=r.id,
        name=r.name,
        timezone=r.timezone,
        hours={d: tuple((a, b) for a, b in v) for d, v in hours.items()} if hours is not None else None,
        holidays=frozenset(r.holidays or ()),
        members=frozenset(members),
    )


def _rule(r: Any) -> Rule:
    match = r.match or {}
    return Rule(
        id=r.id,
        name=r.name,
        position=r.position,
        inbox_id=match.get("inbox_id"),
        channel=match.get("channel"),
        fields=dict(match.get("fields") or {}),
        team_id=r.team_id,
        skills=dict(r.skills or {}),
        priority=r.priority,
        steps=tuple((s["requirement"], float(s["after_s"])) for s in r.steps or ()),
        offer_timeout_s=r.offer_timeout_s,
        max_wait_s=r.max_wait_s,
        ticket_on=tuple(r.ticket_on) if r.ticket_on is not None else DEFAULT_TICKET_ON,
    )


class RoutingQueries:
    db: Database
    _rules: tuple[float, list[Rule]] | None = None

    async def get_conversation(self, conversation_id: str) -> Conversation:  # provided by Store
        raise NotImplementedError

    # -- the queue summary ---------------------------------------------------------------------------------

    async def queue_counts(self) -> list[tuple[str | None, str, int, int]]:
        """Waiting conversations grouped by team and status: (team, status, count, oldest arrival ms)."""
        async with self.db.read() as conn:
            return [(r[0], str(r[1]), int(r[2]), int(r[3])) for r in await conn.execute(_QUEUE_COUNTS)]

    # -- teams ---------------------------------------------------------------------------------------------

    async def list_teams(self) -> list[Team]:
        async with self.db.read() as conn:
            members: dict[str, list[str]] = {}
            for m in await conn.execute(_MEMBERS):
                members.setdefault(m.team_id, []).append(m.agent_id)
            found = await conn.execute(_TEAMS)
            return [_team(r, members.get(r.id, ())) for r in found]

    async def get_team(self, team_id: str) -> Team:
        for team in await self.list_teams():
            if team.id == team_id:
                return team
        raise NotFound("team not found")

    async def create_team(self, name: str, timezone: str, hours: Any, holidays: Iterable[str]) -> Team:
        team_id = new_id("tm_")
        try:
            async with self.db.write() as conn:
                await conn.execute(
                    teams.insert().values(
                        id=team_id,
                        name=name,
                        timezone=timezone,
                        hours=_hours_json(hours),
                        holidays=sorted(holidays),
                        created_at=now_ms(),
                    )
                )
        except Duplicate as exc:
            raise Conflict(f"a team named {name!r} exists", data={"field": "name"}) from exc
        return await self.get_team(team_id)

    async def update_team(self, team_id: str, **values: Any) -> Team:
        if "hours" in values:
            values["hours"] = _hours_json(values["hours"])
        if "holidays" in values:
            values["holidays"] = sorted(values["holidays"])
        if values:
            try:
                async with self.db.write() as conn:
                    res = await conn.execute(teams.update().where(teams.c.id == team_id).values(**values))
                    if res.rowcount == 0:
                        raise NotFound("team not found")
            except Duplicate as exc:
                raise Conflict("a team with that name exists", data={"field": "name"}) from exc
        return await self.get_team(team_id)

    async def set_team_members(self, team_id: str, agent_ids: Iterable[str]) -> Team:
        wanted = sorted(set(agent_ids))
        async with self.db.write() as conn:
            if await conn.scalar(sa.select(teams.c.id).where(teams.c.id == team_id)) is None:
                raise NotFound("team not found")
            known = set((await conn.execute(sa.select(agents.c.id).where(agents.c.id.in_(wanted)))).scalars())
            unknown = [a for a in wanted if a not in known]
            if unknown:
                raise Invalid(f"unknown agents {unknown}", data={"field": "members"})
            await conn.execute(team_members.delete().where(team_members.c.team_id == team_id))
            if wanted:
                await conn.execute(
                    team_members.insert(), [{"team_id": team_id, "agent_id": a} for a in wanted]
                )
        return await self.get_team(team_id)

    async def delete_team(self, team_id: str) -> None:
        async with self.db.write() as conn:
            res = await conn.execute(teams.delete().where(teams.c.id == team_id))
            if res.rowcount == 0:
                raise NotFound("team not found")

    # -- rules ---------------------------------------------------------------------------------------------

    async def list_rules(self) -> list[Rule]:
        async with self.db.read() as conn:
            found = await conn.execute(
                sa.select(routing_rules).order_by(routing_rules.c.position, routing_rules.c.id)
            )
            return [_rule(r) for r in found]

    async def list_rules_cached(self) -> list[Rule]:
        """:meth:`list_rules` as read at most :data:`RULES_CACHE_S` ago (starting a conversation)."""
        now = time.monotonic()
        if self._rules is not None and now - self._rules[0] < RULES_CACHE_S:
            return self._rules[1]
        rules = await self.list_rules()
        self._rules = (now, rules)
        return rules

    async def get_rule(self, rule_id: str) -> Rule:
        async with self.db.read() as conn:
            r = (await conn.execute(sa.select(routing_rules).where(routing_rules.c.id == rule_id))).first()
        if r is None:
            raise NotFound("routing rule not found")
        return _rule(r)

    async def save_rule(self, rule: Rule) -> Rule:
        """Insert or replace a rule (by id)."""
        values = {
            "name": rule.name,
            "position": rule.position,
            "match": {k: v for k, v in (("inbox_id", rule.inbox_id), ("channel", rule.channel)) if v}
            | ({"fields": dict(rule.fields)} if rule.fields else {}),
            "team_id": rule.team_id,
            "skills": dict(rule.skills),
            "priority": rule.priority,
            "steps": [{"requirement": r, "after_s": s} for r, s in rule.steps],
            "offer_timeout_s": rule.offer_timeout_s,
            "max_wait_s": rule.max_wait_s,
            "ticket_on": list(rule.ticket_on),
        }
        self._rules = None
        async with self.db.write() as conn:
            if (
                rule.team_id is not None
                and await conn.scalar(sa.select(teams.c.id).where(teams.c.id == rule.team_id)) is None
            ):
                raise Invalid("unknown team", data={"field": "team_id"})
            res = await conn.execute(
                routing_rules.update().where(routing_rules.c.id == rule.id).values(**values)
            )
            if res.rowcount == 0:
                await conn.execute(routing_rules.insert().values(id=rule.id, created_at=now_ms(), **values))
        return await self.get_rule(rule.id)

    async def delete_rule(self, rule_id: str) -> None:
        self._rules = None
        async with self.db.write() as conn:
            res = await conn.execute(routing_rules.delete().where(routing_rules.c.id == rule_id))
            if res.rowcount == 0:
                raise NotFound("routing rule not found")

    # -- the router's view ---------------------------------------------------------------------------------

    async def routing_view(self) -> RoutingView:
        """The router's whole view for one cycle in one transaction: agents with their load and teams,
        the teams, and the queued, offered and pending conversations (one read of each)."""
        async with self.db.read() as conn:
            members = [(m.team_id, m.agent_id) for m in await conn.execute(_MEMBERS)]
            loads = await self._agent_loads(conn, members)
            found = await conn.execute(_TEAMS)
            team_list = [_team(r, [a for t, a in members if t == r.id]) for r in found]
            open_now = await conn.execute(_WAITING)
            waiting: list[Conversation] = []
            pending: list[Conversation] = []
            for r in open_now:
                conv = rows.conversation(r)
                (pending if conv.status is Status.PENDING else waiting).append(conv)
        pending.sort(key=lambda c: (c.enqueued_at is None, c.enqueued_at or 0, c.id))
        return RoutingView(loads, team_list, waiting, pending)

    async def agent_loads(self) -> list[AgentLoad]:
        async with self.db.read() as conn:
            members = [(m.team_id, m.agent_id) for m in await conn.execute(_MEMBERS)]
            return await self._agent_loads(conn, members)

    @staticmethod
    async def _agent_loads(conn: AsyncConnection, members: list[tuple[str, str]]) -> list[AgentLoad]:
        member_of: dict[str, set[str]] = {}
        for team_id, agent_id in members:
            member_of.setdefault(agent_id, set()).add(team_id)
        counts = {r.agent: int(r.n) for r in await conn.execute(_HELD) if r.agent is not None}
        found = await conn.execute(_ACTIVE_AGENTS)
        return [
            AgentLoad(rows.agent(r), frozenset(member_of.get(r.id, ())), counts.get(r.id, 0)) for r in found
        ]

    async def waiting(self) -> list[Conversation]:
        """Conversations the router owns: queued and offered."""
        async with self.db.read() as conn:
            found = await conn.execute(
                sa.select(conversations)
                .where(conversations.c.status.in_([Status.QUEUED.value, Status.OFFERED.value]))
                .order_by(conversations.c.id)
            )
            return [rows.conversation(r) for r in found]

    async def pending(self) -> list[Conversation]:
        """Conversations routing gave up on (status pending), oldest arrival first."""
        async with self.db.read() as conn:
            found = await conn.execute(
                sa.select(conversations)
                .where(conversations.c.status == Status.PENDING.value)
                .order_by(conversations.c.enqueued_at, conversations.c.id)
            )
            return [rows.conversation(r) for r in found]

    async def visitor_activity(self, conversation_ids: Iterable[str]) -> dict[str, int]:
        """When each conversation's visitor last wrote (epoch ms), for those where they did."""
        ids = list(conversation_ids)
        out: dict[str, int] = {}
        async with self.db.read() as conn:
            for start in range(0, len(ids), 500):
                found = await conn.execute(
                    sa.select(messages.c.conversation_id, sa.func.max(messages.c.created_at).label("at"))
                    .where(
                        messages.c.conversation_id.in_(ids[start : start + 500]),
                        messages.c.author_kind == AuthorKind.CONTACT.value,
                    )
                    .group_by(messages.c.conversation_id)
                )
                out.update({r.conversation_id: int(r.at) for r in found if r.at is not None})
        return out

    async def assigned_to(self, agent_ids: Iterable[str]) -> dict[str, list[Conversation]]:
        ids = list(agent_ids)
        if not ids:
            return {}
        async with self.db.read() as conn:
            found = await conn.execute(
                sa.select(conversations).where(
                    conversations.c.status == Status.ASSIGNED.value, conversations.c.assignee_id.in_(ids)
                )
            )
            out: dict[str, list[Conversation]] = {}
            for r in found:
                out.setdefault(r.assignee_id, []).append(rows.conversation(r))
            return out

    # -- fenced writes (the leader) --------------------------------------------------------------------

    async def fence_token(self) -> int:
        async with self.db.read() as conn:
            return int(
                await conn.scalar(sa.select(routing_fence.c.token).where(routing_fence.c.name == "routing"))
                or 0
            )

    @staticmethod
    async def _fenced(conn: AsyncConnection, token: int) -> bool:
        """Record ``token`` as the newest leader's, unless a newer one already wrote: then refuse."""
        res = await conn.execute(_FENCE, {"b_token": token})
        return res.rowcount == 1

    async def offer(
        self, conv: Conversation, agent_id: str, capacity: int, expires_at: int, token: int
    ) -> Conversation | None:
        """Offer a queued conversation to an agent, if nothing changed and the agent has room."""
        return (await self.offer_many([(conv, agent_id, capacity, expires_at)], token))[0]

    async def offer_many(
        self, wanted: list[tuple[Conversation, str, int, int]], token: int
    ) -> list[Conversation | None]:
        """Apply one routing cycle's offers (conversation, agent, capacity, expires_at) in one transaction:
        one fence check, the agents' rows locked in id order, their load counted once; each offer still a
        compare-and-set on its conversation. Returns the offered conversations (None where refused)."""
        if not wanted:
            return []
        async with self.db.write() as conn:
            if not await self._fenced(conn, token):
                return [None] * len(wanted)
            agent_ids = sorted({agent_id for _, agent_id, _, _ in wanted})
            await conn.execute(_LOCK_AGENTS, {"b_agents": agent_ids})
            held = {r.agent: int(r.n) for r in await conn.execute(_HELD_BY, {"b_agents": agent_ids})}
            now = now_ms()
            made: dict[int, Conversation] = {}
            for i, (conv, agent_id, capacity, expires_at) in enumerate(wanted):
                if held.get(agent_id, 0) >= capacity:
                    continue
                offer = {
                    "offer_id": new_id("of_"),
                    "offer_agent_id": agent_id,
                    "offer_expires_at": expires_at,
                    "updated_at": now,
                }
                r = (await conn.execute(*versioned_move(conv.id, conv.version, OFFER, offer))).first()
                if r is not None:
                    held[agent_id] = held.get(agent_id, 0) + 1
                    made[i] = rows.conversation(r)
            await _log_many(conn, [(c.id, c.offer_agent_id, "offer", None) for c in made.values()])
            await conversation_changed(conn, self.db, [(wanted[i][0].id, wanted[i][0].status) for i in made])
        return [made.get(i) for i in range(len(wanted))]

    async def get_conversations(self, ids: Iterable[str]) -> dict[str, Conversation]:
        wanted = list(set(ids))
        if not wanted:
            return {}
        async with self.db.read() as conn:
            found = await conn.execute(sa.select(conversations).where(conversations.c.id.in_(wanted)))
            return {r.id: rows.conversation(r) for r in found}

    async def _fenced_change(
        self,
        conv_id: str,
        token: int,
        move: Move,
        where: Sequence[ColumnElement[bool]],
        values: dict[str, Any],
        *,
        log: tuple[str | None, str],
        before: Status,
        then: Callable[[AsyncConnection], Awaitable[None]] | None = None,
    ) -> Conversation | None:
        """One routing write, in one transaction: the leader's fencing token, a compare-and-set on the
        conversation (``move``'s sources and ``where``, which pin its status to ``before``), then ``then``
        and the routing log. None if fenced off or the CAS misses."""
        async with self.db.write() as conn:
            if not await self._fenced(conn, token):
                return None
            r = (
                await conn.execute(status_update(conv_id, move, *where, **values).returning(conversations))
            ).first()
            if r is None:
                return None
            await conversation_changed(conn, self.db, [(conv_id, before)])
            if then is not None:
                await then(conn)
            await _log(conn, conv_id, *log)
        return rows.conversation(r)

    async def expire_offer(self, conv: Conversation, token: int) -> tuple[Conversation, int] | None:
        """Take back an unanswered offer; the agent's missed-offer count goes up."""
        agent_id = conv.offer_agent_id
        if agent_id is None or conv.offer_id is None:
            return None
        routing = dict(conv.routing)
        routing["timed_out_by"] = sorted(set(routing.get("timed_out_by", [])) | {agent_id})
        missed = 0

        async def count_miss(conn: AsyncConnection) -> None:
            nonlocal missed
            await conn.execute(
                agents.update()
                .where(agents.c.id == agent_id)
                .values(missed_offers=agents.c.missed_offers + 1)
            )
            missed = int(
                await conn.scalar(sa.select(agents.c.missed_offers).where(agents.c.id == agent_id)) or 0
            )

        done = await self._fenced_change(
            conv.id,
            token,
            EXPIRE,
            [conversations.c.offer_id == conv.offer_id],
            {**NO_OFFER, "routing": routing},
            log=(agent_id, "timeout"),
            before=Status.OFFERED,
            then=count_miss,
        )
        return (done, missed) if done is not None else None

    async def escalate(self, conv: Conversation, reason: str, token: int) -> Conversation | None:
        return await self._fenced_change(
            conv.id,
            token,
            ESCALATE,
            [conversations.c.version == conv.version],
            {"pending_reason": reason, **NO_OFFER},
            log=(None, "escalate"),
            before=conv.status,  # (pinned by the version)
        )

    async def requeue(self, conv: Conversation, token: int) -> Conversation | None:
        """Give an absent agent's conversation back to the queue, at the front of its priority."""
        routing = {**conv.routing, "requeued": True, "preferred_agent_id": None, "preferred_only": False}
        return await self._fenced_change(
            conv.id,
            token,
            REQUEUE,
            [conversations.c.version == conv.version],
            {"assignee_id": None, "routing": routing, "enqueued_at": now_ms()},
            log=(conv.assignee_id, "requeue"),
            before=Status.ASSIGNED,
        )

    async def return_to_queue(self, conv: Conversation, token: int) -> Conversation | None:
        """A pending conversation goes back to the queue (its visitor is still there and an agent is
        free): the front of its priority, by its original arrival (``enqueued_at`` kept); its steps, wait
        limit and timed-out agents cleared (see ``routing.engine.unpend``)."""
        routing = {**conv.routing, "requeued": True, "steps": [], "max_wait_s": None, "timed_out_by": []}
        return await self._fenced_change(
            conv.id,
            token,
            UNPEND,
            [conversations.c.version == conv.version],
            {"routing": routing, "pending_reason": None, "enqueued_at": conv.enqueued_at or conv.created_at},
            log=(None, "unpend"),
            before=Status.PENDING,
        )

    async def set_away_for_missed_offers(self, agent_id: str, token: int) -> bool:
        async with self.db.write() as conn:
            if not await self._fenced(conn, token):
                return False
            res = await conn.execute(
                agents.update()
                .where(agents.c.id == agent_id, agents.c.status == "online")
                .values(status="away")
            )
            return res.rowcount == 1

    # -- agents answering (any process) --------------------------------------------------------------------

    async def _offered(self, conn: AsyncConnection, offer_id: str, agent_id: str) -> Any:
        """The conversation offered to ``agent_id`` as ``offer_id`` (found through the agent's offers,
        which are indexed); Conflict if that offer is no longer out, Forbidden if it is another agent's."""
        c = conversations.c
        r = (await conn.execute(_OFFERED_TO, {"b_agent": agent_id, "b_offer": offer_id})).first()
        if r is None or r.status != Status.OFFERED.value:
            if r is None:
                other = (
                    await conn.execute(sa.select(c.status, c.offer_agent_id).where(c.offer_id == offer_id))
                ).first()
                if other is not None and other.status == Status.OFFERED.value:
                    raise Forbidden("this offer is for another agent")
            raise Conflict("the offer has expired or was withdrawn")
        return r

    async def accept_offer(self, offer_id: str, agent_id: str) -> Conversation:
        """The agent takes the conversation: one compare-and-set on the offer (still out, theirs, not
        expired) that returns the conversation; the reasons it failed are read only when it did."""
        now = now_ms()
        async with self.db.write() as conn:
            answer = {"b_agent": agent_id, "b_offer": offer_id, "b_now": now}
            done = (await conn.execute(_ACCEPT, answer)).first()
            if done is None:
                r = await self._offered(conn, offer_id, agent_id)  # raises if not out or not theirs
                if r.offer_expires_at is not None and r.offer_expires_at <= now:
                    raise Conflict("the offer has expired")
                raise Conflict("the offer has expired or was withdrawn")
            await conversation_changed(conn, self.db, [(done.id, Status.OFFERED)])
            await conn.execute(_ACCEPTED_BY, answer)
            await _log(
                conn, done.id, agent_id, "accept", waited_ms=now - (done.enqueued_at or done.created_at)
            )
        return rows.conversation(done)

    async def decline_offer(self, offer_id: str, agent_id: str) -> Conversation:
        async with self.db.write() as conn:
            r = await self._offered(conn, offer_id, agent_id)
            routing = dict(r.routing or {})
            routing["declined_by"] = sorted(set(routing.get("declined_by", [])) | {agent_id})
            done = (
                await conn.execute(
                    status_update(
                        r.id,
                        DECLINE,
                        conversations.c.offer_id == offer_id,
                        **NO_OFFER,
                        routing=routing,
                        version=r.version + 1,
                        updated_at=now_ms(),
                    ).returning(conversations)
                )
            ).first()
            if done is None:
                raise Conflict("the offer has expired or was withdrawn")
            await conversation_changed(conn, self.db, [(r.id, Status.OFFERED)])
            await conn.execute(agents.update().where(agents.c.id == agent_id).values(missed_offers=0))
            await _log(conn, r.id, agent_id, "decline")
        return rows.conversation(done)

    async def route_again(
        self, conv: Conversation, routing: dict[str, Any], *, team: str | None, skills: dict[str, int] | None
    ) -> Conversation:
        """Transfer: back to the queue with new routing (an agent, a team or a skill set), at the front."""
        values: dict[str, Any] = {
            "assignee_id": None,
            **NO_OFFER,
            "pending_reason": None,
            "routing": routing,
            "enqueued_at": now_ms(),
            "version": conv.version + 1,
            "updated_at": now_ms(),
            "team": team,
        }
        if skills is not None:
            values["skills"] = skills
        async with self.db.write() as conn:
            r = (
                await conn.execute(
                    status_update(
                        conv.id, TRANSFER, conversations.c.version == conv.version, **values
                    ).returning(conversations)
                )
            ).first()
            if r is None:
                raise Conflict("the conversation changed at the same time; try again")
            await conversation_changed(conn, self.db, [(conv.id, conv.status)])  # (pinned by the version)
            await _log(conn, conv.id, conv.assignee_id, "transfer")
        return rows.conversation(r)

    async def log_routing(self, conversation_id: str, agent_id: str | None, kind: str) -> None:
        async with self.db.write() as conn:
            await _log(conn, conversation_id, agent_id, kind)

    async def routing_counts(self, since_ms: int = 0) -> dict[str, Any]:
        async with self.db.read() as conn:
            by_kind = {
                r.kind: int(r.n)
                for r in await conn.execute(
                    sa.select(routing_events.c.kind, sa.func.count().label("n"))
                    .where(routing_events.c.at >= since_ms)
                    .group_by(routing_events.c.kind)
                )
            }
            wait = (
                await conn.execute(
                    sa.select(
                        sa.func.avg(routing_events.c.waited_ms), sa.func.max(routing_events.c.waited_ms)
                    ).where(routing_events.c.kind.in_(["accept", "claim"]), routing_events.c.at >= since_ms)
                )
            ).first()
            recent = await conn.scalar(
                sa.select(sa.func.avg(conversations.c.resolved_at - conversations.c.first_response_at)).where(
                    conversations.c.resolved_at.is_not(None), conversations.c.first_response_at.is_not(None)
                )
            )
        return {
            "events": by_kind,
            "wait_ms_avg": float(wait[0]) if wait and wait[0] is not None else None,
            "wait_ms_max": int(wait[1]) if wait and wait[1] is not None else None,
            "handle_ms_avg": float(recent) if recent is not None else None,
        }

    async def handle_ms_avg(self) -> float | None:
        """The average handle time (first response to resolved) of resolved conversations, in ms."""
        async with self.db.read() as conn:
            found = await conn.scalar(
                sa.select(sa.func.avg(conversations.c.resolved_at - conversations.c.first_response_at)).where(
                    conversations.c.resolved_at.is_not(None), conversations.c.first_response_at.is_not(None)
                )
            )
        return float(found) if found is not None else None

    async def assignment_log(self) -> list[tuple[str, str | None, str]]:
        async with self.db.read() as conn:
            found = await conn.execute(
                sa.select(
                    routing_events.c.conversation_id, routing_events.c.agent_id, routing_events.c.kind
                ).order_by(routing_events.c.at, routing_events.c.id)
            )
            return [(r.conversation_id, r.agent_id, r.kind) for r in found]


async def _log(
    conn: AsyncConnection,
    conversation_id: str,
    agent_id: str | None,
    kind: str,
    *,
    waited_ms: int | None = None,
) -> None:
    await conn.execute(
        _LOG,
        {
            "id": new_id("re_"),
            "conversation_id": conversation_id,
            "agent_id": agent_id or "",
            "kind": kind,
            "waited_ms": waited_ms,
            "at": now_ms(),
        },
    )


async def _log_many(conn: AsyncConnection, entries: list[tuple[str, str | None, str, int | None]]) -> None:
    """Routing log entries (conversation, agent, kind, waited ms) in one statement."""
    if not entries:
        return
    at = now_ms()
    await conn.execute(
        _LOG,
        [
            {
                "id": new_id("re_"),
                "conversation_id": cid,
                "agent_id": agent_id or "",
                "kind": kind,
                "waited_ms": waited,
                "at": at,
            }
            for cid, agent_id, kind, waited in entries
        ],
    )


def _hours_json(hours: Any) -> Any:
    if hours is None:
        return None
    return {d: [list(i) for i in v] for d, v in hours.items()}
