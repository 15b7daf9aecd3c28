"""One throttle-store suite over memory and Redis (real Redis)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from chatserver.auth.throttle import Failures, MemoryThrottleStore, RedisThrottleStore, ThrottleStore
from tests.services import REDIS_PREFIX

T = 1_000_000.0


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[ThrottleStore]:
    if request.param == "memory":
        yield MemoryThrottleStore()
        return
    url: str = request.getfixturevalue("redis_url")
    client = aioredis.Redis.from_url(url)
    try:
        yield RedisThrottleStore(client, f"{REDIS_PREFIX}{uuid.uuid4().hex[:6]}:")
    finally:
        await client.aclose()


async def test_failures_count_per_key_and_clear(store: ThrottleStore) -> None:
    assert await store.get(["a", "b"]) == [None, None]
    await store.fail(["a", "b"], T, 60)
    await store.fail(["a"], T + 1.5, 60)
    assert await store.get(["a", "b", "c"]) == [Failures(2, T + 1.5), Failures(1, T), None]
    await store.clear("a")
    assert await store.get(["a", "b"]) == [None, Failures(1, T)]


async def test_redis_counts_are_shared_between_processes_and_expire(redis_url: str) -> None:
    prefix = f"{REDIS_PREFIX}{uuid.uuid4().hex[:6]}:"
    one, two = aioredis.Redis.from_url(redis_url), aioredis.Redis.from_url(redis_url)
    try:
        a, b = RedisThrottleStore(one, prefix), RedisThrottleStore(two, prefix)
        await a.fail(["k"], T, 60)
        await b.fail(["k"], T + 1, 60)
        assert await a.get(["k"]) == [Failures(2, T + 1)]
        ttl = await one.pttl(f"{prefix}login:k")
        assert 0 < ttl <= 60_000
    finally:
        await one.aclose()
        await two.aclose()


async def test_memory_store_is_bounded_and_forgets_expired_keys() -> None:
    store = MemoryThrottleStore(max_keys=3)
    for i in range(5):
        await store.fail([f"k{i}"], T + i, 60)
    assert await store.get(["k0", "k1", "k2", "k3", "k4"]) == [
        None,
        None,
        Failures(1, T + 2),
        Failures(1, T + 3),
        Failures(1, T + 4),
    ]
    await store.fail(["k2"], T + 100, 60)  # k3 and k4 expired at T + 63, T + 64; k2 counts anew
    assert await store.get(["k2", "k3", "k4"]) == [Failures(1, T + 100), None, None]


async def test_with_redis_unreachable_this_process_still_counts_failures() -> None:
    from tests.e2e.harness import free_port

    client = aioredis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
    try:
        store = RedisThrottleStore(client, f"{REDIS_PREFIX}down:")
        for i in range(3):
            await store.fail(["acct"], T + i, 60)
        assert await store.get(["acct", "other"]) == [Failures(3, T + 2), None]
        await store.clear("acct")
        assert await store.get(["acct"]) == [None]
    finally:
        await client.aclose()


async def test_failures_counted_during_an_outage_still_apply_when_redis_is_back(redis_url: str) -> None:
    from tests.e2e.harness import free_port

    prefix = f"{REDIS_PREFIX}{uuid.uuid4().hex[:6]}:"
    down = aioredis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
    up = aioredis.Redis.from_url(redis_url)
    try:
        store = RedisThrottleStore(down, prefix)
        for i in range(4):
            await store.fail(["acct"], T + i, 60)
        store._client = up  # the same process, Redis reachable again
        await store.fail(["acct"], T + 10, 60)
        assert await store.get(["acct"]) == [Failures(4, T + 10)]
    finally:
        await down.aclose()
        await up.aclose()
