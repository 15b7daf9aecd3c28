"""A manual assignment racing the router: the server retries its own compare-and-set, and the caller
sees ``conflict`` only when the conversation really went elsewhere. Over SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatserver.bus.memory import MemoryBus
from chatserver.chat import ChatService
from chatserver.errors import Conflict, Forbidden
from chatserver.model.ids import new_id, now_ms
from chatserver.model.status import Status
from chatserver.model.types import Agent, Conversation, Role
from chatserver.presence import MemoryPresence
from chatserver.store.store import Store
from tests.services import create_pg_database, drop_pg_database

ROUNDS = 40


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of this test's own: the routing fence it races on is shared by whatever else ran in
    the run's PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"
        return
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


async def _people(store: Store) -> tuple[Agent, Agent, Agent]:
    made = []
    for name, role in (("Sue", Role.SUPERVISOR), ("Bob", Role.AGENT), ("Cy", Role.AGENT)):
        made.append(
            await store.create_agent(email=f"{new_id()}@x.test", name=name, role=role, password_hash=None)
        )
    return made[0], made[1], made[2]


async def _conversation(store: Store) -> Conversation:
    inbox = await store.create_inbox(f"In {new_id()}")
    contact = await store.create_contact(name="V", channel="widget")
    return await store.create_conversation(inbox=inbox, contact_id=contact.id)


async def _churn(
    store: Store, conv_id: str, agent_id: str, token: int, stop: asyncio.Event, started: asyncio.Event
) -> int:
    """What the router does to a waiting conversation, much faster than it would: offer, expire, offer.
    ``started`` is set once it has written (so the claim always races a router that is writing)."""
    writes = 0
    while not stop.is_set():
        conv = await store.get_conversation(conv_id)
        if conv.status is Status.QUEUED:
            writes += await store.offer(conv, agent_id, 100, now_ms() + 60_000, token) is not None
        elif conv.status is Status.OFFERED:
            writes += await store.expire_offer(conv, token) is not None
        else:
            started.set()
            return writes
        if writes:
            started.set()
        # 2 ms between writes: still far faster than the router, which coalesces its cycles (50 ms) and
        # expires offers after seconds; a tight loop here made the claim a coin toss per attempt
        await asyncio.sleep(0.002)
    return writes


async def test_claim_succeeds_while_the_router_keeps_changing_the_conversation(store: Store) -> None:
    sue, bob, _ = await _people(store)
    service = ChatService(store, MemoryBus(), MemoryPresence(), routing="offers")
    token = await store.fence_token() + 1
    router_writes = 0
    for _ in range(ROUNDS):
        conv = await _conversation(store)
        stop, started = asyncio.Event(), asyncio.Event()
        churn = asyncio.create_task(_churn(store, conv.id, bob.id, token, stop, started))
        await started.wait()
        try:
            done = await service.claim(sue, conv.id)  # never "changed at the same time; try again"
        finally:
            stop.set()
            router_writes += await churn
        assert done.status is Status.ASSIGNED and done.assignee_id == sue.id
        stored = await store.get_conversation(conv.id)
        assert stored.status is Status.ASSIGNED and stored.assignee_id == sue.id and stored.offer_id is None
    assert router_writes > 0  # the router did write while the claims ran


async def test_claims_racing_each_other_one_wins_the_other_sees_conflict(store: Store) -> None:
    sue, bob, cy = await _people(store)
    service = ChatService(store, MemoryBus(), MemoryPresence(), routing="manual")
    for _ in range(ROUNDS // 4):
        conv = await _conversation(store)
        results = await asyncio.gather(
            service.claim(bob, conv.id), service.claim(cy, conv.id), return_exceptions=True
        )
        won = [r for r in results if isinstance(r, Conversation)]
        lost = [r for r in results if isinstance(r, BaseException)]
        assert len(won) == 1 and len(lost) == 1, results
        assert isinstance(lost[0], Conflict) and "someone else" in lost[0].message
        assert (await store.get_conversation(conv.id)).assignee_id == won[0].assignee_id
        again = await service.claim(sue, conv.id, won[0].assignee_id)  # already theirs: no change
        assert again.version == won[0].version


async def test_plain_agents_with_routing_on_take_only_what_routing_gave_up_on(store: Store) -> None:
    _, bob, _ = await _people(store)
    service = ChatService(store, MemoryBus(), MemoryPresence(), routing="offers")
    queued = await _conversation(store)
    with pytest.raises(Forbidden):
        await service.claim(bob, queued.id)
    with pytest.raises(Forbidden):  # (unknown ones too, as before)
        await service.claim(bob, "cv_unknown")
    token = await store.fence_token() + 1
    pending = await store.escalate(await _conversation(store), "no_agent_eligible", token)
    assert pending is not None and pending.status is Status.PENDING
    taken = await service.claim(bob, pending.id)
    assert taken.status is Status.ASSIGNED and taken.assignee_id == bob.id
    assert (await store.get_conversation(queued.id)).status is Status.QUEUED
