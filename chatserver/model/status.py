"""The conversation state machine: every status change goes through :func:`transition`.

One table of legal moves; an illegal one raises :class:`~chatserver.errors.Conflict` so the caller
changes nothing.
"""

from __future__ import annotations

import enum

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
    Status.QUEUED: frozenset({Status.OFFERED, Status.ASSIGNED, Status.PENDING, Status.RESOLVED}),
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
