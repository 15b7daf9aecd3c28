"""The conversation state machine: every status change goes through :func:`transition`.

One table of legal moves; an illegal one raises :class:`~chatserver.errors.Conflict` so the caller
changes nothing. A store write that changes a status takes a :class:`Move` (built through
:func:`transition`, so it is legal from every status it accepts) and compares the row's current status
with ``Move.sources`` in the same statement.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from chatserver.errors import Conflict


class Status(enum.StrEnum):
    BOT = "bot"
    QUEUED = "queued"
    OFFERED = "offered"
    ASSIGNED = "assigned"
    PENDING = "pending"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"


OPEN_STATUSES = frozenset(s for s in Status if s is not Status.RESOLVED)
WAITING_STATUSES = frozenset({Status.QUEUED, Status.OFFERED, Status.PENDING})

_LEGAL: dict[Status, frozenset[Status]] = {
    Status.BOT: frozenset({Status.QUEUED, Status.ASSIGNED, Status.PENDING, Status.RESOLVED}),
    # queued -> queued: routed again with new requirements (a transfer to a team, skills or an agent)
    Status.QUEUED: frozenset(
        {Status.QUEUED, Status.OFFERED, Status.ASSIGNED, Status.PENDING, Status.RESOLVED}
    ),
    Status.OFFERED: frozenset({Status.QUEUED, Status.ASSIGNED, Status.PENDING, Status.RESOLVED}),
    Status.ASSIGNED: frozenset(
        {Status.QUEUED, Status.OFFERED, Status.ASSIGNED, Status.PENDING, Status.SNOOZED, Status.RESOLVED}
    ),
    Status.PENDING: frozenset({Status.QUEUED, Status.ASSIGNED, Status.RESOLVED}),
    Status.SNOOZED: frozenset({Status.QUEUED, Status.ASSIGNED, Status.RESOLVED}),
    Status.RESOLVED: frozenset({Status.QUEUED}),
}

CLAIMABLE = frozenset(s for s, targets in _LEGAL.items() if Status.ASSIGNED in targets)


def can_transition(current: Status, target: Status) -> bool:
    return target in _LEGAL[current]


def transition(current: Status, target: Status) -> Status:
    """Return ``target`` if moving there from ``current`` is legal, else raise Conflict."""
    if not can_transition(current, target):
        raise Conflict(f"a {current.value} conversation cannot become {target.value}")
    return target


@dataclass(frozen=True, slots=True)
class Move:
    """A status change, legal from each of ``sources`` to ``target`` (checked when built: an illegal one
    raises Conflict). Store writes take a Move and never write a status of their own."""

    sources: frozenset[Status]
    target: Status

    def __post_init__(self) -> None:
        if not self.sources:
            raise ValueError("a move needs at least one source status")
        for source in self.sources:
            transition(source, self.target)

    @classmethod
    def to(cls, target: Status, sources: Iterable[Status]) -> Move:
        return cls(frozenset(sources), target)

    @property
    def source_values(self) -> list[str]:
        return sorted(s.value for s in self.sources)
