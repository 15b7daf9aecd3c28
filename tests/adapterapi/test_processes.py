"""Two server processes over PostgreSQL + Redis: the bot is connected to one, the visitor to the other."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import ISSUED_SECRETS, Client, ServerProcess, run_cli, seed, visitor_token
from tests.services import REDIS_PREFIX

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]


async def test_bot_on_one_process_visitor_on_the_other(
    tmp_path: Path, procs: list[ServerProcess], pg_url: str, redis_url: str
) -> None:
    s = await seed(pg_url)
    env = {
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_url,
        "CHATSERVER_REDIS_PREFIX": REDIS_PREFIX,
        "CHATSERVER_SECRET_KEY": "k" * 40,
        "CHATSERVER_ROUTING": "manual",
        "CHATSERVER_BOT_GRACE_S": "1",
    }
    assert run_cli(env, "migrate") == "database schema is current"
    created = json.loads(
        run_cli(
            env,
            "create-adapter",
            "--name",
            "Relay Bot",
            "--kind",
            "bot",
            "--inbox",
            s.inbox_id,
            "--bot-for",
            "--json",
        )
    )
    token = created["token"]
    ISSUED_SECRETS.add(token)
    a = ServerProcess(env=env, log=tmp_path / "a.log")
    b = ServerProcess(env=env, log=tmp_path / "b.log")
    for p in (a, b):
        procs.append(p)
        p.start()
    async with httpx.AsyncClient() as http:
        tok = (await visitor_token(http, b.url, s.inbox_key))["token"]
    async with (
        Client.connect(f"{a.ws}/ws/adapter?token={token}", origin=None) as bot,
        Client.connect(f"{b.ws}/ws/visitor?token={tok}") as visitor,
    ):
        await bot.expect("snapshot")
        await visitor.expect("hello")
        cid = (await visitor.request({"type": "conversation.start"}))["conversation_id"]
        assert (await bot.expect("conversation", conversation__id=cid, timeout=10))["conversation"][
            "status"
        ] == "bot"
        hi = await visitor.request(
            {"type": "message.send", "conversation_id": cid, "client_id": "v1", "text": "hi from B"}
        )
        assert (await bot.expect("message", seq=hi["seq"], timeout=10))["message"]["text"] == "hi from B"
        reply = await bot.request(
            {
                "type": "message.send",
                "conversation_id": cid,
                "client_id": "b1",
                "text": "hello from A",
                "actions": [{"id": "y", "label": "Yes"}],
            }
        )
        got = await visitor.expect("message", seq=reply["seq"], timeout=10)
        assert got["message"]["text"] == "hello from A" and got["message"]["actions"] == [
            {"id": "y", "label": "Yes"}
        ]
        # B sees the bot connected on A through Redis: several grace periods pass without a handoff
        await asyncio.sleep(3)
        async with httpx.AsyncClient() as http:
            r = await http.get(
                f"{b.url}/api/v1/conversations/{cid}", headers={"Authorization": f"Bearer {s.agent_token}"}
            )
        assert r.json()["status"] == "bot"
        await visitor.request(
            {"type": "message.send", "conversation_id": cid, "client_id": "v2", "text": "agent"}
        )
        queued = await bot.expect(
            "conversation", conversation__id=cid, conversation__status="queued", timeout=10
        )
        assert queued["conversation"]["handoff"]["reason"] == "visitor"
