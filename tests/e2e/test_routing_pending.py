"""Pending conversations are offered again through a running server: when an agent comes online, when
the agent who let it time out is back, and not after the visitor left (until they come back)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatserver.model.types import AgentStatus
from tests.e2e.harness import Client, Seed, Server, run_server, seed, settings_for, visitor_token

FAST = {"routing": "offers", "offer_timeout_s": 1.0, "agent_grace_s": 0.6, "rona_threshold": 1}


@pytest.fixture
async def routed(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[tuple[Server, Seed]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"
    s = await seed(url)
    overrides: dict[str, Any] = {**FAST, **getattr(request, "param", {})}
    async with run_server(settings_for(url, tmp_path, **overrides)) as server:
        yield server, s


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _status(http: httpx.AsyncClient, server: Server, s: Seed, cid: str) -> str:
    r = await http.get(f"{server.url}/api/v1/conversations/{cid}", headers=auth(s.admin_token))
    status: str = r.json()["status"]
    return status


async def test_the_only_agent_away_then_online_gets_the_pending_conversation(
    routed: tuple[Server, Seed], http: httpx.AsyncClient
) -> None:
    server, s = routed
    async with Client.connect(f"{server.ws}/ws/agent", token=s.agent_token, origin=None) as bob:
        await bob.expect("snapshot")
        await bob.request({"type": "status.set", "status": "away"})
        tok = (await visitor_token(http, server.url, s.inbox_key))["token"]
        async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
            cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
            await v.expect("conversation", conversation__status="pending", timeout=5)
            await bob.expect("conversation", conversation__id=cid, conversation__status="pending")
            await asyncio.sleep(1.2)  # a routing cycle or more: nobody is online, it stays pending
            assert await _status(http, server, s, cid) == "pending"
            await bob.request({"type": "status.set", "status": "online"})
            offer = await bob.expect("offer", conversation__id=cid, timeout=5)
            await v.expect("conversation", conversation__status="offered", timeout=5)
            ack = await bob.request({"type": "offer.accept", "offer_id": offer["offer_id"]})
            assert ack["status"] == "assigned"
            await v.expect(
                "conversation", conversation__status="assigned", conversation__assignee__name="Bob"
            )
    metrics = (await http.get(f"{server.url}/api/v1/routing/metrics", headers=auth(s.admin_token))).json()
    assert metrics["router"]["returned"] == 1 and metrics["events"]["unpend"] == 1


async def test_the_agent_who_let_the_offer_time_out_gets_it_again_when_back(
    routed: tuple[Server, Seed], http: httpx.AsyncClient
) -> None:
    server, s = routed
    async with Client.connect(f"{server.ws}/ws/agent", token=s.agent_token, origin=None) as bob:
        await bob.expect("snapshot")
        tok = (await visitor_token(http, server.url, s.inbox_key))["token"]
        async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
            cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
            first = await bob.expect("offer", conversation__id=cid)
            await bob.expect("notice", timeout=5)  # the offer went unanswered: Bob is away (RONA)
            await v.expect("conversation", conversation__status="pending", timeout=5)
            await bob.request({"type": "status.set", "status": "online"})
            again = await bob.expect("offer", conversation__id=cid, timeout=5)
            assert again["offer_id"] != first["offer_id"]
            ack = await bob.request({"type": "offer.accept", "offer_id": again["offer_id"]})
            assert ack["status"] == "assigned"


@pytest.mark.parametrize("routed", [{"requeue_window_s": 0.0}], indirect=True)
async def test_a_visitor_who_left_is_not_offered_until_they_come_back(
    routed: tuple[Server, Seed], http: httpx.AsyncClient
) -> None:
    server, s = routed
    tok = (await visitor_token(http, server.url, s.inbox_key))["token"]
    async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
        cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
        await v.expect("conversation", conversation__status="pending", timeout=5)
    async with Client.connect(f"{server.ws}/ws/agent", token=s.agent_token, origin=None) as bob:
        await bob.expect("snapshot")
        await asyncio.sleep(1.5)  # routing cycles with Bob free: the visitor is gone, no offer
        assert not [f for f in bob.pending if f.get("type") == "offer"]
        assert await _status(http, server, s, cid) == "pending"
        metrics = (await http.get(f"{server.url}/api/v1/routing/metrics", headers=auth(s.admin_token))).json()
        assert metrics["router"]["unattended"] == 1
        async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
            await bob.expect("offer", conversation__id=cid, timeout=5)  # back: offered
            await v.expect("conversation", conversation__status="offered", timeout=5)


async def test_a_plain_agent_can_take_a_pending_conversation_but_not_a_queued_one(
    routed: tuple[Server, Seed], http: httpx.AsyncClient
) -> None:
    server, s = routed
    tok = (await visitor_token(http, server.url, s.inbox_key))["token"]
    async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
        cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
        await v.expect("conversation", conversation__status="pending", timeout=5)
    # away before connecting, so routing does not offer it back: a status.set after connecting races the
    # router cycle that the connection itself wakes
    await server.app.state.ctx.store.set_agent_status(s.agent_id, AgentStatus.AWAY)
    async with Client.connect(f"{server.ws}/ws/agent", token=s.agent_token, origin=None) as bob:
        await bob.expect("snapshot")
        await bob.request({"type": "status.set", "status": "away"})
        probe = await bob.request({"type": "conversation.claim", "conversation_id": "cv_routing_probe"})
        assert probe["code"] == "forbidden"  # (the console learns routing is on from this)
        ack = await bob.request({"type": "conversation.claim", "conversation_id": cid})
        assert ack["status"] == "assigned"
        sent = await bob.request(
            {"type": "message.send", "conversation_id": cid, "client_id": "r1", "text": "Hello again"}
        )
        assert sent["type"] == "ack"
