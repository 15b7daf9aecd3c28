"""Ending an agent's sessions (password changes, reset-password), over SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

from chatserver.model.types import Role
from chatserver.store.store import Store


async def test_revoke_sessions_ends_all_but_the_kept_one_and_only_that_agents(store: Store) -> None:
    suffix = uuid.uuid4().hex[:8]
    ann = await store.create_agent(
        email=f"ann-{suffix}@x.test", name="Ann", role=Role.AGENT, password_hash=None
    )
    bob = await store.create_agent(
        email=f"bob-{suffix}@x.test", name="Bob", role=Role.AGENT, password_hash=None
    )
    for h, agent in (("a1", ann), ("a2", ann), ("a3", ann), ("b1", bob)):
        await store.create_session(f"{h}-{suffix}", agent.id, 3600)
    assert await store.revoke_sessions(ann.id, keep=f"a2-{suffix}") == 2
    alive = {h for h in ("a1", "a2", "a3", "b1") if await store.agent_for_session(f"{h}-{suffix}")}
    assert alive == {"a2", "b1"}
    assert await store.revoke_sessions(ann.id) == 1
    assert await store.agent_for_session(f"a2-{suffix}") is None
    assert await store.agent_for_session(f"b1-{suffix}") is not None
