"""Two server processes on PostgreSQL + Redis number tickets without a clash."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import ServerProcess, seed, visitor_token
from tests.services import REDIS_PREFIX

pytestmark = pytest.mark.slow


@pytest.fixture
def procs() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for p in started:
        p.kill()


async def test_two_processes_number_tickets_without_a_clash(
    tmp_path: Path, procs: list[ServerProcess], pg_url: str, redis_url: str
) -> None:
    s = await seed(pg_url)
    env = {
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_url,
        "CHATSERVER_REDIS_PREFIX": REDIS_PREFIX,
        "CHATSERVER_SECRET_KEY": "k" * 40,
        "CHATSERVER_ROUTING": "manual",
    }
    for name in ("a", "b"):
        p = ServerProcess(env=env, log=tmp_path / f"{name}.log")
        procs.append(p)
        p.start()
    headers = {"Authorization": f"Bearer {s.admin_token}"}
    async with httpx.AsyncClient(timeout=30) as http:
        contact = (await visitor_token(http, procs[0].url, s.inbox_key))["contact_id"]

        async def open_one(i: int) -> int:
            r = await http.post(
                f"{procs[i % 2].url}/api/v1/tickets",
                json={"requester_id": contact, "subject": f"call {i}"},
                headers=headers,
            )
            assert r.status_code == 201, r.text
            number: int = r.json()["number"]
            return number

        numbers = await asyncio.gather(*(open_one(i) for i in range(40)))
        assert len(set(numbers)) == 40
        assert max(numbers) - min(numbers) == 39  # one counter, no gaps, no clash
        listed = await http.get(
            f"{procs[1].url}/api/v1/tickets", params={"requester": contact, "limit": 200}, headers=headers
        )
        assert sorted(t["number"] for t in listed.json()["items"]) == sorted(numbers)
