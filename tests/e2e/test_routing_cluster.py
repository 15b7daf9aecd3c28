"""Routing across 3 server processes on Redis + PostgreSQL, with the routing leader killed mid-run.

200 visitors start conversations on all processes. 8 agents accept offers after random delays, handle
each conversation for a while and close it; 2 agents never answer. Every agent reconnects to another
process when theirs dies. At the end every conversation was assigned exactly once, no agent ever held
more than its capacity, no conversation had two live offers at once, and none is stuck.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.e2e.harness import ServerProcess, run_cli, visitor_token
from tests.services import REDIS_PREFIX, create_pg_database, drop_pg_database

pytestmark = [pytest.mark.slow, pytest.mark.serial, pytest.mark.redis, pytest.mark.postgres]

VISITORS = 200
CAPACITY = 3
AGENTS = 10
SILENT = 2


@pytest.fixture
def own_pg() -> Iterator[str]:
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@dataclass
class AgentRun:
    token: str
    silent: bool
    rng: random.Random
    held: set[str] = field(default_factory=set)
    max_held: int = 0
    accepted: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def agent_loop(run: AgentRun, urls: list[str], stop: asyncio.Event) -> None:
    """Connect (to the next process when one dies), answer offers, handle and close conversations.

    Frames go out through whichever connection is current, and a close that was lost with a dying
    connection is sent again on the next one, as a person in the console would.
    """
    start = run.rng.randrange(len(urls))
    attempt = 0
    tasks: set[asyncio.Task[None]] = set()
    current: dict[str, object] = {}

    def spawn(coro: object) -> None:
        t = asyncio.ensure_future(coro)  # type: ignore[call-overload]
        tasks.add(t)
        t.add_done_callback(tasks.discard)

    async def send(frame: dict[str, object]) -> None:
        while not stop.is_set():
            ws = current.get("ws")
            if ws is not None:
                with contextlib.suppress(ConnectionClosed, OSError):
                    await ws.send(orjson.dumps(frame).decode())  # type: ignore[attr-defined]
                    return
            await asyncio.sleep(0.1)

    async def accept(offer: dict[str, object]) -> None:
        await asyncio.sleep(run.rng.uniform(0.0, 0.5))
        conv = offer["conversation"]
        assert isinstance(conv, dict)
        await send({"type": "offer.accept", "ref": f"a:{conv['id']}", "offer_id": offer["offer_id"]})

    async def finish(cid: str) -> None:
        await asyncio.sleep(run.rng.uniform(0.3, 1.5))
        await send({"type": "conversation.close", "ref": f"c:{cid}", "conversation_id": cid})

    while not stop.is_set():
        url = urls[(start + attempt) % len(urls)]
        attempt += 1
        try:
            async with connect(
                f"{url}/ws/agent", additional_headers={"Authorization": f"Bearer {run.token}"}
            ) as ws:
                current["ws"] = ws
                for cid in list(run.held):  # closes lost with the previous connection
                    spawn(send({"type": "conversation.close", "ref": f"c:{cid}", "conversation_id": cid}))
                async for raw in ws:
                    frame = orjson.loads(raw)
                    kind = frame.get("type")
                    ref = str(frame.get("ref", ""))
                    if kind == "offer" and not run.silent:
                        spawn(accept(frame))
                    elif kind == "ack" and ref.startswith("a:"):
                        cid = frame["conversation_id"]
                        run.accepted.append(cid)
                        run.held.add(cid)
                        run.max_held = max(run.max_held, len(run.held))
                        spawn(finish(cid))
                    elif kind == "ack" and ref.startswith("c:") and frame["conversation_id"] in run.held:
                        run.held.discard(frame["conversation_id"])
                        run.closed.append(frame["conversation_id"])
                    elif kind == "error" and frame.get("code") not in ("conflict",):
                        run.errors.append(json.dumps(frame))
                    if stop.is_set():
                        break
        except (OSError, ConnectionClosed, InvalidStatus):
            pass
        current.pop("ws", None)
        await asyncio.sleep(0.2)
    for t in list(tasks):
        t.cancel()


async def test_routing_cluster_survives_leader_kill(tmp_path: Path, own_pg: str, redis_url: str) -> None:
    env = {
        "DATABASE_URL": own_pg,
        "REDIS_URL": redis_url,
        "CHATSERVER_REDIS_PREFIX": REDIS_PREFIX,
        "CHATSERVER_SECRET_KEY": "c" * 40,
        "CHATSERVER_ROUTING": "offers",
        "CHATSERVER_MAX_CONCURRENT": str(CAPACITY),
        "CHATSERVER_OFFER_TIMEOUT_S": "1.5",
        "CHATSERVER_RONA_THRESHOLD": "2",
        "CHATSERVER_ROUTING_LEASE_S": "2",
        "CHATSERVER_AGENT_GRACE_S": "20",
        "CHATSERVER_PRESENCE_TTL_S": "3",
        "CHATSERVER_RATE_LIMIT_PER_S": "1000",
        "CHATSERVER_RATE_LIMIT_BURST": "1000",
        "CHATSERVER_LOG_LEVEL": "warning",
    }
    run_cli(env, "migrate")
    inbox = json.loads(run_cli(env, "create-inbox", "--name", "Cluster", "--json"))
    tokens, boss = await _agents(own_pg)
    procs = [ServerProcess(env=env, log=tmp_path / f"s{i}.log") for i in range(3)]
    try:
        for p in procs:
            p.start()
        urls = [p.ws for p in procs]
        rng = random.Random(20261121)
        runs = [AgentRun(tok, i < SILENT, random.Random(rng.random())) for i, tok in enumerate(tokens)]
        stop = asyncio.Event()
        agent_tasks = [asyncio.create_task(agent_loop(r, urls, stop)) for r in runs]
        conversations: list[str] = []
        killed = False
        async with httpx.AsyncClient(timeout=10) as http:
            await asyncio.sleep(1.0)  # agents connected
            for i in range(VISITORS):
                alive = [p for p in procs if p.proc and p.proc.poll() is None]
                p = alive[i % len(alive)]
                tok = (await visitor_token(http, p.url, inbox["key"]))["token"]
                async with connect(f"{p.ws}/ws/visitor?token={tok}") as ws:
                    await ws.send(orjson.dumps({"type": "conversation.start", "ref": "s"}).decode())
                    async for raw in ws:
                        frame = orjson.loads(raw)
                        if frame.get("type") == "ack":
                            conversations.append(frame["conversation_id"])
                            break
                await asyncio.sleep(0.03)
                if i == VISITORS // 2 and not killed:
                    leaders = []
                    for p in procs:
                        r = await http.get(
                            f"{p.url}/api/v1/routing/metrics", headers={"Authorization": f"Bearer {boss}"}
                        )
                        assert r.status_code == 200, r.text
                        if r.json()["router"]["leader"]:
                            leaders.append(p)
                    assert len(leaders) == 1
                    leaders[0].kill(signal.SIGKILL)
                    killed = True
            assert len(conversations) == VISITORS
            # wait until every conversation is resolved
            deadline = asyncio.get_running_loop().time() + 120
            done = False
            while asyncio.get_running_loop().time() < deadline:
                if sum(len(r.closed) for r in runs) >= VISITORS:
                    done = True
                    break
                await asyncio.sleep(0.5)
        stop.set()
        for t in agent_tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        closed = [c for r in runs for c in r.closed]
        assert done, f"stuck: {VISITORS - len(set(closed))} conversations never resolved"
        # every conversation assigned exactly once
        accepted = [c for r in runs for c in r.accepted]
        assert sorted(accepted) == sorted(conversations)
        assert len(set(accepted)) == VISITORS
        # nobody over capacity; the silent agents never held anything
        assert max(r.max_held for r in runs) <= CAPACITY
        assert all(not r.accepted for r in runs if r.silent)
        assert not [e for r in runs for e in r.errors]
        # the server's own log: never two live offers for one conversation, one accept each
        log = await _routing_log(own_pg)
        per_conv: dict[str, list[str]] = defaultdict(list)
        for cid, _agent, kind in log:
            per_conv[cid].append(kind)
        for cid in conversations:
            kinds = [k for k in per_conv[cid] if k in ("offer", "accept", "decline", "timeout")]
            open_offer = False
            for k in kinds:
                if k == "offer":
                    assert not open_offer, f"{cid}: two live offers: {kinds}"
                    open_offer = True
                else:
                    assert open_offer, f"{cid}: answer without an offer: {kinds}"
                    open_offer = False
            assert kinds.count("accept") == 1, (cid, kinds)
        assert "requeue" not in {k for kinds in per_conv.values() for k in kinds}
        timeouts = sum(kinds.count("timeout") for kinds in per_conv.values())
        assert timeouts >= SILENT  # the silent agents were offered conversations and let them expire
    finally:
        for p in procs:
            p.kill()


async def _agents(url: str) -> tuple[list[str], str]:
    """AGENTS agents and a supervisor, each with an API token (through the store: faster than the CLI)."""
    from chatserver.auth.secrets import new_api_token, sha256_hex
    from chatserver.model.types import Role
    from chatserver.store.db import Database, make_engine
    from chatserver.store.store import Store

    engine = make_engine(url, pool_size=1)
    store = Store(Database(engine))
    tokens = []
    try:
        for i in range(AGENTS + 1):
            role = Role.SUPERVISOR if i == AGENTS else Role.AGENT
            agent = await store.create_agent(
                email=f"c{i}@x.test", name=f"A{i}", role=role, password_hash=None
            )
            token = new_api_token()
            await store.create_api_token(agent.id, sha256_hex(token), "cluster")
            tokens.append(token)
    finally:
        await engine.dispose()
    return tokens[:AGENTS], tokens[AGENTS]


async def _routing_log(url: str) -> list[tuple[str, str, str]]:
    from chatserver.store.db import Database, make_engine
    from chatserver.store.store import Store

    engine = make_engine(url, pool_size=1)
    try:
        return [(c, a or "", k) for c, a, k in await Store(Database(engine)).assignment_log()]
    finally:
        await engine.dispose()
