"""Two server processes on PostgreSQL + Redis number tickets without a clash."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import Client, ServerProcess, seed, visitor_token
from tests.services import REDIS_PREFIX

pytestmark = pytest.mark.slow


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


async def test_a_visitor_gone_timer_lost_in_a_crash_is_made_good_after_the_restart(
    tmp_path: Path, procs: list[ServerProcess]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gone.db'}"
    s = await seed(url)
    env = {
        "DATABASE_URL": url,
        "CHATSERVER_DATA_DIR": str(tmp_path / "data"),
        "CHATSERVER_SECRET_KEY": "k" * 40,
        "CHATSERVER_ROUTING": "offers",
        "CHATSERVER_VISITOR_GONE_S": "3",
    }
    server = ServerProcess(env=env, log=tmp_path / "server.log")
    procs.append(server)
    server.start()
    headers = {"Authorization": f"Bearer {s.admin_token}"}
    async with httpx.AsyncClient(timeout=30) as http:
        tok = (await visitor_token(http, server.url, s.inbox_key))["token"]
        async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
            cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
            await v.expect("conversation", conversation__status="pending", timeout=15)
            sent = await v.request(
                {"type": "message.send", "conversation_id": cid, "client_id": "m1", "text": "Call me"}
            )
            assert sent["type"] == "ack"
        # the visitor left; the process dies before its 3 s timer fires
        server.kill(signal.SIGKILL)
        server.start()
        conv = (await http.get(f"{server.url}/api/v1/conversations/{cid}", headers=headers)).json()
        assert conv["ticket"] is None and conv["status"] == "pending"  # the timer died with the process
        async with asyncio.timeout(30):
            while True:  # the restarted process's sweep finds it
                conv = (await http.get(f"{server.url}/api/v1/conversations/{cid}", headers=headers)).json()
                # the ticket is linked, then the conversation resolved: wait for both
                if conv["ticket"] is not None and conv["status"] == "resolved":
                    break
                await asyncio.sleep(0.2)
        ticket = (
            await http.get(f"{server.url}/api/v1/tickets/{conv['ticket']['number']}", headers=headers)
        ).json()
        assert ticket["subject"] == "Call me" and ticket["conversation_id"] == cid
        listed = await http.get(
            f"{server.url}/api/v1/tickets", params={"requester": ticket["requester_id"]}, headers=headers
        )
        assert len(listed.json()["items"]) == 1  # made once
