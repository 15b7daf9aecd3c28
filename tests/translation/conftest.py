"""Fixtures: a fake provider server per wire format with the matching real client; Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tests.services import unavailable

from .fakes import serve
from .helpers import WIRES, RedisTarget, Wire, make_fake


@pytest.fixture(params=WIRES)
async def wire(request: pytest.FixtureRequest) -> AsyncIterator[Wire]:
    async with serve(make_fake(request.param)) as fake, httpx.AsyncClient(timeout=5.0) as http:
        w = Wire(request.param, fake, http)
        try:
            yield w
        finally:
            fake.release()
            await w.close()


@pytest.fixture
async def redis_target() -> AsyncIterator[RedisTarget]:
    """The real Redis at 127.0.0.1:6379 with a unique key prefix; our keys are deleted after."""
    client = aioredis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1.0, socket_timeout=2.0)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        unavailable("Redis at 127.0.0.1:6379", exc)  # a failure under CI=true, a skip elsewhere
    prefix = f"test:chatserver:translation:{uuid.uuid4().hex}:"
    try:
        yield RedisTarget(client, prefix)
    finally:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
