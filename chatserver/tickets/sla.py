"""SLA policies in the store, the clock applied to tickets, and the worker that emits warnings and
breaches.

On every ticket change the service recomputes the ticket's SLA (policy, due times, breach flag) and
the next time anything can happen (``sla_due_at``). One worker at a time (a lease with a fencing token,
as the router has) looks at the tickets whose time has come and emits each ``warning`` and ``breach``
once: the event row is unique per (ticket, target, kind, cycle), and it is written only if the
worker's token is still the newest (a paused ex-leader writes nothing). Events are published after
their commit and stay recorded on the ticket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from chatserver.errors import Duplicate, NotFound
from chatserver.model.events import AGENTS_TOPIC, Event, SlaEvent
from chatserver.model.ids import new_id, now_ms
from chatserver.model.types import AuthorKind, MessageKind
from chatserver.routing.lease import Lease
from chatserver.store.schema import routing_fence, sla_events, sla_policies, tickets
from chatserver.store.store import Store
from chatserver.tickets.clock import (
    Alarm,
    Calendar,
    History,
    SlaState,
    Targets,
    alarms,
    compute,
    next_alarm_at,
)
from chatserver.tickets.model import Ticket
from chatserver.tickets.policy import Policy, first_match
from chatserver.tickets.status import ACTIVE
from chatserver.tickets.store import TicketQueries

log = logging.getLogger(__name__)

FENCE = "sla"
Publish = Callable[[list[tuple[str, Event]]], None]


def _policy(r: Any) -> Policy:
    return Policy(
        r.id, r.name, r.position, dict(r.match), Targets(**r.targets), r.warn_before_s, dict(r.calendar)
    )


class SlaService:
    def __init__(self, store: Store, queries: TicketQueries) -> None:
        self.store = store
        self.q = queries
        self.db = store.db

    # -- policies ---------------------------------------------------------------------------------------

    async def policies(self) -> list[Policy]:
        async with self.db.read() as conn:
            result = await conn.execute(
                sa.select(sla_policies).order_by(sla_policies.c.position, sla_policies.c.id)
            )
            return [_policy(r) for r in result]

    async def get_policy(self, policy_id: str) -> Policy:
        async with self.db.read() as conn:
            r = (await conn.execute(sa.select(sla_policies).where(sla_policies.c.id == policy_id))).first()
        if r is None:
            raise NotFound("SLA policy not found")
        return _policy(r)

    async def save_policy(self, p: Policy, *, create: bool) -> Policy:
        wire = p.to_wire()
        values = {
            "name": p.name,
            "position": p.position,
            "match": wire["match"],
            "targets": wire["targets"],
            "warn_before_s": p.warn_before_s,
            "calendar": wire["calendar"],
        }
        async with self.db.write() as conn:
            if create:
                await conn.execute(sla_policies.insert().values(id=p.id, created_at=now_ms(), **values))
            else:
                res = await conn.execute(
                    sla_policies.update().where(sla_policies.c.id == p.id).values(**values)
                )
                if res.rowcount == 0:
                    raise NotFound("SLA policy not found")
        return await self.get_policy(p.id)

    async def delete_policy(self, policy_id: str) -> None:
        async with self.db.write() as conn:
            res = await conn.execute(sla_policies.delete().where(sla_policies.c.id == policy_id))
            if res.rowcount == 0:
                raise NotFound("SLA policy not found")

    # -- the clock on a ticket --------------------------------------------------------------------------

    async def _calendar(self, policy: Policy) -> Calendar:
        inline = policy.inline_calendar()
        if inline is not None:
            return inline
        try:
            team = await self.store.get_team(str(policy.calendar["team_id"]))
        except NotFound:
            return Calendar()  # the team is gone: count plain time rather than never
        return Calendar(team.timezone, team.hours, team.holidays)

    async def _history(self, ticket: Ticket) -> History:
        audit = await self.q.audit(ticket.id)
        changes = [a for a in audit if a.field == "status"]
        initial = str(changes[0].old) if changes else ticket.status.value
        statuses = [(ticket.created_at, initial), *((a.at, str(a.new)) for a in changes)]
        waiting_since = None
        if ticket.first_response_at is not None:
            thread = []
            for cid in await self.q.conversation_ids(ticket):
                thread.extend(await self.store.messages_after(cid, 0, limit=2000, include_private=False))
            for m in sorted(thread, key=lambda m: m.created_at):
                if m.created_at <= ticket.first_response_at or m.kind is not MessageKind.TEXT:
                    continue
                if m.author.kind is AuthorKind.CONTACT and waiting_since is None:
                    waiting_since = m.created_at
                elif m.author.kind in (AuthorKind.AGENT, AuthorKind.BOT):
                    waiting_since = None
        return History(
            created_at=ticket.created_at,
            statuses=statuses,
            first_response_at=ticket.first_response_at,
            waiting_since=waiting_since,
            solved_at=ticket.solved_at,
        )

    async def _channel(self, ticket: Ticket) -> str:
        try:
            return (await self.store.get_conversation(ticket.conversation_id)).channel
        except NotFound:
            return "ticket"

    async def state(self, ticket: Ticket, now: int) -> tuple[Policy, SlaState] | None:
        policy = first_match(
            await self.policies(),
            priority=ticket.priority.value,
            channel=await self._channel(ticket),
            team_id=ticket.team_id,
            tags=ticket.tags,
        )
        if policy is None:
            return None
        return policy, compute(await self._calendar(policy), policy.targets, await self._history(ticket), now)

    async def emitted(self, ticket_id: str) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            result = await conn.execute(
                sa.select(sla_events).where(sla_events.c.ticket_id == ticket_id).order_by(sla_events.c.at)
            )
            return [
                {
                    "kind": r.kind,
                    "target": r.target,
                    "started_at": r.started_at,
                    "due_at": r.due_at,
                    "at": r.at,
                }
                for r in result
            ]

    async def recompute(self, ticket: Ticket, now: int | None = None) -> None:
        """Store the ticket's SLA view, breach flag and next alarm time (no version change: derived)."""
        now = now if now is not None else now_ms()
        found = await self.state(ticket, now)
        sla: dict[str, Any] | None = None
        due = None
        breached = False
        if found is not None:
            policy, st = found
            emitted = {(e["kind"], e["target"], e["started_at"]) for e in await self.emitted(ticket.id)}
            sla = _view(policy, st)
            if ticket.status in ACTIVE:
                due = next_alarm_at(st, warn_before_s=policy.warn_before_s, emitted=emitted)
            breached = st.breached or any(k == "breach" for k, _, _ in emitted)
        async with self.db.write() as conn:
            await conn.execute(
                tickets.update()
                .where(tickets.c.id == ticket.id)
                .values(sla=sla, sla_due_at=due, sla_breached=breached)
            )

    async def view(self, ticket: Ticket) -> dict[str, Any] | None:
        async with self.db.read() as conn:
            sla = await conn.scalar(sa.select(tickets.c.sla).where(tickets.c.id == ticket.id))
        if sla is None:
            return None
        return {**sla, "events": await self.emitted(ticket.id)}

    # -- the worker's writes ----------------------------------------------------------------------------

    async def fence_token(self) -> int:
        async with self.db.read() as conn:
            return int(
                await conn.scalar(sa.select(routing_fence.c.token).where(routing_fence.c.name == FENCE)) or 0
            )

    async def due_tickets(self, now: int, limit: int = 200) -> list[Ticket]:
        async with self.db.read() as conn:
            ids = list(
                await conn.scalars(
                    sa.select(tickets.c.id)
                    .where(tickets.c.sla_due_at <= now, tickets.c.status.in_([s.value for s in ACTIVE]))
                    .order_by(tickets.c.sla_due_at)
                    .limit(limit)
                )
            )
        return [await self.q.get_by_id(i) for i in ids]

    async def emit(self, ticket: Ticket, alarm: Alarm, token: int, now: int) -> bool:
        """Record one alarm, once, if ``token`` is still the newest; True if this call recorded it."""
        try:
            async with self.db.write() as conn:
                res = await conn.execute(
                    routing_fence.update()
                    .where(routing_fence.c.name == FENCE, routing_fence.c.token <= token)
                    .values(token=token)
                )
                if res.rowcount != 1:
                    log.warning("SLA worker token %d is stale; not emitting", token)
                    return False
                await conn.execute(
                    sla_events.insert().values(
                        id=new_id("se_"),
                        ticket_id=ticket.id,
                        target=alarm.target,
                        kind=alarm.kind,
                        started_at=alarm.started_at,
                        due_at=alarm.due_at,
                        at=now,
                        token=token,
                    )
                )
        except (IntegrityError, Duplicate):  # Duplicate: mapped at the end of the transaction
            return False  # already emitted (by us before a restart, or by another worker)
        return True


def _view(policy: Policy, state: SlaState) -> dict[str, Any]:
    return {
        "policy_id": policy.id,
        "policy": policy.name,
        "breached": state.breached,
        "targets": {name: t.to_wire() for name, t in state.targets.items()},
    }


class SlaWorker:
    """Emits warnings and breaches while this process holds the SLA lease."""

    def __init__(
        self,
        service: SlaService,
        lease: Lease,
        publish: Publish | None,
        *,
        poll_s: float = 1.0,
    ) -> None:
        self.service = service
        self.lease = lease
        self.publish = publish
        self.poll_s = poll_s
        self._task: asyncio.Task[None] | None = None
        self.emitted = 0

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sla-worker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.lease.release()

    async def _run(self) -> None:
        while True:
            try:
                if await self.lease.refresh():
                    await self.run_once(now_ms())
            except Exception:
                log.exception("SLA cycle failed")
            await asyncio.sleep(self.poll_s)

    async def run_once(self, now: int) -> list[SlaEvent]:
        """Emit what is due at ``now``; returns the events this call emitted (and published)."""
        token = self.lease.token
        if token is None:
            return []
        out: list[SlaEvent] = []
        for ticket in await self.service.due_tickets(now):
            found = await self.service.state(ticket, now)
            if found is None:
                await self.service.recompute(ticket, now)
                continue
            policy, state = found
            for alarm in alarms(state, warn_before_s=policy.warn_before_s, now=now):
                if await self.service.emit(ticket, alarm, token, now):
                    await self.service.recompute(ticket, now)
                    payload = {**ticket.to_wire(), "sla": await self.service.view(ticket)}
                    event = SlaEvent(
                        ticket.number, alarm.kind, alarm.target, alarm.due_at, ticket.assignee_id, payload
                    )
                    out.append(event)
                    self.emitted += 1
            await self.service.recompute(ticket, now)
        if out and self.publish is not None:
            self.publish([(AGENTS_TOPIC, e) for e in out])
        return out
