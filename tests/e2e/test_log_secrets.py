"""A whole scenario against a real server process logging at info: no credential reaches its log."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.typing import Origin, Subprotocol

from tests.e2e.harness import ORIGIN, PASSWORD, Client, ServerProcess, seed, visitor_token

pytestmark = pytest.mark.slow


async def test_no_issued_token_or_session_appears_in_the_server_log(tmp_path: Path) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"
    s = await seed(db)
    env = {
        "DATABASE_URL": db,
        "CHATSERVER_SECRET_KEY": "k" * 40,
        "CHATSERVER_LOG_LEVEL": "info",
        "CHATSERVER_ROUTING": "manual",
    }
    server = ServerProcess(env=env, log=tmp_path / "server.log")
    server.start()
    secrets = [s.admin_token, s.agent_token]
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            first = await visitor_token(http, server.url, s.inbox_key)
            renewed = await visitor_token(http, server.url, s.inbox_key, token=first["token"])
            secrets += [first["token"], renewed["token"]]
            login = await http.post(
                f"{server.url}/api/v1/auth/login",
                json={"email": s.agent_email, "password": PASSWORD},
                headers={"Origin": server.url},
            )
            assert login.status_code == 200, login.text
            secrets += [login.cookies["chatserver_session"], login.json()["csrf_token"]]
            bearer = {"Authorization": f"Bearer {s.agent_token}"}
            assert (await http.get(f"{server.url}/api/v1/auth/me", headers=bearer)).status_code == 200
            # a client that puts its API token in the URL of a REST call (refused, but logged)
            await http.get(f"{server.url}/api/v1/auth/me?token={s.admin_token}")
            await http.get(f"{server.url}/api/v1/nope?access_token={s.agent_token}")

            async with Client.connect(f"{server.ws}/ws/visitor?token={first['token']}") as v:
                cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
                ack = await v.request(
                    {"type": "message.send", "conversation_id": cid, "client_id": "c1", "text": "hi"}
                )
                assert ack["type"] == "ack"
            async with connect(
                f"{server.ws}/ws/visitor",
                origin=Origin(ORIGIN),
                subprotocols=[Subprotocol("chatserver.v1"), Subprotocol(f"token.{renewed['token']}")],
            ) as ws:
                assert "hello" in str(await ws.recv())
            async with Client.connect(f"{server.ws}/ws/agent?token={s.agent_token}", origin=None) as a:
                await a.expect("hello")
                assert (await a.request({"type": "conversation.claim", "conversation_id": cid}))[
                    "type"
                ] == "ack"
            async with Client.connect(f"{server.ws}/ws/agent", token=s.admin_token, origin=None) as a:
                await a.expect("hello")
            async with connect(
                f"{server.ws}/ws/agent",
                subprotocols=[Subprotocol("chatserver.v1"), Subprotocol(f"token.{s.agent_token}")],
            ) as ws:
                assert "hello" in str(await ws.recv())
            async with Client.connect(f"{server.ws}/ws/visitor?token={first['token']}x") as bad:
                assert await bad.closed_with() == 4401
    finally:
        server.stop()
    log = (tmp_path / "server.log").read_text()
    assert '"WebSocket /ws/visitor?token=[redacted]"' in log  # the access lines are there, masked
    assert "/api/v1/auth/me?token=[redacted]" in log
    leaked = [secret[:8] + "..." for secret in secrets if secret in log]
    assert leaked == [], leaked
