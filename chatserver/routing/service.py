"""The routing shell: reads the state, asks the pure engine, applies its decisions, keeps time.

Pending conversations (routing gave up on them) go back to the queue when the engine says so
(:class:`BackToQueue`): their visitor is connected (presence under :func:`visitor_key`) or was active
within ``requeue_window_s`` (the last time this leader saw them connected, their last message, the
conversation's start), and an eligible agent is free.

One process leads (see lease.py). It wakes on a ``routing`` bus event (a conversation queued, an offer
answered, an agent's status or connection changed, a conversation closed), at the engine's next
deadline, and at least every second. Each decision is applied with a fenced compare-and-set
(store/routing.py), then announced: the agent gets ``offer`` frames, the visitor ``conversation`` frames
with the queue position, everyone the changed conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from dataclasses import dataclass, field

from chatserver.chat import ChatService
from chatserver.model.events import (
    ROUTING_TOPIC,
    Event,
    NoticeEvent,
    OfferEvent,
    OfferRevokedEvent,
    QueueEvent,
    WakeEvent,
    agent_topic,
    conversation_topic,
)
from chatserver.model.status import Status
from chatserver.model.system_lines import SystemLine
from chatserver.model.types import AgentStatus, Conversation
from chatserver.presence import Presence, visitor_key
from chatserver.realtime.hub import Hub
from chatserver.routing.config import Rule, is_open
from chatserver.routing.engine import decide, next_deadline, past_grace, unattended
from chatserver.routing.lease import Lease
from chatserver.routing.model import (
    AgentState,
    BackToQueue,
    Escalate,
    Offer,
    OfferExpired,
    PendingConversation,
    PendingOffer,
    QueuedConversation,
    QueuePosition,
    RoutingState,
    SetAway,
)
from chatserver.settings import Settings
from chatserver.store.routing import AgentLoad

log = logging.getLogger(__name__)

MIN_CYCLE_GAP_S = 0.05
"""Wake-ups within this long of a cycle's start are served by one next cycle, at the gap's end. Under
load every start, answer and close wakes the router: back to back, its cycles each re-read the whole
routing view for one or two changes. After a quiet moment a wake-up is served at once."""

HANDLE_TIME_REFRESH_S = 60.0
"""How often the router reads the average handle time again (it scans every resolved conversation)."""

WATCH = "watch:"
"""Wake reason prefix: a visitor started following this waiting conversation (send its position again)."""


@dataclass
class RouterStats:
    cycles: int = 0
    offers: int = 0
    expired: int = 0
    escalated: int = 0
    requeued: int = 0
    returned: int = 0
    """Pending conversations given back to the queue (their visitor was still there)."""
    unattended: int = 0
    """Pending conversations whose visitor left (now: routing will not offer them again)."""
    set_away: int = 0
    refused_writes: int = 0
    leader: bool = False
    decision_ms: list[float] = field(default_factory=list)


class Router:
    def __init__(
        self, settings: Settings, service: ChatService, presence: Presence, hub: Hub, lease: Lease
    ) -> None:
        self.settings = settings
        self.service = service
        self.store = service.store
        self.presence = presence
        self.hub = hub
        self.lease = lease
        self.stats = RouterStats()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._offline_since: dict[str, float] = {}
        self._visitor_seen: dict[str, float] = {}
        self._positions: dict[str, tuple[int, float]] = {}
        self._renewed = 0.0
        self._handle: tuple[float, float] | None = None

    # Subscriber protocol (the hub hands us the routing topic)
    def deliver(self, topic: str, event: Event) -> None:
        if isinstance(event, WakeEvent) and event.reason.startswith(WATCH):
            self._positions.pop(event.reason[len(WATCH) :], None)  # someone new is watching: tell them
        self._wake.set()

    def seq_hint(self, conversation_id: str, last_seq: int) -> None:
        return None

    def resync(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        await self.hub.subscribe(self, ROUTING_TOPIC)
        self._task = asyncio.create_task(self._run(), name="router")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.lease.release()

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        delay = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            self._wake.clear()
            delay = 1.0
            now = time.monotonic()
            try:
                if not self.lease.held or now - self._renewed >= self.settings.routing_lease_ttl_s / 3:
                    self.stats.leader = await self.lease.refresh()
                    self._renewed = now
                if self.stats.leader:
                    deadline = await self.cycle()
                    if deadline is not None:
                        delay = min(delay, max(deadline - time.time(), 0.01))
            except Exception:
                log.exception("routing cycle failed")
            rest = MIN_CYCLE_GAP_S - (time.monotonic() - now)
            if rest > 0:
                await asyncio.sleep(rest)
                delay = max(0.0, delay - rest)

    # -- one cycle -----------------------------------------------------------------------------------------

    async def cycle(self) -> float | None:
        token = self.lease.token
        if token is None:
            return None
        now = time.time()
        view = await self.store.routing_view()
        loads, teams, waiting, pending = view.loads, view.teams, view.waiting, view.pending
        connected = await self.presence.connected([load.agent.id for load in loads])
        if await self._requeue_absent(loads, connected, now, token):
            view = await self.store.routing_view()  # those conversations wait now, at the front
            loads, waiting, pending = view.loads, view.waiting, view.pending
        agent_states = tuple(self._agent_state(load, connected) for load in loads)
        state = RoutingState(
            agents=agent_states,
            queue=tuple(self._queued(c) for c in waiting),
            translation_pairs=self._pairs(agent_states, [*waiting, *pending]),
            closed_teams=frozenset(t.id for t in teams if not is_open(t, now)),
            rona_threshold=self.settings.rona_threshold,
            offer_timeout_s=self.settings.offer_timeout_s,
            avg_handle_s=await self._avg_handle_s(),
            pending=await self._pending(pending, now),
            requeue_window_s=self.settings.requeue_window_s,
        )
        started = time.perf_counter()
        decisions = decide(state, now)
        elapsed = (time.perf_counter() - started) * 1000
        self.stats.decision_ms = [*self.stats.decision_ms[-199:], elapsed]
        self.stats.cycles += 1
        self.stats.unattended = len(unattended(state, now))  # where tickets will take over
        convs = {c.id: c for c in (*waiting, *pending)}
        capacity = {s.id: s.capacity for s in state.agents}
        offers: list[Offer] = []
        for d in decisions:
            match d:
                case OfferExpired():
                    await self._expire(convs, d, token)
                case SetAway():
                    await self._set_away(d.agent_id, token)
                case Offer():
                    offers.append(d)  # applied together below, in one transaction
                case Escalate():
                    await self._escalate(convs, d, token)
                case QueuePosition():
                    self._position(d)
                case BackToQueue():
                    await self._return(convs, d, token)
        await self._offer_all(convs, offers, capacity, now, token)
        live = {c for c in convs if convs[c].status in (Status.QUEUED.value, Status.OFFERED.value)}
        for cid in list(self._positions):
            if cid not in live:
                del self._positions[cid]
        after = RoutingState(
            agents=state.agents,
            queue=tuple(self._queued(c) for c in convs.values() if c.id in live),
            translation_pairs=state.translation_pairs,
            closed_teams=state.closed_teams,
            offer_timeout_s=state.offer_timeout_s,
        )
        return next_deadline(after, now)

    def _agent_state(self, load: AgentLoad, connected: set[str]) -> AgentState:
        agent = load.agent
        status = agent.status.value if agent.id in connected else AgentStatus.OFFLINE.value
        return AgentState(
            id=agent.id,
            status=status,
            capacity=agent.max_concurrent or self.settings.max_concurrent,
            active=load.active,
            skills=agent.skills,
            languages={(agent.language or self.settings.agent_language): 5, **agent.languages},
            teams=load.teams,
            idle_since=(agent.last_assigned_at or agent.created_at) / 1000,
            consecutive_timeouts=agent.missed_offers,
        )

    def _queued(self, c: Conversation) -> QueuedConversation:
        r = c.routing
        rule = Rule(id="", name="", steps=tuple((s, float(a)) for s, a in r.get("steps", [])))
        offer = None
        if c.status == Status.OFFERED.value and c.offer_agent_id and c.offer_expires_at:
            offer = PendingOffer(c.offer_agent_id, c.offer_expires_at / 1000)
        return QueuedConversation(
            id=c.id,
            enqueued_at=(c.enqueued_at or c.created_at) / 1000,
            priority=c.priority,
            team=c.team,
            skills=c.skills,
            language=c.language,
            relax_steps=rule.relax_steps(c.language),
            preferred_agent_id=r.get("preferred_agent_id"),
            preferred_only=bool(r.get("preferred_only")) and r.get("preferred_agent_id") is not None,
            declined_by=frozenset(r.get("declined_by", ())),
            timed_out_by=frozenset(r.get("timed_out_by", ())),
            offer=offer,
            max_wait_s=r.get("max_wait_s"),
            requeued=bool(r.get("requeued")),
        )

    async def _pending(self, pending: list[Conversation], now: float) -> tuple[PendingConversation, ...]:
        """Pending conversations with their visitor's presence: connected now, or last seen (by this
        leader, connected), last message, or when the conversation started; the latest of these. Last
        messages are read only where the rest does not already place the visitor within the window."""
        connected = await self.presence.connected({visitor_key(c.contact_id) for c in pending})
        ids = {c.id for c in pending}
        seen = {cid: t for cid, t in self._visitor_seen.items() if cid in ids}
        window = self.settings.requeue_window_s
        last: dict[str, float] = {}
        for c in pending:
            if visitor_key(c.contact_id) in connected:
                seen[c.id] = now
            last[c.id] = max(seen.get(c.id, 0.0), c.created_at / 1000)
        stale = [cid for cid, t in last.items() if now - t > window]
        for cid, at in (await self.store.visitor_activity(stale)).items():
            last[cid] = max(last[cid], at / 1000)
        self._visitor_seen = seen
        return tuple(
            PendingConversation(
                self._queued(c),
                visitor_connected=visitor_key(c.contact_id) in connected,
                visitor_seen_at=last[c.id],
            )
            for c in pending
        )

    def _pairs(
        self, agents: tuple[AgentState, ...], waiting: list[Conversation]
    ) -> frozenset[tuple[str, str]]:
        """(visitor, agent) language pairs an agent can serve without speaking the visitor's language.

        With a translation provider: every pair among the configured languages. Without one, language is a
        preference (native speakers first) rather than a requirement, so every pair is allowed; a rule's
        ``language:xx>=N`` step makes it a requirement for as long as it holds.
        """
        if self.settings.translation_enabled:
            langs = set(self.settings.languages)
        else:
            langs = {lang for a in agents for lang in a.languages} | {
                c.language for c in waiting if c.language
            }
        return frozenset((a, b) for a, b in itertools.product(langs, langs) if a != b)

    async def _avg_handle_s(self) -> float:
        """The average handle time the queue's wait estimates use, read at most every
        :data:`HANDLE_TIME_REFRESH_S` (an average over every resolved conversation moves slowly)."""
        now = time.monotonic()
        if self._handle is None or now - self._handle[0] >= HANDLE_TIME_REFRESH_S:
            handle = await self.store.handle_ms_avg()
            self._handle = (now, float(handle) / 1000 if handle else 300.0)
        return self._handle[1]

    # -- applying decisions ----------------------------------------------------------------------------

    async def _offer_all(
        self,
        convs: dict[str, Conversation],
        offers: list[Offer],
        capacity: dict[str, int],
        now: float,
        token: int,
    ) -> None:
        wanted: list[tuple[Conversation, str, int, int]] = []
        for d in offers:
            conv = convs.get(d.conversation_id)
            if conv is None:
                continue
            timeout = conv.routing.get("offer_timeout_s") or self.settings.offer_timeout_s
            wanted.append((conv, d.agent_id, capacity.get(d.agent_id, 0), int((now + float(timeout)) * 1000)))
        applied = await self.store.offer_many(wanted, token)
        made: list[tuple[Conversation, str, int]] = []
        for (_, agent_id, _, expires), offered in zip(wanted, applied, strict=True):
            if offered is None or offered.offer_id is None:
                self.stats.refused_writes += 1
                continue
            convs[offered.id] = offered
            self.stats.offers += 1
            made.append((offered, agent_id, expires))
        payloads = await self.service.conversation_payloads([c for c, _, _ in made])  # one read for all
        for (offered, agent_id, expires), payload in zip(made, payloads, strict=True):
            assert offered.offer_id is not None
            self.service.publish_payload(offered, payload)
            self.service.publish(
                [(agent_topic(agent_id), OfferEvent(agent_id, offered.offer_id, expires, payload))]
            )

    async def _expire(self, convs: dict[str, Conversation], d: OfferExpired, token: int) -> None:
        conv = convs.get(d.conversation_id)
        if conv is None or conv.offer_id is None:
            return
        done = await self.store.expire_offer(conv, token)
        if done is None:
            self.stats.refused_writes += 1
            return
        convs[conv.id] = done[0]
        self.stats.expired += 1
        self.service.publish(
            [(agent_topic(d.agent_id), OfferRevokedEvent(d.agent_id, conv.offer_id, conv.id, "expired"))]
        )
        await self.service.publish_conversation(done[0])

    async def _set_away(self, agent_id: str, token: int) -> None:
        if not await self.store.set_away_for_missed_offers(agent_id, token):
            return
        self.stats.set_away += 1
        agent = await self.store.get_agent(agent_id)
        await self.service.publish_presence(agent)
        missed = agent.missed_offers
        offers = "an offer" if missed == 1 else f"{missed} offers in a row"
        message = (
            f"You were set to away because {offers} went unanswered. "
            "Set yourself online to get conversations again."
        )
        self.service.publish([(agent_topic(agent_id), NoticeEvent(agent_id, "rona", message))])

    async def _escalate(self, convs: dict[str, Conversation], d: Escalate, token: int) -> None:
        conv = convs.get(d.conversation_id)
        if conv is None:
            return
        done = await self.store.escalate(conv, d.reason, token)
        if done is None:
            self.stats.refused_writes += 1
            return
        convs[conv.id] = done
        self.stats.escalated += 1
        if conv.offer_agent_id and conv.offer_id:
            self.service.publish(
                [
                    (
                        agent_topic(conv.offer_agent_id),
                        OfferRevokedEvent(conv.offer_agent_id, conv.offer_id, conv.id, "escalated"),
                    )
                ]
            )
        await self.service.publish_conversation(done)
        line = SystemLine.of(d.reason)  # no_agent_eligible, outside_business_hours, max_wait_exceeded
        result = await self.service.translate_for_visitor(line.text, "en", done)
        await self.service.system_event(done.id, line, result.text)
        if self.service.tickets is not None:
            await self.service.tickets.after_router_escalation(done, d.reason)

    async def _return(self, convs: dict[str, Conversation], d: BackToQueue, token: int) -> None:
        conv = convs.get(d.conversation_id)
        if conv is None:
            return
        done = await self.store.return_to_queue(conv, token)
        if done is None:
            self.stats.refused_writes += 1
            return
        convs[conv.id] = done
        self.stats.returned += 1
        await self.service.publish_conversation(done)

    def _position(self, d: QueuePosition) -> None:
        value = (d.position, round(d.estimated_wait_s))
        if self._positions.get(d.conversation_id) == value:
            return
        self._positions[d.conversation_id] = value
        self.service.publish(
            [(conversation_topic(d.conversation_id), QueueEvent(d.conversation_id, d.position, value[1]))]
        )

    async def _requeue_absent(
        self, loads: list[AgentLoad], connected: set[str], now: float, token: int
    ) -> bool:
        """Agents gone for longer than the grace period give their conversations back to the queue.
        True if any conversation went back."""
        absent = [load.agent.id for load in loads if load.agent.id not in connected and load.active]
        self._offline_since, due = past_grace(self._offline_since, absent, now, self.settings.agent_grace_s)
        if not due:
            return False
        before = self.stats.requeued
        for convs in (await self.store.assigned_to(due)).values():
            for conv in convs:
                done = await self.store.requeue(conv, token)
                if done is None:
                    continue
                self.stats.requeued += 1
                await self.service.publish_conversation(done)
                await self.service.system_event(done.id, SystemLine.of("agent_disconnected"))
        return self.stats.requeued > before
