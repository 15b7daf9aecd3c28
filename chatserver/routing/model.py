"""Plain data for the routing engine: what goes in (agents, the queue) and what comes out (decisions).

Everything here is a frozen dataclass over built-in types. Times are float epoch seconds; the shell
converts from its own clock. Mappings (skills, languages) are read-only by convention: build a new value
with :func:`dataclasses.replace` instead of mutating one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from chatserver.model.levels import MAX_LEVEL, MIN_LEVEL, NAME_PATTERN

AGENT_STATUSES = frozenset({"online", "away", "offline"})
"""``AgentState.status`` values; ``chatserver.model.types.AgentStatus`` members compare equal to them."""

EscalationReason = Literal["no_agent_eligible", "outside_business_hours", "max_wait_exceeded"]


def _check_level(what: str, level: int) -> None:
    if not MIN_LEVEL <= level <= MAX_LEVEL:
        raise ValueError(f"{what}: level {level} is outside {MIN_LEVEL}-{MAX_LEVEL}")


def _check_levels(what: str, levels: Mapping[str, int]) -> None:
    for name, level in levels.items():
        _check_level(f"{what} {name!r}", level)


# --- requirements ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SkillRequirement:
    """The agent must have ``skill`` at ``min_level`` or above."""

    skill: str
    min_level: int = MIN_LEVEL

    def __post_init__(self) -> None:
        _check_level(f"skill {self.skill!r}", self.min_level)

    def __str__(self) -> str:
        return f"{self.skill}>={self.min_level}"


@dataclass(frozen=True, slots=True)
class LanguageRequirement:
    """The agent must speak ``language`` at ``min_level`` or above (no translation)."""

    language: str
    min_level: int = MIN_LEVEL

    def __post_init__(self) -> None:
        _check_level(f"language {self.language!r}", self.min_level)

    def __str__(self) -> str:
        return f"language:{self.language}>={self.min_level}"


Requirement = SkillRequirement | LanguageRequirement

_REQUIREMENT = re.compile(rf"(?P<lang>language:)?(?P<name>{NAME_PATTERN})(?:>=(?P<level>\d+))?")


def parse_requirement(text: str) -> Requirement:
    """Parse ``"billing>=3"`` or ``"language:de>=4"`` (the level defaults to 1). Raises ValueError."""
    match = _REQUIREMENT.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a routing requirement: {text!r} (expected 'skill>=N' or 'language:xx>=N')")
    level = int(match["level"]) if match["level"] is not None else MIN_LEVEL
    if match["lang"]:
        return LanguageRequirement(match["name"], level)
    return SkillRequirement(match["name"], level)


@dataclass(frozen=True, slots=True)
class RelaxStep:
    """A requirement that applies only while ``now - enqueued_at < expires_after_s``.

    Steps are independent: each has its own expiry measured from the enqueue time, so a ladder such as
    ``billing>=4`` for 30 s then ``billing>=2`` for 90 s is two steps. A skill step raises (never lowers)
    the conversation's permanent requirement for that skill while it is in force.
    """

    requirement: Requirement
    expires_after_s: float

    def in_force(self, waited_s: float) -> bool:
        return waited_s < self.expires_after_s


# --- input -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentState:
    """One agent as the router sees them.

    ``active`` counts conversations assigned *or offered* to the agent. ``idle_since`` is when they last
    became free (finished a conversation, came online); smaller means idle longer. The shell resets
    ``consecutive_timeouts`` to 0 when the agent accepts or declines an offer.
    """

    id: str
    status: str = "online"
    capacity: int = 1
    active: int = 0
    skills: Mapping[str, int] = field(default_factory=dict)
    languages: Mapping[str, int] = field(default_factory=dict)
    teams: frozenset[str] = frozenset()
    idle_since: float = 0.0
    consecutive_timeouts: int = 0

    def __post_init__(self) -> None:
        if self.status not in AGENT_STATUSES:
            raise ValueError(f"agent {self.id!r}: unknown status {self.status!r}")
        if self.capacity < 0 or self.active < 0 or self.consecutive_timeouts < 0:
            raise ValueError(f"agent {self.id!r}: capacity, active and timeouts must be >= 0")
        _check_levels(f"agent {self.id!r} skill", self.skills)
        _check_levels(f"agent {self.id!r} language", self.languages)

    @property
    def free(self) -> int:
        return self.capacity - self.active


@dataclass(frozen=True, slots=True)
class PendingOffer:
    """An offer made earlier and not yet answered."""

    agent_id: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class QueuedConversation:
    """A conversation waiting for an agent (status ``queued`` or ``offered``).

    ``skills`` are permanent minimum levels; ``relax_steps`` add requirements that expire. ``language``
    is the visitor's. ``preferred_agent_id`` is the contact's previous agent; with ``preferred_only``
    (a transfer to an agent) nobody else may take it. ``requeued`` marks a conversation given back by a
    disconnected agent or transferred: it goes to the front of its priority. Agents in ``declined_by``
    and ``timed_out_by`` are never offered it again.
    """

    id: str
    enqueued_at: float
    priority: int = 0
    sla_due_at: float | None = None
    team: str | None = None
    skills: Mapping[str, int] = field(default_factory=dict)
    language: str | None = None
    relax_steps: tuple[RelaxStep, ...] = ()
    preferred_agent_id: str | None = None
    preferred_only: bool = False
    declined_by: frozenset[str] = frozenset()
    timed_out_by: frozenset[str] = frozenset()
    offer: PendingOffer | None = None
    max_wait_s: float | None = None
    requeued: bool = False

    def __post_init__(self) -> None:
        _check_levels(f"conversation {self.id!r} skill", self.skills)
        if self.preferred_only and self.preferred_agent_id is None:
            raise ValueError(f"conversation {self.id!r}: preferred_only needs preferred_agent_id")


@dataclass(frozen=True, slots=True)
class PendingConversation:
    """A conversation routing gave up on (status ``pending``: nobody was eligible, its team was
    closed, or it waited too long), kept as it was queued (``enqueued_at`` is its original arrival).

    Its visitor is present while connected (``visitor_connected``) or for
    :attr:`RoutingState.requeue_window_s` after their last activity (``visitor_seen_at``); while present,
    the engine gives it back to the queue as soon as an eligible agent has a free slot.
    """

    conversation: QueuedConversation
    visitor_connected: bool = False
    visitor_seen_at: float | None = None

    @property
    def id(self) -> str:
        return self.conversation.id


@dataclass(frozen=True, slots=True)
class RoutingState:
    """Everything :func:`~chatserver.routing.engine.decide` needs.

    ``translation_pairs`` holds the (visitor language, agent language) pairs the configured translation
    provider supports (empty: no translation). ``closed_teams`` are the teams outside business hours now,
    computed by the shell from their calendars; a conversation without a team is never closed.
    ``rona_threshold`` consecutive offer timeouts set an agent away (None: never). ``avg_handle_s`` is the
    recent average handling time, used for the estimated wait. ``pending`` are the conversations routing
    gave up on, re-offered while their visitor is present (``requeue_window_s`` after their last activity).
    """

    agents: tuple[AgentState, ...] = ()
    queue: tuple[QueuedConversation, ...] = ()
    translation_pairs: frozenset[tuple[str, str]] = frozenset()
    closed_teams: frozenset[str] = frozenset()
    rona_threshold: int | None = 3
    offer_timeout_s: float = 30.0
    avg_handle_s: float = 300.0
    pending: tuple[PendingConversation, ...] = ()
    requeue_window_s: float = 0.0

    def __post_init__(self) -> None:
        if len({a.id for a in self.agents}) != len(self.agents):
            raise ValueError("duplicate agent id in routing state")
        ids = [c.id for c in self.queue] + [p.id for p in self.pending]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate conversation id in routing state")
        if self.offer_timeout_s <= 0 or self.avg_handle_s < 0:
            raise ValueError("offer_timeout_s must be > 0 and avg_handle_s >= 0")
        if self.requeue_window_s < 0:
            raise ValueError("requeue_window_s must be >= 0")
        if self.rona_threshold is not None and self.rona_threshold < 1:
            raise ValueError("rona_threshold must be >= 1 or None")


# --- output ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Offer:
    """Offer the conversation to the agent until ``expires_at``. ``translate_to`` is the agent language
    to translate into when the agent does not speak the visitor's language (None: no translation)."""

    conversation_id: str
    agent_id: str
    expires_at: float
    translate_to: str | None = None


@dataclass(frozen=True, slots=True)
class OfferExpired:
    """The agent let the offer time out; the conversation is routed again (in the same decide call).
    ``consecutive_timeouts`` is the agent's updated count, to persist."""

    conversation_id: str
    agent_id: str
    consecutive_timeouts: int


@dataclass(frozen=True, slots=True)
class SetAway:
    """RONA: the agent missed ``consecutive_timeouts`` offers in a row; set them away and tell them why."""

    agent_id: str
    consecutive_timeouts: int
    reason: str = "offer_timeouts"


@dataclass(frozen=True, slots=True)
class Escalate:
    """Take the conversation out of the queue: tell the visitor and offer to leave a message."""

    conversation_id: str
    reason: EscalationReason


@dataclass(frozen=True, slots=True)
class QueuePosition:
    """Where a still-waiting conversation stands (1-based) and roughly how long until an offer."""

    conversation_id: str
    position: int
    estimated_wait_s: float


@dataclass(frozen=True, slots=True)
class BackToQueue:
    """A pending conversation returns to the queue (front of its priority, by its original arrival):
    its visitor is present and an eligible agent is free. The :class:`Offer` for it follows at once.
    The shell persists what :func:`~chatserver.routing.engine.unpend` changed (steps, wait limit and
    timed-out agents cleared, ``requeued`` set)."""

    conversation_id: str


Decision = Offer | OfferExpired | SetAway | Escalate | QueuePosition | BackToQueue
