"""Targeted fan-out: an agent receives the conversations it is offered, assigned or follows; supervisors
(and everyone with manual routing) the waiting queue; every agent a throttled ``queue`` summary."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatserver.auth.secrets import hash_password, new_api_token, sha256_hex
from chatserver.model.types import Role
from chatserver.store.db import Database, make_engine
from chatserver.store.store import Store
from tests.e2e.harness import (
    ISSUED_SECRETS,
    PASSWORD,
    Client,
    Seed,
    Server,
    run_server,
    seed,
    settings_for,
    visitor_token,
)

OFFERS = {"routing": "offers", "offer_timeout_s": 30.0, "agent_grace_s": 0.6}


async def extra_agent(database_url: str, name: str, role: Role = Role.AGENT) -> tuple[str, str]:
    """Another agent with an API token: (id, token)."""
    engine = make_engine(database_url, pool_size=1)
    store = Store(Database(engine))
    try:
        agent = await store.create_agent(
            email=f"{name.lower()}-{uuid.uuid4().hex[:8]}@x.test",
            name=name,
            role=role,
            password_hash=hash_password(PASSWORD),
        )
        token = new_api_token()
        await store.create_api_token(agent.id, sha256_hex(token), "test")
        ISSUED_SECRETS.add(token)
        return agent.id, token
    finally:
        await engine.dispose()


@pytest.fixture
async def offers_server(tmp_path: Path) -> AsyncIterator[tuple[Server, Seed, str]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"
    s = await seed(url)
    async with run_server(settings_for(url, tmp_path, **OFFERS)) as server:
        yield server, s, url


async def start_chat(http: httpx.AsyncClient, server: Server, s: Seed) -> tuple[str, str]:
    tok = (await visitor_token(http, server.url, s.inbox_key))["token"]
    async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
        cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
    return tok, cid


def mentions(frames: list[dict[str, Any]], cid: str) -> list[dict[str, Any]]:
    """Every frame about conversation ``cid``."""
    return [
        f for f in frames if f.get("conversation_id") == cid or (f.get("conversation") or {}).get("id") == cid
    ]


async def test_a_plain_agent_gets_its_offer_and_a_summary_but_not_other_agents_conversations(
    offers_server: tuple[Server, Seed, str], http: httpx.AsyncClient
) -> None:
    server, s, url = offers_server
    _, carol_token = await extra_agent(url, "Carol")
    async with (
        Client.connect(f"{server.ws}/ws/agent", token=s.agent_token, origin=None) as bob,
        Client.connect(f"{server.ws}/ws/agent", token=carol_token, origin=None) as carol,
        Client.connect(f"{server.ws}/ws/agent", token=s.admin_token, origin=None) as ada,
    ):
        for c in (bob, carol, ada):
            await c.expect("snapshot")
        for c in (carol, ada):  # only Bob is offered conversations
            assert (await c.request({"type": "status.set", "status": "away"}))["type"] == "ack"
        tok, cid = await start_chat(http, server, s)
        offer = await bob.expect("offer", conversation__id=cid, timeout=10)
        await ada.expect("conversation", conversation__id=cid, conversation__status="offered", timeout=10)
        summary = await carol.expect("queue", waiting=1, timeout=10)
        assert summary["teams"] == [
            {
                "team": None,
                "waiting": 1,
                "pending": 0,
                "longest_wait_s": summary["teams"][0]["longest_wait_s"],
                "oldest_at": summary["oldest_at"],
            }
        ]
        accepted = await bob.request({"type": "offer.accept", "offer_id": offer["offer_id"]})
        assert accepted["status"] == "assigned"
        await bob.expect("conversation", conversation__id=cid, conversation__status="assigned")
        # the supervisor sees it leave the queue; the plain agent sees the count drop
        await ada.expect("conversation", conversation__id=cid, conversation__status="assigned")
        await carol.expect("queue", waiting=0, timeout=10)
        async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
            await v.expect("snapshot")
            await v.send({"type": "resume", "cursors": {}})
            sent = await v.request(
                {"type": "message.send", "conversation_id": cid, "client_id": "v1", "text": "hello"}
            )
            got = await bob.expect("message", conversation_id=cid, seq=sent["seq"])
            assert got["message"]["text"] == "hello"
        await carol.drain()
        assert mentions(carol.frames, cid) == []  # never Bob's offer, conversation or messages
        assert not [f for f in carol.frames if f.get("type") in ("offer", "message")]
    # a fresh connection of the plain agent starts without it; Bob's starts with it
    async with (
        Client.connect(f"{server.ws}/ws/agent", token=carol_token, origin=None) as carol,
        Client.connect(f"{server.ws}/ws/agent", token=s.agent_token, origin=None) as bob,
    ):
        assert (await carol.expect("snapshot"))["conversation_ids"] == []
        assert (await bob.expect("snapshot"))["conversation_ids"] == [cid]
        assert (await carol.expect("queue"))["waiting"] == 0


async def test_pending_conversations_reach_every_agent_and_the_summary_matches_the_queue(
    offers_server: tuple[Server, Seed, str], http: httpx.AsyncClient
) -> None:
    """With nobody online, conversations become pending: any agent may take one, so each gets them."""
    server, s, _ = offers_server
    async with (
        Client.connect(f"{server.ws}/ws/agent", token=s.agent_token, origin=None) as bob,
        Client.connect(f"{server.ws}/ws/agent", token=s.admin_token, origin=None) as ada,
    ):
        for c in (bob, ada):
            await c.expect("snapshot")
            assert (await c.request({"type": "status.set", "status": "away"}))["type"] == "ack"
        cids = [(await start_chat(http, server, s))[1] for _ in range(3)]
        for cid in cids:
            for c in (bob, ada):
                await c.expect(
                    "conversation", conversation__id=cid, conversation__status="pending", timeout=10
                )
        # The summary is throttled: one sent while the third was still being placed says 2 pending; the
        # latest one (sent after the last change) must say 3.
        await bob.next(
            lambda f: f.get("type") == "queue" and f.get("waiting") == 3 and f["teams"][0]["pending"] == 3,
            timeout=10,
        )
        r = await http.get(
            f"{server.url}/api/v1/conversations?status=queued,offered,pending",
            headers={"Authorization": f"Bearer {s.admin_token}"},
        )
        assert sorted(c["id"] for c in r.json()["items"]) == sorted(cids)
        # Bob takes one: everyone sees it leave the pending queue; the count follows
        ack = await bob.request({"type": "conversation.claim", "conversation_id": cids[0]})
        assert ack["status"] == "assigned"
        await ada.expect("conversation", conversation__id=cids[0], conversation__status="assigned")
        assert (await ada.expect("queue", waiting=2, timeout=10))["teams"][0]["pending"] == 2


async def test_bad_and_unknown_frames_change_no_subscription(
    offers_server: tuple[Server, Seed, str], http: httpx.AsyncClient
) -> None:
    """Viewing a conversation that does not exist follows nothing; viewing a real one follows it."""
    server, s, url = offers_server
    _, carol_token = await extra_agent(url, "Carol")
    async with Client.connect(f"{server.ws}/ws/agent", token=carol_token, origin=None) as carol:
        await carol.expect("snapshot")
        await carol.request({"type": "status.set", "status": "away"})
        missing = await carol.request({"type": "conversation.view", "conversation_id": "cv_nope"})
        assert missing["code"] == "not_found"
        tok, cid = await start_chat(http, server, s)
        await carol.expect("queue", waiting=1, timeout=10)
        viewed = await carol.request({"type": "conversation.view", "conversation_id": cid})
        assert viewed["type"] == "ack"
        await carol.expect("conversation", conversation__id=cid)
        async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
            await v.expect("snapshot")
            await v.send({"type": "resume", "cursors": {}})
            sent = await v.request(
                {"type": "message.send", "conversation_id": cid, "client_id": "v1", "text": "anyone?"}
            )
        assert (await carol.expect("message", conversation_id=cid, seq=sent["seq"]))["message"][
            "text"
        ] == "anyone?"
