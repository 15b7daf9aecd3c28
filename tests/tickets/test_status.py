"""The ticket state machine, as a table: every (from, to) pair is either legal or a 409 naming the allowed."""

from __future__ import annotations

import pytest

from chatserver.errors import Conflict
from chatserver.tickets.status import (
    TicketStatus as S,
)
from chatserver.tickets.status import (
    allowed,
    merge_close,
    on_agent_reply,
    on_customer_reply,
    transition,
)

LEGAL = {
    (S.NEW, S.OPEN),
    (S.NEW, S.PENDING),
    (S.NEW, S.ON_HOLD),
    (S.NEW, S.SOLVED),
    (S.OPEN, S.PENDING),
    (S.OPEN, S.ON_HOLD),
    (S.OPEN, S.SOLVED),
    (S.PENDING, S.OPEN),
    (S.PENDING, S.ON_HOLD),
    (S.PENDING, S.SOLVED),
    (S.ON_HOLD, S.OPEN),
    (S.ON_HOLD, S.PENDING),
    (S.ON_HOLD, S.SOLVED),
    (S.SOLVED, S.OPEN),
    (S.SOLVED, S.CLOSED),
}


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("target", list(S))
def test_every_pair(current: S, target: S) -> None:
    if current is target or (current, target) in LEGAL:
        assert transition(current, target) is target
        return
    with pytest.raises(Conflict) as exc:
        transition(current, target)
    assert exc.value.data["allowed"] == sorted(t.value for c, t in LEGAL if c is current)
    assert f"a {current.value} ticket cannot become {target.value}" in exc.value.message


def test_closed_is_final_and_says_so() -> None:
    assert allowed(S.CLOSED) == []
    with pytest.raises(Conflict, match="it is final"):
        transition(S.CLOSED, S.OPEN)


def test_the_conflict_names_the_allowed_moves() -> None:
    with pytest.raises(Conflict, match="allowed: closed, open"):
        transition(S.SOLVED, S.PENDING)


def test_customer_replies() -> None:
    assert on_customer_reply(S.SOLVED, within_window=True) is S.OPEN
    assert on_customer_reply(S.SOLVED, within_window=False) is None  # a new, linked ticket
    assert on_customer_reply(S.CLOSED, within_window=True) is None
    assert on_customer_reply(S.PENDING, within_window=False) is S.OPEN
    assert on_customer_reply(S.ON_HOLD, within_window=False) is S.OPEN
    assert on_customer_reply(S.NEW, within_window=False) is S.NEW
    assert on_customer_reply(S.OPEN, within_window=False) is S.OPEN


def test_agent_replies_open_new_tickets_only() -> None:
    assert on_agent_reply(S.NEW) is S.OPEN
    assert [on_agent_reply(s) for s in (S.PENDING, S.ON_HOLD, S.SOLVED)] == [S.PENDING, S.ON_HOLD, S.SOLVED]


def test_merge_closes_anything_but_closed() -> None:
    assert {merge_close(s) for s in S if s is not S.CLOSED} == {S.CLOSED}
    with pytest.raises(Conflict):
        merge_close(S.CLOSED)


def test_public_apis_are_curated() -> None:
    from types import ModuleType

    from chatserver import outbox, tickets

    for package in (tickets, outbox):
        assert sorted(package.__all__) == package.__all__
        public = {
            name
            for name, value in vars(package).items()
            if not name.startswith("_") and not isinstance(value, ModuleType)
        }
        assert public == set(package.__all__)
