from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from chatserver.store.db import Database, make_engine
from chatserver.store.migrate import upgrade
from chatserver.store.store import Store
from tests.e2e.harness import ServerProcess
from tests.services import check_redis, create_pg_database, drop_pg_database


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A database of our own on the real PostgreSQL, dropped at the end of the run."""
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture
def procs() -> Iterator[list[ServerProcess]]:
    """Server processes a test starts (tests/e2e/harness.py ``ServerProcess``), killed at its end."""
    started: list[ServerProcess] = []
    yield started
    for p in started:
        p.kill()


@pytest.fixture(scope="session")
def redis_url() -> str:
    return check_redis()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    engine = make_engine(database_url)
    await upgrade(engine)
    s = Store(Database(engine))
    await s.start()
    try:
        yield s
    finally:
        await s.close()
