"""Every status change goes through the state machine: store writes take a Move, and the engine refuses
a raw write of ``conversations.status``. Each store path that changes a status is exercised here (so a
raw write added to any of them fails this file), over SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from chatserver.errors import Conflict
from chatserver.model.ids import new_id, now_ms
from chatserver.model.status import Move, Status, can_transition
from chatserver.model.types import Agent, Conversation, Role
from chatserver.store.moves import RawStatusWrite, status_update
from chatserver.store.schema import conversations
from chatserver.store.store import Store


async def _conv(store: Store) -> Conversation:
    inbox = await store.create_inbox(f"In {new_id()}")
    contact = await store.create_contact(name="V", channel="widget")
    return await store.create_conversation(inbox=inbox, contact_id=contact.id)


async def _agent(store: Store) -> Agent:
    return await store.create_agent(email=f"{new_id()}@x.test", name="A", role=Role.AGENT, password_hash=None)


def test_a_move_is_legal_from_every_source_or_cannot_be_built() -> None:
    assert Move.to(Status.QUEUED, {Status.PENDING, Status.ASSIGNED}).source_values == ["assigned", "pending"]
    with pytest.raises(Conflict):
        Move.to(Status.OFFERED, {Status.QUEUED, Status.RESOLVED})  # resolved -> offered is illegal
    with pytest.raises(ValueError):
        Move.to(Status.QUEUED, set())
    with pytest.raises(RawStatusWrite):
        status_update("cv_x", Move.to(Status.RESOLVED, {Status.QUEUED}), status="queued")


async def test_a_raw_status_write_is_refused_and_changes_nothing(store: Store) -> None:
    conv = await _conv(store)
    with pytest.raises(RawStatusWrite):
        async with store.db.write() as conn:
            await conn.execute(
                conversations.update().where(conversations.c.id == conv.id).values(status="resolved")
            )
    with pytest.raises(RawStatusWrite):  # executemany with the status in the parameters
        async with store.db.write() as conn:
            await conn.execute(
                conversations.update()
                .where(conversations.c.id == sa.bindparam("b_id"))
                .values(status=sa.bindparam("b_status")),
                [{"b_id": conv.id, "b_status": "resolved"}],
            )
    assert (await store.get_conversation(conv.id)).status is Status.QUEUED
    async with store.db.write() as conn:  # other columns are written freely
        await conn.execute(conversations.update().where(conversations.c.id == conv.id).values(priority=3))
    fresh = await store.get_conversation(conv.id)
    assert fresh.priority == 3 and fresh.version == conv.version


async def test_a_move_from_the_wrong_status_changes_nothing(store: Store) -> None:
    conv = await _conv(store)  # queued
    async with store.db.write() as conn:
        res = await conn.execute(status_update(conv.id, Move.to(Status.QUEUED, {Status.PENDING})))
    assert res.rowcount == 0
    assert (await store.get_conversation(conv.id)) == conv


async def test_every_store_path_moves_along_the_table(store: Store) -> None:
    """offer, expire, escalate, back to the queue, accept, requeue, decline, transfer, claim, close,
    reopen: each result is the expected status, reached by a legal transition, with version + 1."""
    agent = await _agent(store)
    token = await store.fence_token() + 1
    later = now_ms() + 60_000
    conv = await _conv(store)
    seen: list[Status] = [conv.status]

    def step(after: Conversation | None, expected: Status) -> Conversation:
        assert after is not None and after.status is expected
        assert can_transition(seen[-1], expected), (seen[-1], expected)
        seen.append(after.status)
        return after

    conv = step(await store.offer(conv, agent.id, 5, later, token), Status.OFFERED)
    conv = step((await store.expire_offer(conv, token) or (None, 0))[0], Status.QUEUED)
    conv = step(await store.escalate(conv, "no_agent_eligible", token), Status.PENDING)
    assert conv.pending_reason == "no_agent_eligible"
    conv = step(await store.return_to_queue(conv, token), Status.QUEUED)
    assert conv.pending_reason is None and conv.routing["requeued"] is True
    conv = step(await store.offer(conv, agent.id, 5, later, token), Status.OFFERED)
    assert conv.offer_id is not None
    conv = step(await store.accept_offer(conv.offer_id, agent.id), Status.ASSIGNED)
    conv = step(await store.requeue(conv, token), Status.QUEUED)
    conv = step(await store.offer(conv, agent.id, 5, later, token), Status.OFFERED)
    assert conv.offer_id is not None
    conv = step(await store.decline_offer(conv.offer_id, agent.id), Status.QUEUED)
    conv = step(await store.route_again(conv, dict(conv.routing), team=None, skills=None), Status.QUEUED)
    conv = step(
        await store.change_conversation(conv.id, Status.ASSIGNED, assignee_id=agent.id), Status.ASSIGNED
    )
    conv = step(await store.route_again(conv, dict(conv.routing), team=None, skills={"x": 2}), Status.QUEUED)
    conv = step(await store.change_conversation(conv.id, Status.RESOLVED), Status.RESOLVED)
    with pytest.raises(Conflict):  # illegal from resolved: nothing changes
        await store.change_conversation(conv.id, Status.OFFERED)
    with pytest.raises(Conflict):  # the transfer move does not start from resolved
        await store.route_again(conv, dict(conv.routing), team=None, skills=None)
    assert (await store.get_conversation(conv.id)).version == conv.version
    conv = step(await store.change_conversation(conv.id, Status.QUEUED), Status.QUEUED)
    assert len(seen) == 15
    kinds = [k for cid, _, k in await store.assignment_log() if cid == conv.id]
    assert kinds.count("unpend") == 1 and kinds.count("transfer") == 2
