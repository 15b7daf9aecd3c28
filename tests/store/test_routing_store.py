"""Routing's compare-and-set operations over SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from chatserver.errors import Conflict, Forbidden
from chatserver.model.ids import new_id, now_ms
from chatserver.model.types import Agent, Conversation, Role
from chatserver.store.store import Store


async def _setup(store: Store, n: int) -> tuple[Agent, Agent, list[Conversation]]:
    inbox = await store.create_inbox("Routing")
    contact = await store.create_contact(name="V", channel="widget")
    a = await store.create_agent(email=f"{new_id()}@x.test", name="A", role=Role.AGENT, password_hash=None)
    b = await store.create_agent(email=f"{new_id()}@x.test", name="B", role=Role.AGENT, password_hash=None)
    convs = [await store.create_conversation(inbox=inbox, contact_id=contact.id) for _ in range(n)]
    return a, b, convs


async def test_concurrent_offers_never_exceed_capacity(store: Store) -> None:
    a, _, convs = await _setup(store, 6)
    token = await store.fence_token() + 1
    later = now_ms() + 60_000
    results = await asyncio.gather(*(store.offer(c, a.id, 2, later, token) for c in convs))
    assert sum(r is not None for r in results) == 2
    loads = {load.agent.id: load.active for load in await store.agent_loads()}
    assert loads[a.id] == 2


async def test_a_stale_leader_cannot_write(store: Store) -> None:
    a, b, convs = await _setup(store, 2)
    old = await store.fence_token() + 1
    new = old + 1
    later = now_ms() + 60_000
    assert await store.offer(convs[0], a.id, 5, later, new) is not None
    assert await store.offer(convs[1], b.id, 5, later, old) is None  # refused: an older token
    assert (await store.get_conversation(convs[1].id)).status == "queued"
    assert await store.escalate(convs[1], "no_agent_eligible", old) is None
    assert await store.fence_token() == new


async def test_the_same_conversation_is_never_offered_twice(store: Store) -> None:
    a, b, convs = await _setup(store, 1)
    token = await store.fence_token() + 1
    later = now_ms() + 60_000
    first, second = await asyncio.gather(
        store.offer(convs[0], a.id, 3, later, token), store.offer(convs[0], b.id, 3, later, token)
    )
    assert (first is None) != (second is None)


async def test_accept_and_decline_rules(store: Store) -> None:
    a, b, convs = await _setup(store, 2)
    token = await store.fence_token() + 1
    offered = await store.offer(convs[0], a.id, 3, now_ms() + 60_000, token)
    assert offered is not None and offered.offer_id is not None
    with pytest.raises(Forbidden):
        await store.accept_offer(offered.offer_id, b.id)
    done = await store.accept_offer(offered.offer_id, a.id)
    assert done.status == "assigned" and done.assignee_id == a.id and done.offer_id is None
    with pytest.raises(Conflict):
        await store.accept_offer(offered.offer_id, a.id)
    expired = await store.offer(convs[1], a.id, 3, now_ms() - 1, token)
    assert expired is not None and expired.offer_id is not None
    with pytest.raises(Conflict):
        await store.accept_offer(expired.offer_id, a.id)
    back = await store.decline_offer(expired.offer_id, a.id)
    assert back.status == "queued" and back.routing["declined_by"] == [a.id]
    mine = {c.id for c in convs}
    kinds = [k for cid, _, k in await store.assignment_log() if cid in mine]
    assert kinds.count("offer") == 2 and kinds.count("accept") == 1 and kinds.count("decline") == 1
