"""Example tests for the routing engine: one behaviour each, plain data in, decisions out."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

import chatserver.routing as routing
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
    estimate_wait,
    is_eligible,
    next_deadline,
    parse_requirement,
    past_grace,
    queue_order,
    requeue,
    transfer_to_agent,
    transfer_to_skills,
    transfer_to_team,
    translation_target,
)

NOW = 1_000.0


def agent(id: str, **kw: Any) -> AgentState:
    kw.setdefault("capacity", 3)
    kw.setdefault("languages", {"en": 5})
    return AgentState(id=id, **kw)


def conv(id: str, enqueued_at: float = NOW - 10, **kw: Any) -> QueuedConversation:
    return QueuedConversation(id=id, enqueued_at=enqueued_at, **kw)


def state(agents: list[AgentState], queue: list[QueuedConversation], **kw: Any) -> RoutingState:
    return RoutingState(agents=tuple(agents), queue=tuple(queue), **kw)


def offers(decisions: list[Decision]) -> dict[str, str]:
    return {d.conversation_id: d.agent_id for d in decisions if isinstance(d, Offer)}


def escalations(decisions: list[Decision]) -> dict[str, str]:
    return {d.conversation_id: d.reason for d in decisions if isinstance(d, Escalate)}


def positions(decisions: list[Decision]) -> dict[str, QueuePosition]:
    return {d.conversation_id: d for d in decisions if isinstance(d, QueuePosition)}


# --- queue order ----------------------------------------------------------------------------------


def test_higher_priority_first() -> None:
    low, high = conv("low", priority=0, enqueued_at=1), conv("high", priority=5, enqueued_at=2)
    assert [c.id for c in queue_order([low, high])] == ["high", "low"]


def test_sooner_sla_first_and_sla_before_no_sla() -> None:
    queue = [
        conv("none", enqueued_at=1),
        conv("late", enqueued_at=2, sla_due_at=500),
        conv("soon", enqueued_at=3, sla_due_at=100),
    ]
    assert [c.id for c in queue_order(queue)] == ["soon", "late", "none"]


def test_fifo_within_priority_then_id() -> None:
    queue = [conv("b", enqueued_at=5), conv("c", enqueued_at=1), conv("a", enqueued_at=5)]
    assert [c.id for c in queue_order(queue)] == ["c", "a", "b"]


def test_requeued_goes_to_front_of_its_priority_only() -> None:
    queue = [
        conv("old", enqueued_at=1),
        conv("back", enqueued_at=9, requeued=True),
        conv("urgent", enqueued_at=10, priority=1),
    ]
    assert [c.id for c in queue_order(queue)] == ["urgent", "back", "old"]


def test_the_one_free_slot_goes_to_the_head_of_the_queue() -> None:
    s = state([agent("a1", capacity=1)], [conv("late", enqueued_at=5), conv("early", enqueued_at=1)])
    assert offers(decide(s, NOW)) == {"early": "a1"}


# --- eligibility ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["away", "offline"])
def test_not_offered_to_agent_who_is_not_online(status: str) -> None:
    s = state([agent("a1", status=status), agent("a2", capacity=1, active=1)], [conv("c1")])
    decisions = decide(s, NOW)
    assert offers(decisions) == {}
    assert "c1" in positions(decisions)


def test_offers_in_one_call_count_against_capacity() -> None:
    s = state([agent("a1", capacity=3, active=1)], [conv(f"c{i}", enqueued_at=i) for i in range(4)])
    assert offers(decide(s, NOW)) == {"c0": "a1", "c1": "a1"}


def test_agent_must_be_in_the_team() -> None:
    s = state(
        [agent("a1", teams=frozenset({"sales"})), agent("a2", teams=frozenset({"billing"}))],
        [conv("c1", team="billing")],
    )
    assert offers(decide(s, NOW)) == {"c1": "a2"}


def test_agent_needs_every_required_skill_at_its_level() -> None:
    agents = [
        agent("a1", skills={"billing": 2, "vip": 5}),
        agent("a2", skills={"billing": 3}),
        agent("a3", skills={"billing": 3, "vip": 1}),
    ]
    c = conv("c1", skills={"billing": 3, "vip": 1})
    assert [a.id for a in agents if is_eligible(a, c, NOW)] == ["a3"]


def test_skill_step_raises_level_until_it_expires() -> None:
    agents = [agent("a1", skills={"billing": 2})]
    step = RelaxStep(SkillRequirement("billing", 4), expires_after_s=30)
    c = conv("c1", enqueued_at=NOW, skills={"billing": 2}, relax_steps=(step,))
    assert choose_agent(c, agents, NOW + 29.9) is None
    assert choose_agent(c, agents, NOW + 30) == agents[0]


def test_skill_step_without_permanent_skill_is_dropped_when_it_expires() -> None:
    a1 = agent("a1")
    c = conv("c1", enqueued_at=NOW, relax_steps=(RelaxStep(SkillRequirement("tech", 3), 60),))
    assert not is_eligible(a1, c, NOW + 59)
    assert is_eligible(a1, c, NOW + 60)


def test_skill_without_step_never_relaxes() -> None:
    c = conv("c1", enqueued_at=0, skills={"tech": 3})
    assert not is_eligible(agent("a1", skills={"tech": 2}), c, 10**9)


def test_steps_expire_one_by_one_from_enqueue_time() -> None:
    steps = (RelaxStep(SkillRequirement("billing", 5), 30), RelaxStep(SkillRequirement("billing", 3), 90))
    c = conv("c1", enqueued_at=NOW, skills={"billing": 1}, relax_steps=steps)
    level3 = agent("a3", skills={"billing": 3})
    level1 = agent("a1", skills={"billing": 1})
    assert [is_eligible(level3, c, NOW + t) for t in (10, 30, 90)] == [False, True, True]
    assert [is_eligible(level1, c, NOW + t) for t in (10, 30, 89, 90)] == [False, False, False, True]


def test_language_step_requires_level_then_translation_is_enough() -> None:
    pairs = frozenset({("de", "en")})
    english = agent("en1", languages={"en": 5})
    weak_german = agent("de2", languages={"de": 2})
    c = conv("c1", enqueued_at=NOW, language="de", relax_steps=(RelaxStep(LanguageRequirement("de", 4), 30),))
    assert not is_eligible(english, c, NOW + 10, pairs)
    assert not is_eligible(weak_german, c, NOW + 10, pairs)
    assert is_eligible(english, c, NOW + 30, pairs)
    assert is_eligible(weak_german, c, NOW + 30, pairs)


def test_without_translation_pair_agent_must_speak_the_language() -> None:
    c = conv("c1", language="ja")
    assert not is_eligible(agent("a1", languages={"en": 5}), c, NOW, frozenset({("de", "en")}))
    assert is_eligible(agent("a2", languages={"ja": 1}), c, NOW)


def test_speakers_before_translation_even_with_less_free_capacity() -> None:
    pairs = frozenset({("fr", "en")})
    agents = [
        agent("translator", capacity=5, languages={"en": 5}),
        agent("speaker", capacity=3, active=2, languages={"fr": 1}),
    ]
    decisions = decide(state(agents, [conv("c1", language="fr")], translation_pairs=pairs), NOW)
    assert offers(decisions) == {"c1": "speaker"}


def test_offer_says_which_language_to_translate_into() -> None:
    pairs = frozenset({("fr", "en"), ("fr", "es")})
    a1 = agent("a1", languages={"es": 3, "en": 5, "it": 5})
    decisions = decide(state([a1], [conv("c1", language="fr")], translation_pairs=pairs), NOW)
    assert decisions == [Offer("c1", "a1", NOW + 30, translate_to="en")]
    assert translation_target(a1, "it", pairs) is None
    assert translation_target(a1, None, pairs) is None


@pytest.mark.parametrize("field", ["declined_by", "timed_out_by"])
def test_agents_who_declined_or_timed_out_are_not_offered_again(field: str) -> None:
    agents = [agent("a1", capacity=5), agent("a2", capacity=1)]
    excluded: dict[str, Any] = {field: frozenset({"a1"})}
    c = conv("c1", **excluded)
    assert offers(decide(state(agents, [c]), NOW)) == {"c1": "a2"}


# --- choice ---------------------------------------------------------------------------------------


def test_preferred_agent_first_when_eligible() -> None:
    agents = [agent("a1", capacity=5), agent("prev", capacity=3, active=2)]
    c = conv("c1", preferred_agent_id="prev")
    assert choose_agent(c, agents, NOW) == agents[1]


def test_busy_preferred_agent_is_skipped() -> None:
    agents = [agent("a1"), agent("prev", capacity=1, active=1)]
    c = conv("c1", preferred_agent_id="prev")
    assert offers(decide(state(agents, [c]), NOW)) == {"c1": "a1"}


def test_most_free_capacity_wins() -> None:
    agents = [agent("a1", capacity=3, active=2), agent("a2", capacity=4, active=1), agent("a3", capacity=2)]
    assert offers(decide(state(agents, [conv("c1")]), NOW)) == {"c1": "a2"}


def test_tie_goes_to_agent_idle_longest_then_id() -> None:
    agents = [agent("a1", idle_since=50), agent("a2", idle_since=10), agent("a0", idle_since=10)]
    assert choose_agent(conv("c1"), agents, NOW) == agents[2]


def test_load_spreads_within_one_call() -> None:
    agents = [agent("a1", capacity=2), agent("a2", capacity=2, idle_since=1)]
    s = state(agents, [conv(f"c{i}", enqueued_at=i) for i in range(3)])
    assert offers(decide(s, NOW)) == {"c0": "a1", "c1": "a2", "c2": "a1"}


def test_transfer_to_busy_agent_waits_for_that_agent() -> None:
    agents = [agent("a1"), agent("target", capacity=1, active=1)]
    c = transfer_to_agent(conv("c1"), "target", NOW)
    decisions = decide(state(agents, [c]), NOW)
    assert offers(decisions) == {}
    assert positions(decisions)["c1"].position == 1


def test_transfer_to_offline_agent_escalates() -> None:
    c = transfer_to_agent(conv("c1"), "target", NOW)
    s = state([agent("a1"), agent("target", status="offline")], [c])
    assert escalations(decide(s, NOW)) == {"c1": "no_agent_eligible"}


# --- offers, timeouts, RONA -----------------------------------------------------------------------


def test_conversation_with_live_offer_gets_no_decision() -> None:
    c = conv("c1", offer=PendingOffer("a1", expires_at=NOW + 1))
    assert decide(state([agent("a1", active=1), agent("a2")], [c]), NOW) == []


def test_offer_expires_at_now_plus_timeout() -> None:
    assert decide(state([agent("a1")], [conv("c1")], offer_timeout_s=45), NOW) == [
        Offer("c1", "a1", NOW + 45)
    ]


def test_expired_offer_is_rerouted_to_next_agent_in_same_call() -> None:
    agents = [agent("a1", active=1, consecutive_timeouts=1, capacity=9), agent("a2")]
    c = conv("c1", offer=PendingOffer("a1", expires_at=NOW))
    assert decide(state(agents, [c]), NOW) == [OfferExpired("c1", "a1", 2), Offer("c1", "a2", NOW + 30)]


def test_expired_offer_frees_the_slot_for_another_conversation() -> None:
    agents = [agent("a1", capacity=1, active=1), agent("busy", capacity=1, active=1)]
    queue = [conv("c1", enqueued_at=5, offer=PendingOffer("a1", NOW - 1)), conv("c2", enqueued_at=9)]
    decisions = decide(state(agents, queue, rona_threshold=None), NOW)
    assert offers(decisions) == {"c2": "a1"}
    assert positions(decisions)["c1"].position == 1


def test_rona_threshold_sets_agent_away_and_stops_offers_to_them() -> None:
    agents = [agent("a1", capacity=5, active=1, consecutive_timeouts=2), agent("a2", capacity=1)]
    queue = [conv("c1", enqueued_at=1, offer=PendingOffer("a1", NOW - 5)), conv("c2", enqueued_at=2)]
    decisions = decide(state(agents, queue, rona_threshold=3), NOW)
    assert decisions[:2] == [OfferExpired("c1", "a1", 3), SetAway("a1", 3)]
    assert offers(decisions) == {"c1": "a2"}
    assert list(positions(decisions)) == ["c2"]


def test_two_timeouts_in_one_call_count_twice_and_set_away_once() -> None:
    agents = [agent("a1", active=2), agent("a2", capacity=5)]
    queue = [conv(f"c{i}", enqueued_at=i, offer=PendingOffer("a1", NOW)) for i in (1, 2, 3)]
    decisions = decide(state(agents, queue, rona_threshold=2), NOW)
    assert decisions[:4] == [
        OfferExpired("c1", "a1", 1),
        OfferExpired("c2", "a1", 2),
        SetAway("a1", 2),
        OfferExpired("c3", "a1", 3),
    ]


def test_rona_disabled_never_sets_away() -> None:
    agents = [agent("a1", active=1, consecutive_timeouts=50)]
    c = conv("c1", offer=PendingOffer("a1", NOW))
    assert not any(isinstance(d, SetAway) for d in decide(state(agents, [c], rona_threshold=None), NOW))


def test_rona_does_not_turn_offline_agent_into_away() -> None:
    agents = [agent("a1", status="offline", active=1, consecutive_timeouts=5), agent("a2")]
    c = conv("c1", offer=PendingOffer("a1", NOW))
    assert decide(state(agents, [c]), NOW) == [OfferExpired("c1", "a1", 6), Offer("c1", "a2", NOW + 30)]


# --- escalation -----------------------------------------------------------------------------------


def test_escalates_outside_business_hours() -> None:
    s = state(
        [agent("a1", teams=frozenset({"billing"}))],
        [conv("c1", team="billing"), conv("c2")],
        closed_teams=frozenset({"billing"}),
    )
    decisions = decide(s, NOW)
    assert escalations(decisions) == {"c1": "outside_business_hours"}
    assert offers(decisions) == {"c2": "a1"}


def test_escalates_after_max_wait() -> None:
    queue = [
        conv("c1", enqueued_at=NOW - 120, max_wait_s=120),
        conv("c2", enqueued_at=NOW - 119, max_wait_s=120),
    ]
    decisions = decide(state([agent("a1", capacity=1, active=1)], queue), NOW)
    assert escalations(decisions) == {"c1": "max_wait_exceeded"}
    assert list(positions(decisions)) == ["c2"]


def test_escalates_when_nobody_is_online() -> None:
    s = state([agent("a1", status="away"), agent("a2", status="offline")], [conv("c1")])
    assert decide(s, NOW) == [Escalate("c1", "no_agent_eligible")]


def test_escalates_when_nobody_in_team_has_the_skill_even_after_relaxation() -> None:
    agents = [agent("a1", teams=frozenset({"t"}), skills={"tax": 2}), agent("a2", skills={"tax": 5})]
    c = conv("c1", team="t", skills={"tax": 3})
    assert escalations(decide(state(agents, [c]), NOW)) == {"c1": "no_agent_eligible"}


def test_waits_when_a_step_will_expire_into_an_eligible_agent() -> None:
    step = RelaxStep(SkillRequirement("tax", 5), 60)
    c = conv("c1", enqueued_at=NOW, skills={"tax": 2}, relax_steps=(step,))
    s = state([agent("a1", skills={"tax": 2})], [c])
    assert decide(s, NOW) == [QueuePosition("c1", 1, estimate_wait(1, 3, 300))]
    assert offers(decide(s, NOW + 60)) == {"c1": "a1"}


def test_all_eligible_agents_busy_means_wait_not_escalation() -> None:
    s = state([agent("a1", capacity=2, active=2)], [conv("c1")])
    assert decide(s, NOW) == [QueuePosition("c1", 1, 150.0)]


def test_everyone_declined_escalates() -> None:
    s = state([agent("a1"), agent("a2")], [conv("c1", declined_by=frozenset({"a1", "a2"}))])
    assert escalations(decide(s, NOW)) == {"c1": "no_agent_eligible"}


# --- queue position -------------------------------------------------------------------------------


def test_positions_count_per_team_in_queue_order() -> None:
    agents = [
        agent("s", teams=frozenset({"sales"}), active=3),
        agent("b", teams=frozenset({"billing"}), capacity=1, active=1),
    ]
    queue = [
        conv("s2", team="sales", enqueued_at=2),
        conv("b1", team="billing", enqueued_at=1),
        conv("s1", team="sales", enqueued_at=1),
        conv("s3", team="sales", enqueued_at=0, priority=-1),
    ]
    got = {cid: p.position for cid, p in positions(decide(state(agents, queue), NOW)).items()}
    assert got == {"s1": 1, "s2": 2, "s3": 3, "b1": 1}


def test_estimated_wait_is_position_times_handle_time_over_eligible_slots() -> None:
    agents = [
        agent("a1", capacity=2, active=2),
        agent("a2", capacity=3, active=3),
        agent("x", capacity=9, active=9, skills={"other": 1}),
    ]
    queue = [conv(f"c{i}", enqueued_at=i, skills={}) for i in range(3)]
    got = positions(decide(state(agents, queue, avg_handle_s=200), NOW))
    assert [p.estimated_wait_s for p in got.values()] == [200 / 14, 400 / 14, 600 / 14]
    assert estimate_wait(2, 5, 300) == 120.0


def test_offered_and_escalated_conversations_get_no_position() -> None:
    queue = [conv("c1", enqueued_at=1), conv("c2", enqueued_at=2), conv("c3", enqueued_at=3, team="nobody")]
    decisions = decide(state([agent("a1", capacity=1)], queue), NOW)
    assert list(positions(decisions)) == ["c2"]


# --- the engine as a whole ------------------------------------------------------------------------


def test_decide_is_deterministic_and_ignores_input_order() -> None:
    agents = [agent(f"a{i}", capacity=2, idle_since=i % 3) for i in range(5)]
    queue = [conv(f"c{i}", enqueued_at=i % 4, priority=i % 2) for i in range(12)]
    first = decide(state(agents, queue), NOW)
    assert decide(state(agents, queue), NOW) == first
    assert decide(state(agents[::-1], queue[::-1]), NOW) == first


def test_decide_agrees_with_choose_agent_for_one_conversation() -> None:
    agents = [
        agent("a1", capacity=2, active=1, idle_since=5),
        agent("a2", capacity=2, active=1, idle_since=3),
    ]
    c = conv("c1")
    assert offers(decide(state(agents, [c]), NOW)) == {"c1": "a2"}
    assert choose_agent(c, agents, NOW) == agents[1]


def test_applying_decisions_reaches_a_fixed_point() -> None:
    agents = [agent("a1", capacity=2, active=1), agent("a2", capacity=1, active=1, consecutive_timeouts=2)]
    queue = [conv("c0", offer=PendingOffer("a2", NOW - 1))] + [
        conv(f"c{i}", enqueued_at=i) for i in range(1, 4)
    ]
    s = state(agents, queue)
    decisions = decide(s, NOW)
    after = apply_decisions(s, decisions)
    assert decide(after, NOW) == [d for d in decisions if isinstance(d, QueuePosition)]
    assert {a.id: (a.status, a.active) for a in after.agents} == {"a1": ("online", 2), "a2": ("away", 0)}


def test_apply_removes_escalated_conversations() -> None:
    s = state([], [conv("c1")])
    assert apply_decisions(s, decide(s, NOW)).queue == ()


def test_next_deadline_is_the_soonest_offer_step_or_max_wait() -> None:
    queue = [
        conv("c1", offer=PendingOffer("a1", NOW + 20)),
        conv(
            "c2",
            enqueued_at=NOW - 10,
            relax_steps=(RelaxStep(SkillRequirement("x", 2), 5), RelaxStep(SkillRequirement("x", 1), 25)),
        ),
        conv("c3", enqueued_at=NOW - 10, max_wait_s=40),
    ]
    assert next_deadline(state([], queue), NOW) == NOW + 15
    assert next_deadline(state([], queue[2:]), NOW) == NOW + 30
    assert next_deadline(state([], [conv("c4", offer=PendingOffer("a1", NOW))]), NOW) == NOW
    assert next_deadline(state([], [conv("c5")]), NOW) is None


# --- transfers and re-queueing --------------------------------------------------------------------


def test_transfer_to_team_drops_old_skills_and_never_returns_to_sender() -> None:
    original = conv(
        "c1", team="support", skills={"tech": 4}, preferred_agent_id="sender", offer=PendingOffer("x", 1)
    )
    moved = transfer_to_team(original, "billing", NOW, from_agent_id="sender")
    assert (moved.team, dict(moved.skills), moved.declined_by) == ("billing", {}, frozenset({"sender"}))
    assert (moved.enqueued_at, moved.offer, moved.requeued) == (NOW, None, True)
    agents = [
        agent("sender", teams=frozenset({"billing"}), capacity=9),
        agent("b1", teams=frozenset({"billing"})),
    ]
    assert offers(decide(state(agents, [moved]), NOW)) == {"c1": "b1"}


def test_transfer_to_skills_keeps_team() -> None:
    moved = transfer_to_skills(conv("c1", team="support", skills={"tech": 4}), {"refunds": 2}, NOW)
    assert (moved.team, dict(moved.skills), moved.declined_by) == ("support", {"refunds": 2}, frozenset())


def test_requeue_goes_to_front_and_keeps_previous_agent_preferred() -> None:
    back = requeue(
        conv(
            "c1",
            enqueued_at=1,
            preferred_agent_id="gone",
            relax_steps=(RelaxStep(SkillRequirement("x", 5), 30),),
        ),
        NOW,
    )
    assert (back.requeued, back.enqueued_at, back.relax_steps, back.preferred_agent_id) == (
        True,
        NOW,
        (),
        "gone",
    )
    assert queue_order([conv("first", enqueued_at=0), back])[0] is back


# --- input values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("billing>=3", SkillRequirement("billing", 3)),
        ("language:de>=4", LanguageRequirement("de", 4)),
        ("language:pt-BR", LanguageRequirement("pt-BR", 1)),
        (" vip ", SkillRequirement("vip", 1)),
    ],
)
def test_parse_requirement(text: str, expected: object) -> None:
    assert parse_requirement(text) == expected
    assert parse_requirement(str(expected)) == expected


@pytest.mark.parametrize("text", ["", "billing>3", "billing>=0", "billing>=6", "language:>=2", "a b"])
def test_parse_requirement_rejects_bad_text(text: str) -> None:
    with pytest.raises(ValueError):
        parse_requirement(text)


@pytest.mark.parametrize(
    "build",
    [
        lambda: AgentState("a1", status="busy"),
        lambda: AgentState("a1", skills={"x": 6}),
        lambda: AgentState("a1", capacity=-1),
        lambda: QueuedConversation("c1", 0.0, skills={"x": 0}),
        lambda: QueuedConversation("c1", 0.0, preferred_only=True),
        lambda: RoutingState(agents=(AgentState("a1"), AgentState("a1"))),
        lambda: RoutingState(queue=(QueuedConversation("c1", 0), QueuedConversation("c1", 1))),
        lambda: RoutingState(rona_threshold=0),
    ],
)
def test_bad_input_values_are_refused(build: Any) -> None:
    with pytest.raises(ValueError):
        build()


def test_public_api_is_exactly_all() -> None:
    public = {
        name
        for name, value in vars(routing).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    assert public == set(routing.__all__)


def test_past_grace_tracks_absences_and_forgets_returns() -> None:
    since, due = past_grace({}, ["a", "b"], now=100.0, grace_s=30.0)
    assert since == {"a": 100.0, "b": 100.0} and due == []
    since, due = past_grace(since, ["a", "b"], now=129.9, grace_s=30.0)
    assert due == []
    since, due = past_grace(since, ["a"], now=130.0, grace_s=30.0)  # b came back: forgotten
    assert since == {"a": 100.0} and due == ["a"]
    since, due = past_grace(since, ["b"], now=140.0, grace_s=30.0)  # b left again: a new grace period
    assert since == {"b": 140.0} and due == []
