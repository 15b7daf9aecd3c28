"""Real services for tests: PostgreSQL and Redis on loopback.

On a laptop without them the tests that need them skip with the reason; under CI (CI=true) a missing
service is a failure, never a skip.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import uuid

import asyncpg
import pytest

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_PREFIX = f"t{uuid.uuid4().hex[:10]}:"
"""This test process's namespace in the shared Redis (keys and pub/sub channels), so runs never cross."""
IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(what: str, exc: BaseException) -> None:
    reason = f"{what} is not reachable ({type(exc).__name__}: {exc})"
    if IN_CI:
        pytest.fail(f"{reason}; CI must provide it", pytrace=False)
    pytest.skip(reason)


async def _pg_admin_async(sql: str) -> None:
    import asyncpg

    dsn = PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _pg_admin(sql: str) -> None:
    """Run one admin statement on a private event loop (callers may be inside a running loop)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, _pg_admin_async(sql)).result()


def create_pg_database() -> str:
    """Create a fresh database and return its SQLAlchemy URL."""
    name = "chatserver_t_" + uuid.uuid4().hex[:12]
    try:
        _pg_admin(f'CREATE DATABASE "{name}"')
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        unavailable("PostgreSQL", exc)
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def check_redis() -> str:
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
        client.ping()
        client.close()
    except (OSError, redis.RedisError) as exc:
        unavailable("Redis", exc)
    return REDIS_URL
