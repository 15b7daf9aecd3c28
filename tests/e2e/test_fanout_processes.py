"""Targeted fan-out across two processes on PostgreSQL + Redis, with a reconnect to the other process.

A plain agent answers offers on one process while visitors write on the other; its connection drops and
comes back on the other process with its cursors. It never misses an offer, an assignment or a message of
a conversation it follows, and what it built from its snapshot and the live events equals a fresh
snapshot (the state-sync test). The supervisor's view of the waiting queue equals a fresh one too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import Client, ServerProcess, run_cli, seed, visitor_token
from tests.e2e.test_fanout import extra_agent
from tests.services import REDIS_PREFIX, create_pg_database, drop_pg_database

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]

CHATS = 5
CAPACITY = 2
WAITING = ("queued", "offered", "pending")


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


class View:
    """What one agent connection knows: conversations (by the latest version seen) and messages."""

    def __init__(self) -> None:
        self.convs: dict[str, dict[str, Any]] = {}
        self.offers: dict[str, str] = {}  # offer id -> conversation id
        self.seqs: dict[str, list[int]] = {}

    def apply(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind in ("conversation", "offer"):
            conv = frame["conversation"]
            known = self.convs.get(conv["id"])
            if known is None or conv["version"] >= known["version"]:
                self.convs[conv["id"]] = conv
            if kind == "offer":
                self.offers[frame["offer_id"]] = conv["id"]
        elif kind == "offer.revoked":
            self.offers.pop(frame["offer_id"], None)
        elif kind == "message":
            self.seqs.setdefault(frame["conversation_id"], []).append(frame["seq"])

    def mine(self, agent_id: str) -> dict[str, int]:
        return {
            cid: c["version"]
            for cid, c in self.convs.items()
            if c["status"] != "resolved" and (c.get("assignee") or {}).get("id") == agent_id
        }

    def waiting(self) -> dict[str, int]:
        return {cid: c["version"] for cid, c in self.convs.items() if c["status"] in WAITING}


async def fresh_view(url: str, token: str) -> View:
    view = View()
    async with Client.connect(url, token=token, origin=None) as c:
        await c.expect("hello")
        await c.expect("snapshot", timeout=15)
        await c.drain(0.5)  # the offers still open follow the snapshot
        for f in c.frames:
            view.apply(f)
    return view


async def pump(client: Client, view: View, until: Any, timeout: float = 20.0) -> dict[str, Any]:
    """Apply every frame to ``view`` until one satisfies ``until``."""
    frame = await client.next(lambda f: (view.apply(f), until(f))[1], timeout)
    return frame


async def test_a_plain_agent_misses_nothing_across_processes_and_a_reconnect(
    tmp_path: Path, procs: list[ServerProcess], own_pg: str, redis_url: str
) -> None:
    s = await seed(own_pg)
    _, carol_token = await extra_agent(own_pg, "Carol")
    env = {
        "DATABASE_URL": own_pg,
        "REDIS_URL": redis_url,
        "CHATSERVER_REDIS_PREFIX": REDIS_PREFIX,
        "CHATSERVER_SECRET_KEY": "k" * 40,
        "CHATSERVER_ROUTING": "offers",
        "CHATSERVER_MAX_CONCURRENT": str(CAPACITY),
    }
    assert run_cli(env, "migrate") == "database schema is current"
    a, b = ServerProcess(env=env, log=tmp_path / "a.log"), ServerProcess(env=env, log=tmp_path / "b.log")
    for p in (a, b):
        procs.append(p)
        p.start()
    bob_view, ada_view, carol_view = View(), View(), View()
    bob_on = f"{b.ws}/ws/agent"
    async with (
        httpx.AsyncClient(timeout=10) as http,
        Client.connect(f"{a.ws}/ws/agent", token=s.admin_token, origin=None) as ada,
        Client.connect(f"{a.ws}/ws/agent", token=carol_token, origin=None) as carol,
    ):
        for c, view in ((ada, ada_view), (carol, carol_view)):
            await pump(c, view, lambda f: f.get("type") == "snapshot")
            await c.request({"type": "status.set", "status": "away"})  # offers go to Bob only
        async with Client.connect(bob_on, token=s.agent_token, origin=None) as bob:
            await pump(bob, bob_view, lambda f: f.get("type") == "snapshot")
            await bob.send({"type": "resume", "cursors": {}})
            tokens: dict[str, str] = {}
            for _ in range(CHATS):
                tok = (await visitor_token(http, a.url, s.inbox_key))["token"]
                async with Client.connect(f"{a.ws}/ws/visitor?token={tok}") as v:
                    cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
                tokens[cid] = tok
            accepted: list[str] = []
            while len(accepted) < CAPACITY:  # Bob takes what he is offered, up to his capacity
                offer = await pump(bob, bob_view, lambda f: f.get("type") == "offer")
                ack = await bob.request({"type": "offer.accept", "offer_id": offer["offer_id"]})
                assert ack["status"] == "assigned", ack
                accepted.append(ack["conversation_id"])
        # Bob's connection is gone; visitors write meanwhile (on the other process)
        acked: dict[str, list[int]] = {}
        for cid in accepted:
            async with Client.connect(f"{a.ws}/ws/visitor?token={tokens[cid]}") as v:
                await v.expect("snapshot")
                await v.send({"type": "resume", "cursors": {}})
                for i in range(3):
                    sent = await v.request(
                        {
                            "type": "message.send",
                            "conversation_id": cid,
                            "client_id": f"m{i}",
                            "text": f"m{i}",
                        }
                    )
                    acked.setdefault(cid, []).append(sent["seq"])
        # back on the other process with its cursors: everything missed, in order, no duplicate
        cursors = {cid: max(bob_view.seqs.get(cid, [0])) for cid in accepted}
        async with Client.connect(f"{a.ws}/ws/agent", token=s.agent_token, origin=None) as bob:
            await pump(bob, bob_view, lambda f: f.get("type") == "snapshot")
            await bob.send({"type": "resume", "cursors": cursors})
            await pump(bob, bob_view, lambda f: f.get("type") == "resumed")
            for cid in accepted:
                assert bob_view.seqs[cid] == sorted(set(bob_view.seqs[cid])), "a duplicate or out of order"
                assert set(acked[cid]) <= set(bob_view.seqs[cid])
            # he closes one and is offered the next (an offer made while he is on the other process)
            closed = await bob.request({"type": "conversation.close", "conversation_id": accepted[0]})
            assert closed["status"] == "resolved"
            offer = await pump(bob, bob_view, lambda f: f.get("type") == "offer")
            ack = await bob.request({"type": "offer.accept", "offer_id": offer["offer_id"]})
            assert ack["status"] == "assigned"
            await pump(
                bob,
                bob_view,
                lambda f: (
                    f.get("type") == "conversation"
                    and f["conversation"]["id"] == ack["conversation_id"]
                    and f["conversation"]["status"] == "assigned"
                ),
            )
            # the state-sync check: snapshot + events == a fresh snapshot
            fresh = await fresh_view(bob_on, s.agent_token)
            assert bob_view.mine(s.agent_id) == fresh.mine(s.agent_id)
            assert len(fresh.mine(s.agent_id)) == CAPACITY
        # the supervisor's queue (live, on A) converges to a fresh one (on B)
        fresh_queue = (await fresh_view(f"{b.ws}/ws/agent", s.admin_token)).waiting()
        assert len(fresh_queue) == CHATS - CAPACITY - 1
        async with asyncio.timeout(20):
            while ada_view.waiting() != fresh_queue:
                await pump(ada, ada_view, lambda f: f.get("type") == "conversation")
        # and the plain agent never received one of those conversations, only the count
        await carol.expect("queue", waiting=len(fresh_queue), timeout=15)
        await carol.drain(0.5)
        seen_pending: set[str] = set()
        for f in carol.frames:
            carol_view.apply(f)
            if f.get("type") == "conversation":  # a pending one (anyone may take it), or its departure
                conv = f["conversation"]
                assert conv["status"] == "pending" or conv["id"] in seen_pending, conv["status"]
                seen_pending.add(conv["id"])
        assert not [f for f in carol.frames if f.get("type") in ("offer", "message")]
        pending = {cid for cid, c in carol_view.convs.items() if c["status"] == "pending"}
        assert pending == {cid for cid in fresh_queue if ada_view.convs[cid]["status"] == "pending"}
        assert [f["waiting"] for f in carol.frames if f.get("type") == "queue"][-1] == len(fresh_queue)
