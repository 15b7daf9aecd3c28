"""The routing engine: state and ``now`` in, decisions out. No I/O, no clock, no randomness.

:func:`decide` is the whole engine; :func:`queue_order`, :func:`is_eligible` and :func:`choose_agent` are
the same rules for one conversation, usable on their own (and by tests). The shell (routing service)
builds a :class:`~chatserver.routing.model.RoutingState` from the database, calls :func:`decide`,
applies each decision with a compare-and-set, and calls again on the next event or at
:func:`next_deadline`. :func:`apply_decisions` is the same application on plain data.

Rules (docs: DESIGN.md "Routing"):

- Queue order: priority (higher first); a re-queued conversation (its agent disconnected) first within
  its priority; then SLA due time (sooner first, conversations with an SLA before those without); then
  enqueue time (FIFO); then id.
- Eligible: online; ``active < capacity`` (offers made earlier in the same call count); in the team, if
  any; every required skill at its level, where relaxation steps still in force raise the levels; while a
  ``language:xx>=N`` step is in force, speaks xx at N or more; otherwise speaks the visitor's language at
  any level or translation supports (visitor language, one of the agent's languages); not in
  ``declined_by``/``timed_out_by``; not the holder of the conversation's (expired) offer; with
  ``preferred_only``, the preferred agent only.
- Choice: the preferred agent if eligible; then agents who speak the visitor's language before those who
  need translation ("native first"); then most free capacity; then idle longest; then id.
- Escalate, in this order: team outside business hours; waited ``max_wait_s`` or more; no online agent
  could ever be eligible (all relaxation steps expired, current load ignored). A conversation whose
  eligible agents are merely busy waits and gets a :class:`QueuePosition`.
- Queue position: 1-based, among the still-waiting conversations of the same team (conversations
  without a team form one group), in queue order. Estimated wait: see :func:`estimate_wait`.
- Pending (routing gave up on it): while its visitor is present (connected, or active within
  ``requeue_window_s``), it competes as a re-queued conversation (:func:`unpend`: the front of its
  priority, by its original arrival); when an eligible agent is free it gets :class:`BackToQueue` then
  an :class:`Offer`, otherwise nothing (it is not escalated again and gets no queue position). A pending
  conversation whose visitor left is :func:`unattended` (for the shell to turn into a ticket).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import NamedTuple

from chatserver.routing.model import (
    AgentState,
    BackToQueue,
    Decision,
    Escalate,
    Offer,
    OfferExpired,
    PendingConversation,
    PendingOffer,
    QueuedConversation,
    QueuePosition,
    RoutingState,
    SetAway,
    SkillRequirement,
)

_NO_PAIRS: frozenset[tuple[str, str]] = frozenset()


# --- queue order ----------------------------------------------------------------------------------


def _order_key(conv: QueuedConversation) -> tuple[int, bool, bool, float, float, str]:
    sla = conv.sla_due_at
    return (-conv.priority, not conv.requeued, sla is None, sla or 0.0, conv.enqueued_at, conv.id)


def queue_order(queue: Iterable[QueuedConversation]) -> list[QueuedConversation]:
    """The queue in routing order. Time to SLA breach is ``sla_due_at - now``, so ordering by
    ``sla_due_at`` is the same at every ``now`` and the order needs no clock."""
    return sorted(queue, key=_order_key)


# --- requirements in force ------------------------------------------------------------------------


class _Need(NamedTuple):
    """What an agent must satisfy, independent of load: hashable, so agents are scanned once per need."""

    team: str | None
    skills: tuple[tuple[str, int], ...]
    strict_languages: tuple[tuple[str, int], ...]
    relaxed_language: str | None
    """The visitor's language when no step on it is in force: speak it or translate from it."""


def _need(conv: QueuedConversation, now: float | None) -> _Need:
    """The requirements in force at ``now``; ``now=None`` means after every relaxation step expired."""
    skills = dict(conv.skills)
    strict: dict[str, int] = {}
    if now is not None and conv.relax_steps:
        waited = now - conv.enqueued_at
        for step in conv.relax_steps:
            if not step.in_force(waited):
                continue
            req = step.requirement
            if isinstance(req, SkillRequirement):
                skills[req.skill] = max(skills.get(req.skill, 0), req.min_level)
            else:
                strict[req.language] = max(strict.get(req.language, 0), req.min_level)
    language = conv.language
    relaxed = language if language is not None and language not in strict else None
    return _Need(conv.team, tuple(sorted(skills.items())), tuple(sorted(strict.items())), relaxed)


def _translatable(language: str, agent_languages: Iterable[str], pairs: frozenset[tuple[str, str]]) -> bool:
    return any((language, own) in pairs for own in agent_languages)


def _fits(agent: AgentState, need: _Need, pairs: frozenset[tuple[str, str]]) -> bool:
    """Team, skills and language: the load-independent part of eligibility."""
    if need.team is not None and need.team not in agent.teams:
        return False
    skills = agent.skills
    for name, level in need.skills:
        if skills.get(name, 0) < level:
            return False
    languages = agent.languages
    for code, level in need.strict_languages:
        if languages.get(code, 0) < level:
            return False
    lang = need.relaxed_language
    return lang is None or lang in languages or _translatable(lang, languages, pairs)


def _speaks(agent: AgentState, language: str | None) -> bool:
    return language is None or agent.languages.get(language, 0) >= 1


def _excluded(conv: QueuedConversation) -> frozenset[str]:
    excluded = conv.declined_by | conv.timed_out_by
    if conv.offer is not None:
        excluded |= {conv.offer.agent_id}
    return excluded


# --- one conversation -----------------------------------------------------------------------------


def is_eligible(
    agent: AgentState,
    conversation: QueuedConversation,
    now: float,
    translation_pairs: frozenset[tuple[str, str]] = _NO_PAIRS,
) -> bool:
    """Whether ``agent`` may be offered ``conversation`` now (the holder of its offer may not)."""
    return _eligible(
        agent, conversation, _need(conversation, now), _excluded(conversation), translation_pairs
    )


def _eligible(
    agent: AgentState,
    conv: QueuedConversation,
    need: _Need,
    excluded: frozenset[str],
    pairs: frozenset[tuple[str, str]],
) -> bool:
    if agent.status != "online" or agent.active >= agent.capacity or agent.id in excluded:
        return False
    if conv.preferred_only and agent.id != conv.preferred_agent_id:
        return False
    return _fits(agent, need, pairs)


def _rank(agent: AgentState, conversation: QueuedConversation) -> tuple[bool, bool, int, float, str]:
    """Smaller is better: preferred, speaks the language, most free capacity, idle longest, id."""
    return (
        agent.id != conversation.preferred_agent_id,
        not _speaks(agent, conversation.language),
        -agent.free,
        agent.idle_since,
        agent.id,
    )


def choose_agent(
    conversation: QueuedConversation,
    agents: Iterable[AgentState],
    now: float,
    translation_pairs: frozenset[tuple[str, str]] = _NO_PAIRS,
) -> AgentState | None:
    """The agent to offer ``conversation`` to next, or None if nobody is eligible now."""
    need, excluded = _need(conversation, now), _excluded(conversation)
    eligible = [a for a in agents if _eligible(a, conversation, need, excluded, translation_pairs)]
    if not eligible:
        return None
    return min(eligible, key=lambda a: _rank(a, conversation))


def translation_target(
    agent: AgentState, language: str | None, translation_pairs: frozenset[tuple[str, str]]
) -> str | None:
    """The agent language to translate the visitor's ``language`` into, or None when the agent speaks
    it (or nothing supports it): the agent's best-spoken supported language, ties by code."""
    if language is None or _speaks(agent, language):
        return None
    usable = [
        (-level, code) for code, level in agent.languages.items() if (language, code) in translation_pairs
    ]
    return min(usable)[1] if usable else None


def estimate_wait(position: int, eligible_slots: int, avg_handle_s: float) -> float:
    """Estimated seconds until an offer: ``position * avg_handle_s / eligible_slots``.

    ``eligible_slots`` is the summed capacity of the online agents who could take the conversation.
    With every slot busy, slots free at a rate of ``eligible_slots / avg_handle_s`` per second, and
    ``position`` of them must free before this conversation's turn (the M/M/c waiting-line estimate).
    """
    return position * avg_handle_s / max(eligible_slots, 1)


# --- pending conversations ------------------------------------------------------------------------


def visitor_present(pending: PendingConversation, now: float, window_s: float) -> bool:
    """Connected, or active no longer than ``window_s`` ago."""
    seen = pending.visitor_seen_at
    return pending.visitor_connected or (seen is not None and now - seen <= window_s)


def unpend(conversation: QueuedConversation) -> QueuedConversation:
    """A pending conversation as it returns to the queue: the front of its priority (``requeued``) by its
    original arrival (``enqueued_at`` kept), its relaxation steps and wait limit spent (dropped), and the
    agents who let an offer time out eligible again (they may be back); those who declined stay out."""
    return replace(
        conversation, offer=None, relax_steps=(), max_wait_s=None, timed_out_by=frozenset(), requeued=True
    )


def unattended(state: RoutingState, now: float) -> list[str]:
    """Pending conversations whose visitor is no longer present, in queue order: routing will not offer
    them again, so they are the ones to follow up some other way (a ticket)."""
    gone = [p.conversation for p in state.pending if not visitor_present(p, now, state.requeue_window_s)]
    return [c.id for c in queue_order(gone)]


# --- the whole queue ------------------------------------------------------------------------------


class _Roster:
    """The agents during one :func:`decide` call and their load as offers are made.

    Agents are found per distinct need, not per conversation: the agent ids meeting each single
    condition (team, skill at a level, language at a level, language speakable or translatable) are
    indexed once, a need's agents are the intersection of its conditions' sets, and the result is
    cached for every conversation with the same need.
    """

    def __init__(self, agents: Iterable[AgentState], pairs: frozenset[tuple[str, str]]) -> None:
        self._pairs = pairs
        self._by_id: dict[str, AgentState] = {a.id: a for a in agents}
        self._index: dict[tuple[str, str, int], frozenset[str]] = {}
        self.active: dict[str, int] = {aid: a.active for aid, a in self._by_id.items()}
        # need -> {agent id: (agent, needs translation)} for agents with free capacity (pruned lazily)
        self._free: dict[_Need, dict[str, tuple[AgentState, bool]]] = {}
        # need (all steps expired) -> ({agent id: capacity}, total capacity)
        self._ever: dict[_Need, tuple[dict[str, int], int]] = {}

    def _ids(self, kind: str, name: str, level: int = 0) -> frozenset[str]:
        key = (kind, name, level)
        ids = self._index.get(key)
        if ids is None:
            agents = self._by_id.values()
            if kind == "team":
                ids = frozenset(a.id for a in agents if name in a.teams)
            elif kind == "skill":
                ids = frozenset(a.id for a in agents if a.skills.get(name, 0) >= level)
            elif kind == "speaks":
                ids = frozenset(a.id for a in agents if a.languages.get(name, 0) >= level)
            else:  # "reads": speaks the visitor's language at any level, or translation supports it
                relaxed = _Need(None, (), (), name)
                ids = frozenset(a.id for a in agents if _fits(a, relaxed, self._pairs))
            self._index[key] = ids
        return ids

    def _scan(self, need: _Need) -> list[AgentState]:
        sets = [self._ids("skill", name, level) for name, level in need.skills]
        sets += [self._ids("speaks", code, level) for code, level in need.strict_languages]
        if need.team is not None:
            sets.append(self._ids("team", need.team))
        if need.relaxed_language is not None:
            sets.append(self._ids("reads", need.relaxed_language))
        if not sets:
            return list(self._by_id.values())
        sets.sort(key=len)
        return [self._by_id[aid] for aid in sets[0].intersection(*sets[1:])]

    def eligible_slots(self, conv: QueuedConversation, excluded: frozenset[str]) -> int:
        """Capacity of the online agents who could take ``conv`` once every step expired (load ignored)."""
        need = _need(conv, None)
        cached = self._ever.get(need)
        if cached is None:
            capacities = {a.id: a.capacity for a in self._scan(need)}
            cached = self._ever[need] = (capacities, sum(capacities.values()))
        capacities, total = cached
        if conv.preferred_only:
            target = conv.preferred_agent_id
            return capacities.get(target, 0) if target is not None and target not in excluded else 0
        return total - sum(capacities.get(agent_id, 0) for agent_id in excluded)

    def choose(self, conv: QueuedConversation, now: float, excluded: frozenset[str]) -> AgentState | None:
        need = _need(conv, now)
        candidates = self._free.get(need)
        active = self.active
        if candidates is None:
            candidates = self._free[need] = {
                a.id: (a, not _speaks(a, need.relaxed_language))
                for a in self._scan(need)
                if active[a.id] < a.capacity
            }
        full = [aid for aid, (a, _) in candidates.items() if active[aid] >= a.capacity]
        for aid in full:
            del candidates[aid]
        preferred = conv.preferred_agent_id
        if preferred is not None and preferred not in excluded and preferred in candidates:
            return candidates[preferred][0]
        if conv.preferred_only:
            return None
        best: AgentState | None = None
        best_key: tuple[bool, int, float, str] | None = None
        for aid, (agent, translated) in candidates.items():
            if aid in excluded:
                continue
            key = (translated, active[aid] - agent.capacity, agent.idle_since, aid)
            if best_key is None or key < best_key:
                best, best_key = agent, key
        return best


def decide(state: RoutingState, now: float) -> list[Decision]:
    """Every routing decision due at ``now``, deterministic for a given state.

    Output order: expired offers (each :class:`OfferExpired`, followed by :class:`SetAway` when it
    reaches the RONA threshold) in queue order; then :class:`Offer` / :class:`Escalate` in queue order
    (a pending conversation that returns: :class:`BackToQueue` right before its offer); then a
    :class:`QueuePosition` for every conversation still waiting, in queue order. A conversation
    with a live offer gets no decision. Applying the result (:func:`apply_decisions`) and deciding again
    at the same ``now`` yields only the same queue positions.
    """
    returning = {
        p.id: unpend(p.conversation) for p in state.pending if visitor_present(p, now, state.requeue_window_s)
    }
    ordered = queue_order((*state.queue, *returning.values()))
    agents = {a.id: a for a in state.agents}
    timeouts = {a.id: a.consecutive_timeouts for a in state.agents}
    freed: dict[str, int] = {}
    set_away: set[str] = set()
    decisions: list[Decision] = []
    waiting: list[QueuedConversation] = []

    for conv in ordered:
        offer = conv.offer
        if offer is not None and offer.expires_at > now:
            continue
        waiting.append(conv)
        if offer is None:
            continue
        agent = agents.get(offer.agent_id)
        count = timeouts.get(offer.agent_id, 0) + 1
        decisions.append(OfferExpired(conv.id, offer.agent_id, count))
        if agent is None:
            continue
        timeouts[agent.id] = count
        freed[agent.id] = freed.get(agent.id, 0) + 1
        threshold = state.rona_threshold
        if (
            threshold is not None
            and count >= threshold
            and agent.status == "online"
            and agent.id not in set_away
        ):
            set_away.add(agent.id)
            decisions.append(SetAway(agent.id, count))

    roster = _Roster(
        (
            replace(a, active=max(a.active - freed.get(a.id, 0), 0)) if a.id in freed else a
            for a in state.agents
            if a.status == "online" and a.capacity > 0 and a.id not in set_away
        ),
        state.translation_pairs,
    )
    still_waiting: list[tuple[QueuedConversation, int]] = []
    for conv in waiting:
        if conv.id in returning:
            _return(conv, roster, now, state, decisions)
            continue
        if conv.team is not None and conv.team in state.closed_teams:
            decisions.append(Escalate(conv.id, "outside_business_hours"))
            continue
        if conv.max_wait_s is not None and now - conv.enqueued_at >= conv.max_wait_s:
            decisions.append(Escalate(conv.id, "max_wait_exceeded"))
            continue
        excluded = _excluded(conv)
        slots = roster.eligible_slots(conv, excluded)
        if slots <= 0:
            decisions.append(Escalate(conv.id, "no_agent_eligible"))
            continue
        agent = roster.choose(conv, now, excluded)
        if agent is None:
            still_waiting.append((conv, slots))
            continue
        roster.active[agent.id] += 1
        target = translation_target(agent, conv.language, state.translation_pairs)
        decisions.append(Offer(conv.id, agent.id, now + state.offer_timeout_s, target))

    positions: dict[str | None, int] = {}
    for conv, slots in still_waiting:
        position = positions[conv.team] = positions.get(conv.team, 0) + 1
        decisions.append(QueuePosition(conv.id, position, estimate_wait(position, slots, state.avg_handle_s)))
    return decisions


def _return(
    conv: QueuedConversation, roster: _Roster, now: float, state: RoutingState, decisions: list[Decision]
) -> None:
    """A pending conversation whose visitor is present: back to the queue only with an agent free now."""
    if conv.team is not None and conv.team in state.closed_teams:
        return
    agent = roster.choose(conv, now, _excluded(conv))
    if agent is None:
        return
    roster.active[agent.id] += 1
    target = translation_target(agent, conv.language, state.translation_pairs)
    decisions.append(BackToQueue(conv.id))
    decisions.append(Offer(conv.id, agent.id, now + state.offer_timeout_s, target))


def next_deadline(state: RoutingState, now: float) -> float | None:
    """When :func:`decide` should run next if nothing else happens (an offer expires, a relaxation step
    expires, a maximum wait runs out); ``now`` if something is already due; None if nothing is pending.
    Business-hours changes and agent events are the shell's to signal."""
    soonest: float | None = None
    for conv in state.queue:
        if conv.offer is not None:
            due_now = [conv.offer.expires_at]
            later: list[float] = due_now
        else:
            due_now = [] if conv.max_wait_s is None else [conv.enqueued_at + conv.max_wait_s]
            later = due_now + [conv.enqueued_at + step.expires_after_s for step in conv.relax_steps]
        if any(t <= now for t in due_now):
            return now
        for t in later:
            if t > now and (soonest is None or t < soonest):
                soonest = t
    return soonest


# --- applying decisions and re-routing ------------------------------------------------------------


def apply_decisions(state: RoutingState, decisions: Iterable[Decision]) -> RoutingState:
    """The state after the shell carried out ``decisions`` (offers made, expired offers withdrawn,
    agents set away, escalated conversations removed, pending ones returned to the queue). Raises
    KeyError for an unknown conversation."""
    agents: dict[str, AgentState] = {a.id: a for a in state.agents}
    queue: dict[str, QueuedConversation] = {c.id: c for c in state.queue}
    pending: dict[str, PendingConversation] = {p.id: p for p in state.pending}
    for decision in decisions:
        match decision:
            case BackToQueue(conversation_id=cid):
                queue[cid] = unpend(pending.pop(cid).conversation)
            case Offer(conversation_id=cid, agent_id=aid, expires_at=expires_at):
                queue[cid] = replace(queue[cid], offer=PendingOffer(aid, expires_at))
                agents[aid] = replace(agents[aid], active=agents[aid].active + 1)
            case OfferExpired(conversation_id=cid, agent_id=aid, consecutive_timeouts=count):
                conv = queue[cid]
                queue[cid] = replace(conv, offer=None, timed_out_by=conv.timed_out_by | {aid})
                if aid in agents:
                    agent = agents[aid]
                    agents[aid] = replace(agent, active=max(agent.active - 1, 0), consecutive_timeouts=count)
            case SetAway(agent_id=aid):
                agents[aid] = replace(agents[aid], status="away")
            case Escalate(conversation_id=cid):
                del queue[cid]
            case QueuePosition():
                pass
    return replace(
        state, agents=tuple(agents.values()), queue=tuple(queue.values()), pending=tuple(pending.values())
    )


def requeue(conversation: QueuedConversation, now: float) -> QueuedConversation:
    """Give back a conversation whose agent disconnected (after the grace period), or start a transfer:
    the front of its priority, the wait (``max_wait_s``) counted from ``now``, relaxation already done
    (the steps are dropped, the permanent skills stay), the previous agent still preferred."""
    return replace(conversation, enqueued_at=now, offer=None, relax_steps=(), requeued=True)


def transfer_to_agent(conversation: QueuedConversation, agent_id: str, now: float) -> QueuedConversation:
    """Offer to this agent only; team and skills no longer apply (the sender chose the agent). If the
    agent is offline, declines or lets the offer expire, :func:`decide` escalates it
    (``no_agent_eligible``); the shell may prefer :func:`transfer_to_team` then."""
    return replace(
        requeue(conversation, now),
        team=None,
        skills={},
        preferred_agent_id=agent_id,
        preferred_only=True,
        declined_by=frozenset(),
        timed_out_by=frozenset(),
    )


def transfer_to_team(
    conversation: QueuedConversation,
    team: str,
    now: float,
    *,
    skills: Mapping[str, int] | None = None,
    from_agent_id: str | None = None,
) -> QueuedConversation:
    """Route within ``team`` with ``skills`` (default none; the old team's skills do not carry over),
    never back to ``from_agent_id``."""
    return _transfer(conversation, team, dict(skills or {}), now, from_agent_id)


def transfer_to_skills(
    conversation: QueuedConversation,
    skills: Mapping[str, int],
    now: float,
    *,
    from_agent_id: str | None = None,
) -> QueuedConversation:
    """Route within the same team to agents with ``skills``, never back to ``from_agent_id``."""
    return _transfer(conversation, conversation.team, dict(skills), now, from_agent_id)


def _transfer(
    conv: QueuedConversation,
    team: str | None,
    skills: dict[str, int],
    now: float,
    from_agent_id: str | None,
) -> QueuedConversation:
    return replace(
        requeue(conv, now),
        team=team,
        skills=skills,
        preferred_agent_id=None,
        preferred_only=False,
        declined_by=frozenset() if from_agent_id is None else frozenset({from_agent_id}),
        timed_out_by=frozenset(),
    )


def past_grace(
    absent_since: Mapping[str, float], absent: Iterable[str], now: float, grace_s: float
) -> tuple[dict[str, float], list[str]]:
    """Track disconnected agents who still hold conversations: when each was first seen absent (agents
    who came back are forgotten), and which have been absent for ``grace_s`` or longer (their
    conversations go back to the queue)."""
    since = {agent_id: absent_since.get(agent_id, now) for agent_id in absent}
    return since, sorted(agent_id for agent_id, t in since.items() if now - t >= grace_s)
