"""Two server processes over PostgreSQL + Redis: the bot is connected to one, the visitor to the other."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import ISSUED_SECRETS, Client, ServerProcess, run_cli, seed, visitor_token
from tests.services import REDIS_PREFIX

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]


def migrated(pg_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    """The two processes' environment (manual routing), the schema migrated."""
    env = {
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_url,
        "CHATSERVER_REDIS_PREFIX": REDIS_PREFIX,
        "CHATSERVER_SECRET_KEY": "k" * 40,
        "CHATSERVER_ROUTING": "manual",
        **extra,
    }
    assert run_cli(env, "migrate") == "database schema is current"
    return env


async def test_bot_on_one_process_visitor_on_the_other(
    tmp_path: Path, procs: list[ServerProcess], pg_url: str, redis_url: str
) -> None:
    s = await seed(pg_url)
    env = migrated(pg_url, redis_url, CHATSERVER_BOT_GRACE_S="1")
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


async def test_revoking_closes_the_adapter_sockets_on_every_process(
    tmp_path: Path, procs: list[ServerProcess], pg_url: str, redis_url: str
) -> None:
    """``chatserver revoke-adapter`` tells every process through Redis, and so does ``DELETE
    /api/v1/adapters/{id}`` on one process: the sockets open on the others close with 4401."""
    s = await seed(pg_url)
    env = migrated(pg_url, redis_url)
    made = [
        json.loads(
            run_cli(
                env, "create-adapter", "--name", name, "--kind", "channel", "--inbox", s.inbox_id, "--json"
            )
        )
        for name in ("By CLI", "By REST")
    ]
    for m in made:
        ISSUED_SECRETS.add(m["token"])
    a = ServerProcess(env=env, log=tmp_path / "a.log")
    b = ServerProcess(env=env, log=tmp_path / "b.log")
    for p in (a, b):
        procs.append(p)
        p.start()
    by_cli, by_rest = made
    async with (
        Client.connect(f"{a.ws}/ws/adapter?token={by_cli['token']}", origin=None) as cli_a,
        Client.connect(f"{b.ws}/ws/adapter?token={by_cli['token']}", origin=None) as cli_b,
        Client.connect(f"{b.ws}/ws/adapter?token={by_rest['token']}", origin=None) as rest_b,
    ):
        for ws in (cli_a, cli_b, rest_b):
            await ws.expect("snapshot")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chatserver.cli",
            "revoke-adapter",
            "--id",
            by_cli["id"],
            env={**os.environ, **env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0 and stdout.decode().strip() == f"revoked {by_cli['id']}", stderr
        assert b"close within" not in stderr  # told through the bus, not left to the next check
        assert await cli_a.closed_with(timeout=10) == 4401
        assert await cli_b.closed_with(timeout=10) == 4401
        async with httpx.AsyncClient() as http:
            r = await http.delete(
                f"{a.url}/api/v1/adapters/{by_rest['id']}",
                headers={"Authorization": f"Bearer {s.admin_token}"},
            )
            assert r.status_code == 200 and r.json()["revoked_at"] is not None, r.text
        assert await rest_b.closed_with(timeout=10) == 4401
    for p in (a, b):
        async with Client.connect(f"{p.ws}/ws/adapter?token={by_rest['token']}", origin=None) as ws:
            assert await ws.closed_with() == 4401


async def test_a_bot_back_on_another_process_gets_new_conversations_at_once(
    tmp_path: Path, procs: list[ServerProcess], pg_url: str, redis_url: str
) -> None:
    """B marks the bot away after the grace period; the bot then connects to A. A conversation started on B
    right away, before B's next look at presence, still goes to the bot: B asks presence itself."""
    s = await seed(pg_url)
    env = migrated(pg_url, redis_url, CHATSERVER_BOT_GRACE_S="4")  # B looks at presence once a second
    created = json.loads(
        run_cli(
            env,
            "create-adapter",
            "--name",
            "Late Bot",
            "--kind",
            "bot",
            "--inbox",
            s.inbox_id,
            "--bot-for",
            "--json",
        )
    )
    ISSUED_SECRETS.add(created["token"])
    a = ServerProcess(env=env, log=tmp_path / "a.log")
    b = ServerProcess(env=env, log=tmp_path / "b.log")
    for p in (a, b):
        procs.append(p)
        p.start()
    async with httpx.AsyncClient() as http:
        tok = (await visitor_token(http, b.url, s.inbox_key))["token"]
    await asyncio.sleep(5.5)  # longer than the grace period: B has marked the bot away
    async with (
        Client.connect(f"{a.ws}/ws/adapter?token={created['token']}", origin=None) as bot,
        Client.connect(f"{b.ws}/ws/visitor?token={tok}") as visitor,
    ):
        await bot.expect("snapshot")
        await visitor.expect("hello")
        cid = (await visitor.request({"type": "conversation.start"}))["conversation_id"]
        got = await bot.expect("conversation", conversation__id=cid, timeout=10)
        assert got["conversation"]["status"] == "bot"
