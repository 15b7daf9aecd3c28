"""A rolling restart of one of two processes under load (PostgreSQL + Redis): the stopped process closes
its visitors' sockets with 1012 (service restart), they reconnect to either process while an agent keeps
writing, and every one resumes exactly (no gap, no duplicate). The scenario is tests/e2e/rolling.py; the
benchmark runs it with 1,000 visitors (``bench/scale.py --rolling``)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import ServerProcess, run_cli, seed
from tests.e2e.rolling import rolling_restart
from tests.services import REDIS_PREFIX, create_pg_database, drop_pg_database

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]

VISITORS = 50


@pytest.fixture
def own_pg() -> Iterator[str]:
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture
def procs() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for p in started:
        p.kill()


async def test_fifty_visitors_resume_exactly_across_a_rolling_restart(
    tmp_path: Path, procs: list[ServerProcess], own_pg: str, redis_url: str
) -> None:
    s = await seed(own_pg)
    env = {
        "DATABASE_URL": own_pg,
        "REDIS_URL": redis_url,
        "CHATSERVER_REDIS_PREFIX": REDIS_PREFIX,
        "CHATSERVER_SECRET_KEY": "k" * 40,
        "CHATSERVER_ROUTING": "manual",
        # one agent answers everyone at once: neither its frame rate nor its queue may stop it
        "CHATSERVER_RATE_LIMIT_PER_S": "10000",
        "CHATSERVER_RATE_LIMIT_BURST": "10000",
        "CHATSERVER_SEND_QUEUE": "10000",
    }
    assert run_cli(env, "migrate") == "database schema is current"
    for name in ("a", "b"):
        p = ServerProcess(env=env, log=tmp_path / f"{name}.log")
        procs.append(p)
        p.start()
    result = await rolling_restart(procs, s, VISITORS, rng=random.Random(5), scale=0.1)
    summary = result.summary()
    assert not result.gave_up, summary
    on_a = [v for v in result.visitors if v.home == 0]
    # the stopped process said "service restart" to each of its visitors, and they all came back
    assert all(v.closes[:1] == [1012] for v in on_a), [v.closes for v in on_a]
    assert result.moved >= len(on_a)
    # every visitor has each message of its conversation once, in order, up to the last one written
    assert summary["messages_lost"] == 0 and summary["duplicates"] == 0, summary
    for v in result.visitors:
        assert v.seqs == list(range(1, result.heads[v.cid] + 1)), (v.cid, v.closes, v.seqs)
    assert min(result.heads.values()) > 2, result.heads  # the agent wrote across the restart
