"""The ticket state machine: every status change goes through :func:`transition`.

::

    new ──► open ◄──► pending (waiting on the customer)
     │       ▲ ▲  ◄──► on_hold (waiting on a third party)
     │       │ └──────────────┐
     └──────►solved ─────► closed (final)

A customer's reply reopens a solved ticket (within the reopen window; after it, a new linked ticket is
opened instead). ``closed`` is final. Merging closes the merged ticket from any open state (see
:func:`merge_close`). An illegal move raises :class:`~chatserver.errors.Conflict` naming the allowed ones.
"""

from __future__ import annotations

import enum

from chatserver.errors import Conflict


class TicketStatus(enum.StrEnum):
    NEW = "new"
    OPEN = "open"
    PENDING = "pending"
    ON_HOLD = "on_hold"
    SOLVED = "solved"
    CLOSED = "closed"


S = TicketStatus

LEGAL: dict[TicketStatus, frozenset[TicketStatus]] = {
    S.NEW: frozenset({S.OPEN, S.PENDING, S.ON_HOLD, S.SOLVED}),
    S.OPEN: frozenset({S.PENDING, S.ON_HOLD, S.SOLVED}),
    S.PENDING: frozenset({S.OPEN, S.ON_HOLD, S.SOLVED}),
    S.ON_HOLD: frozenset({S.OPEN, S.PENDING, S.SOLVED}),
    S.SOLVED: frozenset({S.OPEN, S.CLOSED}),
    S.CLOSED: frozenset(),
}

ACTIVE = frozenset({S.NEW, S.OPEN, S.PENDING, S.ON_HOLD})
"""A contact's later messages thread into a ticket in one of these (or a solved one, within the window)."""
PAUSED = frozenset({S.PENDING, S.ON_HOLD})
"""The SLA clock does not run in these."""


def allowed(current: TicketStatus) -> list[str]:
    return sorted(s.value for s in LEGAL[current])


def can_transition(current: TicketStatus, target: TicketStatus) -> bool:
    return target in LEGAL[current]


def transition(current: TicketStatus, target: TicketStatus) -> TicketStatus:
    """``target`` if the move is legal (staying put is always fine), else Conflict naming the allowed."""
    if target is current or can_transition(current, target):
        return target
    allowed_now = allowed(current)
    raise Conflict(
        f"a {current.value} ticket cannot become {target.value}"
        + (f"; allowed: {', '.join(allowed_now)}" if allowed_now else "; it is final"),
        data={"field": "status", "allowed": allowed_now},
    )


def merge_close(current: TicketStatus) -> TicketStatus:
    """A merged ticket closes; only a closed one cannot be merged."""
    if current is S.CLOSED:
        raise Conflict("a closed ticket cannot be merged", data={"field": "status"})
    return S.CLOSED


def on_customer_reply(current: TicketStatus, *, within_window: bool) -> TicketStatus | None:
    """Where a customer's reply takes the ticket; None: open a new ticket linked to this one."""
    if current is S.CLOSED or (current is S.SOLVED and not within_window):
        return None
    if current in (S.PENDING, S.ON_HOLD, S.SOLVED):
        return S.OPEN
    return current


def on_agent_reply(current: TicketStatus) -> TicketStatus:
    """An agent's public reply takes a new ticket to open; other states stay."""
    return S.OPEN if current is S.NEW else current
