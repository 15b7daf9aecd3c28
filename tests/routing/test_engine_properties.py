"""Property-based tests of the routing engine: random rosters and queues, invariants on decide().

Eligibility is checked against ``allowed`` below, an independent, deliberately naive reading of the rules.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from chatserver.routing import (
    AgentState,
    Decision,
    Escalate,
    LanguageRequirement,
    Offer,
    OfferExpired,
    PendingOffer,
    QueuedConversation,
    QueuePosition,
    RelaxStep,
    RoutingState,
    SetAway,
    SkillRequirement,
    apply_decisions,
    choose_agent,
    decide,
    is_eligible,
    next_deadline,
    queue_order,
)

PROPS = settings(max_examples=200, deadline=None)
SOME = settings(max_examples=100, deadline=None)
NOW = 1_000.0
SKILLS = ("billing", "tech", "vip")
LANGS = ("en", "de", "fr")
TEAMS = ("t1", "t2")
FAR_FUTURE = NOW + 1e9

levels = st.integers(1, 5)
small = st.integers(0, 3)
rarely = st.sampled_from([False, False, False, True])
capacities = st.sampled_from([3, 2, 1, 0, 4])
skill_maps = st.dictionaries(st.sampled_from(SKILLS), levels, max_size=3)
language_maps = st.dictionaries(st.sampled_from(LANGS), levels, min_size=1, max_size=2)
statuses = st.sampled_from(["online", "online", "online", "online", "away", "offline"])
team_sets = st.frozensets(st.sampled_from(TEAMS))
maybe_team = st.sampled_from([None, None, *TEAMS])
maybe_language = st.sampled_from([None, None, *LANGS])
required_skills = st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 3), max_size=1)
requirements = st.one_of(
    st.builds(SkillRequirement, st.sampled_from(SKILLS), levels),
    st.builds(LanguageRequirement, st.sampled_from(LANGS), levels),
)
step_lists = st.lists(st.builds(RelaxStep, requirements, st.integers(0, 120).map(float)), max_size=2)
enqueue_times = st.integers(int(NOW) - 100, int(NOW)).map(float)
sla_times = st.none() | st.integers(int(NOW), int(NOW) + 100).map(float)
max_waits = st.none() | st.integers(30, 200).map(float)
offer_expiries = st.integers(-20, 20).map(lambda d: NOW + d)


@st.composite
def agents(draw: st.DrawFn, n_max: int = 8) -> list[AgentState]:
    n = draw(st.integers(1, n_max))
    return [
        AgentState(
            id=f"a{i}",
            status=draw(statuses),
            capacity=draw(capacities),
            active=draw(small),
            skills=draw(skill_maps),
            languages=draw(language_maps),
            teams=draw(team_sets),
            idle_since=draw(st.integers(0, 50)),
            consecutive_timeouts=draw(small),
        )
        for i in range(n)
    ]


@st.composite
def conversations(draw: st.DrawFn, agent_ids: list[str], n_max: int = 12) -> list[QueuedConversation]:
    n = draw(st.integers(0, n_max))
    ids = st.sampled_from(agent_ids)
    someone = st.none() | ids
    group = st.frozensets(ids, max_size=1)
    offers = st.none() | st.builds(PendingOffer, ids, offer_expiries)
    queue = []
    for i in range(n):
        preferred = draw(someone) if agent_ids else None
        queue.append(
            QueuedConversation(
                id=f"c{i}",
                enqueued_at=draw(enqueue_times),
                priority=draw(st.integers(0, 2)),
                sla_due_at=draw(sla_times),
                team=draw(maybe_team),
                skills=draw(required_skills),
                language=draw(maybe_language),
                relax_steps=tuple(draw(step_lists)),
                preferred_agent_id=preferred,
                preferred_only=preferred is not None and draw(rarely),
                declined_by=draw(group) if agent_ids else frozenset(),
                timed_out_by=draw(group) if agent_ids else frozenset(),
                offer=draw(offers) if agent_ids else None,
                max_wait_s=draw(max_waits),
                requeued=draw(rarely),
            )
        )
    return queue


ALL_PAIRS = frozenset((src, dst) for src in LANGS for dst in LANGS if src != dst)
pair_sets = st.sampled_from([ALL_PAIRS, frozenset()]) | st.frozensets(st.sampled_from(sorted(ALL_PAIRS)))


@st.composite
def states(draw: st.DrawFn) -> RoutingState:
    roster = draw(agents())
    return RoutingState(
        agents=tuple(roster),
        queue=tuple(draw(conversations([a.id for a in roster]))),
        translation_pairs=draw(pair_sets),
        closed_teams=draw(st.frozensets(st.sampled_from(TEAMS), max_size=1)),
        rona_threshold=draw(st.none() | st.integers(1, 3)),
        offer_timeout_s=30.0,
        avg_handle_s=draw(st.integers(0, 600).map(float)),
    )


def allowed(
    agent: AgentState,
    conv: QueuedConversation,
    now: float,
    pairs: frozenset[tuple[str, str]],
    *,
    ignore_load: bool = False,
) -> bool:
    """The eligibility rules, read naively from the issue."""
    if agent.status != "online" or (not ignore_load and agent.active >= agent.capacity) or agent.capacity < 1:
        return False
    if agent.id in conv.declined_by or agent.id in conv.timed_out_by:
        return False
    if conv.offer is not None and conv.offer.agent_id == agent.id:
        return False
    if conv.preferred_only and agent.id != conv.preferred_agent_id:
        return False
    if conv.team is not None and conv.team not in agent.teams:
        return False
    if any(agent.skills.get(name, 0) < level for name, level in conv.skills.items()):
        return False
    in_force = [s.requirement for s in conv.relax_steps if now - conv.enqueued_at < s.expires_after_s]
    for req in in_force:
        if isinstance(req, SkillRequirement) and agent.skills.get(req.skill, 0) < req.min_level:
            return False
        if isinstance(req, LanguageRequirement) and agent.languages.get(req.language, 0) < req.min_level:
            return False
    strict = {r.language for r in in_force if isinstance(r, LanguageRequirement)}
    lang = conv.language
    if lang is None or lang in strict or agent.languages.get(lang, 0) >= 1:
        return True
    return any((lang, own) in pairs for own in agent.languages)


def offers_of(decisions: list[Decision]) -> list[Offer]:
    return [d for d in decisions if isinstance(d, Offer)]


def after_expiry(state: RoutingState, decisions: list[Decision]) -> RoutingState:
    """The state decide() routes from: expired offers withdrawn, RONA agents away."""
    return apply_decisions(state, [d for d in decisions if isinstance(d, (OfferExpired, SetAway))])


# --- invariants of one decide() call --------------------------------------------------------------
# Generating a state costs far more than checking it, so one test runs every check on each state.


def check_never_more_offers_than_free_capacity(state: RoutingState, decisions: list[Decision]) -> None:
    expired = Counter(d.agent_id for d in decisions if isinstance(d, OfferExpired))
    offered = Counter(d.agent_id for d in offers_of(decisions))
    for agent in state.agents:
        free = agent.capacity - max(agent.active - expired[agent.id], 0)
        assert offered[agent.id] <= max(free, 0), agent
    for agent in apply_decisions(state, decisions).agents:
        assert offered[agent.id] == 0 or agent.active <= agent.capacity, agent


def check_offers_go_to_eligible_online_agents(state: RoutingState, decisions: list[Decision]) -> None:
    """Online and not just set away; team, every skill whose step has not expired, language, not
    declined or timed out (a free slot is the capacity check's)."""
    set_away = {d.agent_id for d in decisions if isinstance(d, SetAway)}
    agents = {a.id: a for a in after_expiry(state, decisions).agents}
    queue = {c.id: c for c in state.queue}
    for offer in offers_of(decisions):
        agent = agents[offer.agent_id]
        assert agent.status == "online" and agent.id not in set_away, offer
        assert allowed(agent, queue[offer.conversation_id], NOW, state.translation_pairs, ignore_load=True)
        assert offer.expires_at == NOW + state.offer_timeout_s


def check_one_outcome_per_waiting_conversation(state: RoutingState, decisions: list[Decision]) -> None:
    """Never two offers for a conversation; exactly one of offer / escalate / position for each one
    without a live offer; nothing for those with one."""
    outcomes = Counter(
        d.conversation_id for d in decisions if isinstance(d, (Offer, Escalate, QueuePosition))
    )
    offered = Counter(d.conversation_id for d in offers_of(decisions))
    assert all(n == 1 for n in offered.values())
    for conv in state.queue:
        live = conv.offer is not None and conv.offer.expires_at > NOW
        assert outcomes[conv.id] == (0 if live else 1), conv


def check_every_expired_offer_yields_offer_expired(state: RoutingState, decisions: list[Decision]) -> None:
    expired = [(d.conversation_id, d.agent_id) for d in decisions if isinstance(d, OfferExpired)]
    assert sorted(expired) == sorted(
        (c.id, c.offer.agent_id) for c in state.queue if c.offer is not None and c.offer.expires_at <= NOW
    )


def check_rona_sets_away_the_agents_reaching_the_threshold(
    state: RoutingState, decisions: list[Decision]
) -> None:
    expired = Counter(d.agent_id for d in decisions if isinstance(d, OfferExpired))
    threshold = state.rona_threshold
    expected = {
        a.id
        for a in state.agents
        if threshold is not None
        and a.status == "online"
        and expired[a.id]
        and a.consecutive_timeouts + expired[a.id] >= threshold
    }
    assert sorted(d.agent_id for d in decisions if isinstance(d, SetAway)) == sorted(expected)


def check_escalation_reasons(state: RoutingState, decisions: list[Decision]) -> None:
    """Escalated for the right reason; never escalated while someone could take it eventually (all
    steps expired, load ignored): busy agents mean waiting."""
    routed = after_expiry(state, decisions)
    queue = {c.id: c for c in state.queue}

    def someone_ever(conv: QueuedConversation) -> bool:
        return any(
            allowed(a, conv, FAR_FUTURE, state.translation_pairs, ignore_load=True) for a in routed.agents
        )

    for d in decisions:
        if isinstance(d, (Offer, QueuePosition)):
            assert someone_ever(queue[d.conversation_id])
        if not isinstance(d, Escalate):
            continue
        conv = queue[d.conversation_id]
        closed = conv.team is not None and conv.team in state.closed_teams
        too_long = conv.max_wait_s is not None and NOW - conv.enqueued_at >= conv.max_wait_s
        if d.reason == "outside_business_hours":
            assert closed
        elif d.reason == "max_wait_exceeded":
            assert too_long and not closed
        else:
            assert not closed and not too_long and not someone_ever(conv)


def check_positions_count_per_team_in_queue_order(state: RoutingState, decisions: list[Decision]) -> None:
    teams = {c.id: c.team for c in state.queue}
    rank = {c.id: i for i, c in enumerate(queue_order(state.queue))}
    per_team: dict[str | None, list[QueuePosition]] = {}
    for d in decisions:
        if isinstance(d, QueuePosition):
            per_team.setdefault(teams[d.conversation_id], []).append(d)
            assert d.estimated_wait_s >= 0
    for group in per_team.values():
        assert [p.position for p in group] == list(range(1, len(group) + 1))
        assert [rank[p.conversation_id] for p in group] == sorted(rank[p.conversation_id] for p in group)


def check_no_waiting_conversation_is_skipped(state: RoutingState, decisions: list[Decision]) -> None:
    """Work-conserving in queue order: if b got agent X while a, ahead of b, waits, X was not eligible
    for a even with a free slot. With identical requirements this is FIFO within a priority."""
    rank = {c.id: i for i, c in enumerate(queue_order(state.queue))}
    agents = {a.id: a for a in after_expiry(state, decisions).agents}
    queue = {c.id: c for c in state.queue}
    waiting = [queue[d.conversation_id] for d in decisions if isinstance(d, QueuePosition)]
    for offer in offers_of(decisions):
        x = replace(agents[offer.agent_id], active=0)
        for a in waiting:
            if rank[a.id] < rank[offer.conversation_id]:
                assert not allowed(x, a, NOW, state.translation_pairs), (a, offer)


@PROPS
@given(states())
def test_decide_invariants(state: RoutingState) -> None:
    decisions = decide(state, NOW)
    check_never_more_offers_than_free_capacity(state, decisions)
    check_offers_go_to_eligible_online_agents(state, decisions)
    check_one_outcome_per_waiting_conversation(state, decisions)
    check_every_expired_offer_yields_offer_expired(state, decisions)
    check_rona_sets_away_the_agents_reaching_the_threshold(state, decisions)
    check_escalation_reasons(state, decisions)
    check_positions_count_per_team_in_queue_order(state, decisions)
    check_no_waiting_conversation_is_skipped(state, decisions)


@PROPS
@given(agents(), st.lists(st.integers(0, 50), min_size=1, max_size=15), st.data())
def test_fifo_within_priority_for_identical_conversations(
    roster: list[AgentState], arrivals: list[int], data: st.DataObject
) -> None:
    """Same priority, team and requirements, no SLA: the offers go to the earliest enqueued."""
    template = QueuedConversation(
        id="",
        enqueued_at=0.0,
        priority=data.draw(st.integers(0, 2)),
        team=data.draw(maybe_team),
        skills=data.draw(st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 2), max_size=1)),
        language=data.draw(maybe_language),
    )
    queue = [replace(template, id=f"c{i:02d}", enqueued_at=NOW - 60 + t) for i, t in enumerate(arrivals)]
    shuffled = data.draw(st.permutations(queue))
    decisions = decide(RoutingState(agents=tuple(roster), queue=tuple(shuffled)), NOW)
    offered = {d.conversation_id for d in offers_of(decisions)}
    fifo = [c.id for c in sorted(queue, key=lambda c: (c.enqueued_at, c.id))]
    assert set(fifo[: len(offered)]) == offered
    reasons = {d.reason for d in decisions if isinstance(d, Escalate)}
    assert not reasons or (len(reasons) == 1 and not offered)


@SOME
@given(states(), st.sampled_from([NOW, NOW + 30, NOW + 200]))
def test_is_eligible_agrees_with_the_rules(state: RoutingState, now: float) -> None:
    for conv in state.queue:
        for agent in state.agents:
            expected = allowed(agent, conv, now, state.translation_pairs)
            assert is_eligible(agent, conv, now, state.translation_pairs) == expected, (agent, conv)


# --- determinism and consistency ------------------------------------------------------------------


@SOME
@given(states(), st.randoms(use_true_random=False))
def test_same_input_same_output_whatever_the_order(state: RoutingState, rnd: random.Random) -> None:
    agents, queue = list(state.agents), list(state.queue)
    rnd.shuffle(agents)
    rnd.shuffle(queue)
    assert decide(replace(state, agents=tuple(agents), queue=tuple(queue)), NOW) == decide(state, NOW)


@SOME
@given(states())
def test_decide_then_apply_is_a_fixed_point(state: RoutingState) -> None:
    decisions = decide(state, NOW)
    again = decide(apply_decisions(state, decisions), NOW)
    assert again == [d for d in decisions if isinstance(d, QueuePosition)]


@SOME
@given(states(), st.integers(0, 10))
def test_decide_agrees_with_choose_agent(state: RoutingState, pick: int) -> None:
    fresh = [c for c in state.queue if c.offer is None]
    if not fresh:
        fresh = [QueuedConversation("solo", NOW - 5)]
    conv = replace(fresh[pick % len(fresh)], max_wait_s=None, team=None)
    solo = replace(state, queue=(conv,))
    chosen = choose_agent(conv, state.agents, NOW, state.translation_pairs)
    offered = offers_of(decide(solo, NOW))
    assert [o.agent_id for o in offered] == ([] if chosen is None else [chosen.id])


# --- nothing gets stuck ---------------------------------------------------------------------------


@PROPS
@given(states())
def test_every_conversation_ends_accepted_or_escalated(state: RoutingState) -> None:
    """Drain: agents finish their other work, then accept every offer and finish at once. Each
    conversation must leave the queue (accepted or escalated) with time advancing by next_deadline."""
    holders = Counter(c.offer.agent_id for c in state.queue if c.offer is not None)
    state = replace(state, agents=tuple(replace(a, active=holders[a.id]) for a in state.agents))
    now, accepted, escalated = NOW, set[str](), set[str]()
    for _ in range(200):
        if not state.queue:
            break
        decisions = decide(state, now)
        escalated |= {d.conversation_id for d in decisions if isinstance(d, Escalate)}
        state = apply_decisions(state, decisions)
        live = [c for c in state.queue if c.offer is not None and c.offer.expires_at > now]
        done = Counter(c.offer.agent_id for c in live if c.offer is not None)
        accepted |= {c.id for c in live}
        state = replace(
            state,
            queue=tuple(c for c in state.queue if c not in live),
            agents=tuple(
                replace(a, active=a.active - done[a.id], consecutive_timeouts=0) if done[a.id] else a
                for a in state.agents
            ),
        )
        deadline = next_deadline(state, now)
        now = max(now, deadline) if deadline is not None else now + 1
    assert state.queue == ()
    assert accepted.isdisjoint(escalated)
