"""Pending conversations come back: the engine re-offers them while their visitor is present.

Examples first, then properties over random rosters, queues and pending conversations.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatserver.routing import (
    AgentState,
    BackToQueue,
    Decision,
    Escalate,
    Offer,
    PendingConversation,
    QueuedConversation,
    QueuePosition,
    RelaxStep,
    RoutingState,
    SkillRequirement,
    apply_decisions,
    choose_agent,
    decide,
    unattended,
    unpend,
    visitor_present,
)
from tests.routing.test_engine_properties import agents, allowed, conversations, pair_sets

NOW = 1_000.0
WINDOW = 300.0


def agent(id: str, **kw: Any) -> AgentState:
    kw.setdefault("capacity", 3)
    kw.setdefault("languages", {"en": 5})
    return AgentState(id=id, **kw)


def waiting(id: str, enqueued_at: float = NOW - 100, **kw: Any) -> QueuedConversation:
    return QueuedConversation(id=id, enqueued_at=enqueued_at, **kw)


def pending(
    conv: QueuedConversation, *, connected: bool = True, seen: float | None = None
) -> PendingConversation:
    return PendingConversation(conv, visitor_connected=connected, visitor_seen_at=seen)


def state(
    agents: list[AgentState],
    queue: list[QueuedConversation] = (),  # type: ignore[assignment]
    held: list[PendingConversation] = (),  # type: ignore[assignment]
    **kw: Any,
) -> RoutingState:
    kw.setdefault("requeue_window_s", WINDOW)
    return RoutingState(agents=tuple(agents), queue=tuple(queue), pending=tuple(held), **kw)


# --- examples -------------------------------------------------------------------------------------


def test_nobody_online_leaves_it_pending_and_an_agent_coming_online_gets_it() -> None:
    held = pending(waiting("c1"))
    assert decide(state([agent("a1", status="away")], held=[held]), NOW) == []
    decisions = decide(state([agent("a1")], held=[held]), NOW)
    assert decisions == [BackToQueue("c1"), Offer("c1", "a1", NOW + 30.0)]


def test_a_visitor_who_left_is_not_re_offered_after_the_window() -> None:
    recent = pending(waiting("c1"), connected=False, seen=NOW - WINDOW)
    gone = pending(waiting("c2"), connected=False, seen=NOW - WINDOW - 1)
    never = pending(waiting("c3"), connected=False, seen=None)
    s = state([agent("a1")], held=[recent, gone, never])
    decisions = decide(s, NOW)
    assert decisions == [BackToQueue("c1"), Offer("c1", "a1", NOW + 30.0)]
    assert unattended(s, NOW) == ["c2", "c3"]  # the hook for follow-up (tickets)
    assert not visitor_present(gone, NOW, WINDOW) and visitor_present(recent, NOW, WINDOW)


def test_it_goes_to_the_front_of_its_priority_by_original_arrival() -> None:
    """One free slot: the returning conversation (arrived long ago) beats one queued since; a higher
    priority conversation still comes first."""
    queued = waiting("new", enqueued_at=NOW - 5)
    old = pending(waiting("old", enqueued_at=NOW - 500))
    one_slot = [agent("a1", capacity=1)]
    assert decide(state(one_slot, [queued], [old]), NOW)[:2] == [
        BackToQueue("old"),
        Offer("old", "a1", NOW + 30.0),
    ]
    urgent = waiting("urgent", enqueued_at=NOW - 1, priority=5)
    decisions = decide(state(one_slot, [urgent], [old]), NOW)
    assert decisions == [Offer("urgent", "a1", NOW + 30.0)]  # old stays pending: no second slot
    two_returning = [pending(waiting("b", enqueued_at=NOW - 50)), pending(waiting("a", enqueued_at=NOW - 90))]
    assert [d for d in decide(state(one_slot, held=two_returning), NOW) if isinstance(d, BackToQueue)] == [
        BackToQueue("a")
    ]


def test_busy_or_ineligible_agents_leave_it_pending_without_escalating_again() -> None:
    held = pending(waiting("c1", skills={"billing": 3}))
    full = agent("a1", capacity=1, active=1, skills={"billing": 5})
    unskilled = agent("a2", skills={"billing": 1})
    assert decide(state([full, unskilled], held=[held]), NOW) == []


def test_closed_team_keeps_it_pending_until_open() -> None:
    held = pending(waiting("c1", team="t1"))
    member = agent("a1", teams=frozenset({"t1"}))
    assert decide(state([member], held=[held], closed_teams=frozenset({"t1"})), NOW) == []
    assert decide(state([member], held=[held]), NOW)[0] == BackToQueue("c1")


def test_the_agent_who_let_it_time_out_may_take_it_when_back_but_not_one_who_declined() -> None:
    timed_out = pending(waiting("c1", timed_out_by=frozenset({"a1"})))
    declined = pending(waiting("c2", declined_by=frozenset({"a1"})))
    decisions = decide(state([agent("a1")], held=[timed_out, declined]), NOW)
    assert decisions == [BackToQueue("c1"), Offer("c1", "a1", NOW + 30.0)]


def test_unpend_drops_spent_steps_and_wait_limit_but_keeps_arrival_and_skills() -> None:
    step = RelaxStep(SkillRequirement("billing", 5), 30.0)
    conv = waiting("c1", skills={"billing": 2}, relax_steps=(step,), max_wait_s=60.0)
    back = unpend(conv)
    assert back.enqueued_at == conv.enqueued_at and back.skills == {"billing": 2}
    assert back.relax_steps == () and back.max_wait_s is None and back.requeued
    # waited past max_wait long ago, and the step would still be in force from a new arrival: offered
    decisions = decide(state([agent("a1", skills={"billing": 2})], held=[pending(conv)]), NOW)
    assert decisions == [BackToQueue("c1"), Offer("c1", "a1", NOW + 30.0)]


def test_apply_moves_it_into_the_queue_with_the_offer() -> None:
    s = state([agent("a1")], held=[pending(waiting("c1"))])
    after = apply_decisions(s, decide(s, NOW))
    assert after.pending == () and [c.id for c in after.queue] == ["c1"]
    assert after.queue[0].offer is not None and after.queue[0].offer.agent_id == "a1"
    assert decide(after, NOW) == []


def test_a_conversation_cannot_be_both_queued_and_pending() -> None:
    with pytest.raises(ValueError):
        state([], [waiting("c1")], [pending(waiting("c1"))])
    with pytest.raises(ValueError):
        state([], requeue_window_s=-1)


# --- properties -----------------------------------------------------------------------------------

PROPS = settings(max_examples=150, deadline=None)
presence = st.tuples(st.booleans(), st.none() | st.integers(int(NOW) - 600, int(NOW)).map(float))


@st.composite
def states_with_pending(draw: st.DrawFn) -> RoutingState:
    roster = draw(agents())
    ids = [a.id for a in roster]
    queue = [replace(c, offer=None) for c in draw(conversations(ids, n_max=6))]
    held = [
        PendingConversation(replace(c, id=f"p{i}", offer=None), *draw(presence))
        for i, c in enumerate(draw(conversations(ids, n_max=6)))
    ]
    return RoutingState(
        agents=tuple(roster),
        queue=tuple(queue),
        pending=tuple(held),
        translation_pairs=draw(pair_sets),
        closed_teams=draw(st.frozensets(st.sampled_from(("t1", "t2")), max_size=1)),
        requeue_window_s=draw(st.sampled_from([0.0, 60.0, 300.0])),
    )


def _returned(decisions: list[Decision]) -> list[str]:
    return [d.conversation_id for d in decisions if isinstance(d, BackToQueue)]


@PROPS
@given(states_with_pending())
def test_returns_only_present_visitors_each_with_an_offer_to_an_eligible_agent(state: RoutingState) -> None:
    decisions = decide(state, NOW)
    held = {p.id: p for p in state.pending}
    agents = {a.id: a for a in state.agents}
    for i, d in enumerate(decisions):
        if isinstance(d, BackToQueue):
            p = held[d.conversation_id]
            assert visitor_present(p, NOW, state.requeue_window_s)
            nxt = decisions[i + 1]
            assert isinstance(nxt, Offer) and nxt.conversation_id == d.conversation_id
            conv = unpend(p.conversation)
            assert conv.team is None or conv.team not in state.closed_teams
            assert allowed(agents[nxt.agent_id], conv, NOW, state.translation_pairs, ignore_load=True)
    offered = [d.conversation_id for d in decisions if isinstance(d, Offer) and d.conversation_id in held]
    assert offered == _returned(decisions)
    # a pending conversation is never escalated again nor given a queue position
    assert not [
        d for d in decisions if isinstance(d, (Escalate, QueuePosition)) and d.conversation_id in held
    ]
    # capacity holds with the returning conversations' offers counted
    load = {a.id: a.active for a in state.agents}
    for d in decisions:
        if isinstance(d, Offer):
            load[d.agent_id] += 1
            assert load[d.agent_id] <= agents[d.agent_id].capacity


@PROPS
@given(states_with_pending())
def test_a_lone_present_pending_conversation_returns_exactly_when_someone_is_free(
    state: RoutingState,
) -> None:
    for p in state.pending:
        solo = replace(state, queue=(), pending=(p,))
        conv = unpend(p.conversation)
        present = visitor_present(p, NOW, state.requeue_window_s)
        open_team = conv.team is None or conv.team not in state.closed_teams
        free = choose_agent(conv, state.agents, NOW, state.translation_pairs)
        expected = present and open_team and free is not None
        assert _returned(decide(solo, NOW)) == ([p.id] if expected else [])


@PROPS
@given(states_with_pending())
def test_decide_then_apply_is_still_a_fixed_point(state: RoutingState) -> None:
    decisions = decide(state, NOW)
    after = apply_decisions(state, decisions)
    before = {c.id for c in state.queue} | {p.id for p in state.pending}
    escalated = {d.conversation_id for d in decisions if isinstance(d, Escalate)}
    assert {c.id for c in after.queue} | {p.id for p in after.pending} == before - escalated
    assert decide(after, NOW) == [d for d in decisions if isinstance(d, QueuePosition)]
