"""A day at a 10-agent help desk, simulated: discrete events, seeded randomness, no real time.

Visitors arrive (Poisson), the engine decides at every event, agents answer offers after a delay and
finish conversations after a drawn handling time. The harness tracks who holds what on its own, so the
engine's capacity and "offered once" guarantees are checked against an independent count.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from dataclasses import dataclass, field, replace

from chatserver.routing import (
    AgentState,
    Escalate,
    Offer,
    OfferExpired,
    QueuedConversation,
    RoutingState,
    SetAway,
    apply_decisions,
    decide,
    next_deadline,
)

DAY_START = 1_700_000_000.0
TEAM = "support"


@dataclass(order=True)
class Event:
    time: float
    seq: int
    kind: str = field(compare=False)  # arrive | answer | finish | wake
    conversation_id: str = field(compare=False, default="")
    agent_id: str = field(compare=False, default="")
    accept: bool = field(compare=False, default=True)


@dataclass
class Simulation:
    rnd: random.Random
    state: RoutingState
    silent: frozenset[str] = frozenset()
    """Agents who never answer an offer."""
    decline_rate: float = 0.05
    mean_handle_s: float = 720.0
    events: list[Event] = field(default_factory=list)
    held: dict[str, set[str]] = field(default_factory=dict)  # agent -> conversations offered or assigned
    assigned: dict[str, str] = field(default_factory=dict)  # conversation -> agent who accepted
    handled: Counter[str] = field(default_factory=Counter)
    escalated: dict[str, str] = field(default_factory=dict)
    set_away: list[str] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    decide_calls: int = 0
    peak_held: int = 0
    _seq: int = 0

    def __post_init__(self) -> None:
        self.held = {a.id: set() for a in self.state.agents}

    def schedule(
        self, time: float, kind: str, conversation_id: str = "", agent_id: str = "", accept: bool = True
    ) -> None:
        self._seq += 1
        heapq.heappush(self.events, Event(time, self._seq, kind, conversation_id, agent_id, accept))

    def add_arrivals(self, count: int) -> None:
        """``count`` Poisson arrivals over a 10-hour day whose hours 4-6 are three times as busy (a
        Poisson process given its count is that many independent times drawn from its intensity)."""
        hours = [3.0 if 4 <= h < 6 else 1.0 for h in range(10)]
        for i in range(count):
            hour = self.rnd.choices(range(10), weights=hours)[0]
            self.schedule(DAY_START + (hour + self.rnd.random()) * 3600, "arrive", f"c{i:04d}")

    def run(self) -> None:
        while self.events:
            now = self.events[0].time
            while self.events and self.events[0].time == now:
                self.handle(heapq.heappop(self.events), now)
            self.route(now)

    # --- the shell's side: apply what happened, then ask the engine ---

    def handle(self, event: Event, now: float) -> None:
        queue = {c.id: c for c in self.state.queue}
        agents = {a.id: a for a in self.state.agents}
        cid, aid = event.conversation_id, event.agent_id
        if event.kind == "arrive":
            queue[cid] = QueuedConversation(
                id=cid, enqueued_at=now, team=TEAM, skills={"support": 2}, language="en"
            )
        elif event.kind == "answer":
            conv = queue.get(cid)
            if (
                conv is None
                or conv.offer is None
                or conv.offer.agent_id != aid
                or conv.offer.expires_at <= now
            ):
                return  # the offer already expired and was re-routed: a late answer changes nothing
            agent = replace(agents[aid], consecutive_timeouts=0)
            if event.accept:
                del queue[cid]
                self.assigned[cid] = aid
                self.waits.append(now - conv.enqueued_at)
                self.schedule(
                    now + self.rnd.lognormvariate(math.log(self.mean_handle_s) - 0.18, 0.6),
                    "finish",
                    cid,
                    aid,
                )
            else:
                queue[cid] = replace(conv, offer=None, declined_by=conv.declined_by | {aid})
                agent = replace(agent, active=agent.active - 1)
                self.held[aid].discard(cid)
            agents[aid] = agent
        elif event.kind == "finish":
            agents[aid] = replace(agents[aid], active=agents[aid].active - 1, idle_since=now)
            self.held[aid].discard(cid)
            self.handled[aid] += 1
        self.state = replace(self.state, agents=tuple(agents.values()), queue=tuple(queue.values()))

    def route(self, now: float) -> None:
        decisions = decide(self.state, now)
        self.decide_calls += 1
        for d in decisions:
            if isinstance(d, Offer):
                assert d.conversation_id not in self.assigned, "offered a conversation already assigned"
                assert all(d.conversation_id not in held for held in self.held.values()), "offered twice"
                self.held[d.agent_id].add(d.conversation_id)
                if d.agent_id not in self.silent:
                    accept = self.rnd.random() >= self.decline_rate
                    self.schedule(
                        now + self.rnd.uniform(2, 20), "answer", d.conversation_id, d.agent_id, accept
                    )
            elif isinstance(d, OfferExpired):
                self.held[d.agent_id].discard(d.conversation_id)
            elif isinstance(d, SetAway):
                self.set_away.append(d.agent_id)
            elif isinstance(d, Escalate):
                self.escalated[d.conversation_id] = d.reason
        self.state = apply_decisions(self.state, decisions)
        for agent in self.state.agents:
            assert len(self.held[agent.id]) == agent.active <= agent.capacity, agent
        self.peak_held = max(self.peak_held, sum(len(held) for held in self.held.values()))
        deadline = next_deadline(self.state, now)
        if deadline is not None:
            assert deadline > now, "decide left something due"
            self.schedule(deadline, "wake")


def team_of_ten(capacity: int = 3) -> tuple[AgentState, ...]:
    return tuple(
        AgentState(
            id=f"agent{i:02d}",
            capacity=capacity,
            skills={"support": 3},
            languages={"en": 5},
            teams=frozenset({TEAM}),
            idle_since=DAY_START,
        )
        for i in range(10)
    )


def simulate_day(seed: int, *, silent: frozenset[str] = frozenset(), arrivals: int = 600) -> Simulation:
    sim = Simulation(
        random.Random(seed), RoutingState(agents=team_of_ten(), offer_timeout_s=30.0), silent=silent
    )
    sim.add_arrivals(arrivals)
    sim.run()
    return sim


def test_a_day_at_equal_skills_spreads_load_evenly_within_capacity() -> None:
    sim = simulate_day(seed=20240601)
    assert len(sim.assigned) == 600, "every conversation is eventually assigned"
    assert sim.escalated == {} and sim.state.queue == ()
    counts = [sim.handled[a.id] for a in sim.state.agents]
    assert sum(counts) == 600
    assert max(counts) <= 1.5 * min(counts), counts
    assert sim.peak_held == 30, "the peak fills every slot, so capacity is really exercised"


def test_fairness_holds_across_seeds() -> None:
    for seed in (1, 2, 3, 4, 5):
        sim = simulate_day(seed)
        counts = [sim.handled[a.id] for a in sim.state.agents]
        assert len(sim.assigned) == 600 and max(counts) <= 1.5 * min(counts), (seed, counts)


def test_a_silent_agent_is_set_away_and_nobody_waits_forever() -> None:
    sim = simulate_day(seed=7, silent=frozenset({"agent03"}), arrivals=200)
    assert sim.set_away == ["agent03"]
    assert sim.handled["agent03"] == 0
    assert len(sim.assigned) == 200 and sim.escalated == {}
    status = {a.id: a.status for a in sim.state.agents}
    assert status["agent03"] == "away" and sum(s == "online" for s in status.values()) == 9
