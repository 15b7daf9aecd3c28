"""``bench/routing_offer.py --count``: database statements and transactions per conversation state change.

The server runs in this process (uvicorn in this event loop, configured as ``chatserver serve`` configures
it, ``CHATSERVER_ROUTING=offers``) with a :class:`chatserver.store.statements.StatementCounter` on its
engine; one agent is online over a real WebSocket. For ``--count-conversations`` (10) visitors, one at a
time, each step is counted until the server has been quiet for a moment:

- **connect**: ``/ws/visitor`` opened, ``hello`` and the snapshot received;
- **start**: ``conversation.start`` until its ack, the agent's ``offer`` and quiet: everything but the
  router's task (the connection's handling, its sender, the group commit);
- **offer**: the router's share of the same window; the router also runs idle cycles (at least one a
  second, and one per wake-up), so this is reported with the cycles it took and, separately, as the
  window's statements less the idle cycles' (measured beforehand with nobody waiting);
- **accept** and **close**: ``offer.accept`` / ``conversation.close`` until the ack and quiet (the router
  cycles they wake up are reported apart, as ``router_after``).

Then ``--count-batch`` (20) visitors start at once: the router offers them in a few cycles, which gives the
router's statements per offer when it batches.

Counts are deterministic (unlike timings): the figures that tell whether a change cut round trips.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
from websockets.asyncio.client import ClientConnection, connect

from chatserver.app import create_app
from chatserver.auth.secrets import new_api_token, sha256_hex
from chatserver.model.types import Role
from chatserver.settings import Settings
from chatserver.store.db import Database, make_engine
from chatserver.store.migrate import upgrade
from chatserver.store.statements import StatementCounter, Tally, total
from chatserver.store.store import Store
from chatserver.transport.server import uvicorn_config

SECRET = "bench-secret-" + "c" * 30
QUIET_S = 0.3
"""A step is over when no statement ran for this long (after its frames arrived)."""


class Peer:
    """One WebSocket: frames by type, acks by ref."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self.new = asyncio.Event()
        self.task = asyncio.create_task(self._read())
        self._ref = 0

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                self.frames.append(orjson.loads(raw))
                self.new.set()

    async def wait(self, pred: Any, timeout: float = 30.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            seen = 0
            while True:
                for f in self.frames[seen:]:
                    if pred(f):
                        return f
                seen = len(self.frames)
                self.new.clear()
                await self.new.wait()

    async def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        self._ref += 1
        ref = f"r{self._ref}"
        await self.ws.send(orjson.dumps({**frame, "ref": ref}).decode())
        reply = await self.wait(lambda f: f.get("ref") == ref and f["type"] in ("ack", "error"))
        if reply["type"] != "ack":
            raise RuntimeError(f"{frame['type']} failed: {reply}")
        return reply

    async def close(self) -> None:
        await self.ws.close()
        self.task.cancel()


async def seed(url: str) -> tuple[str, str]:
    """An inbox and one agent with an API token: (inbox key, token)."""
    engine = make_engine(url, pool_size=2)
    await upgrade(engine)
    store = Store(Database(engine))
    try:
        inbox = await store.create_inbox("Count", "widget")
        agent = await store.create_agent(
            email=f"count-{uuid.uuid4().hex[:6]}@x.test", name="Ann", role=Role.AGENT, password_hash=None
        )
        token = new_api_token()
        await store.create_api_token(agent.id, sha256_hex(token), "bench")
        return inbox.key, token
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[str, Any]]:
    app = create_app(settings)
    server = uvicorn.Server(uvicorn_config(app, settings, host="127.0.0.1", port=0, log_level="warning"))
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(30):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}", app.state.ctx
    finally:
        server.should_exit = True
        await task


async def quiet(counter: StatementCounter) -> None:
    """Wait until no statement ran for QUIET_S (at most 10 s)."""
    deadline = time.monotonic() + 10
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now = total(counter.by_task).statements
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= QUIET_S:
            return
        await asyncio.sleep(0.02)


def is_router(name: str) -> bool:
    return name == "router"


def mean_tally(tallies: list[Tally]) -> dict[str, Any]:
    def avg(values: list[int]) -> float:
        return round(statistics.fmean(values), 2) if values else 0.0

    verbs: dict[str, float] = {}
    for key in sorted({k for t in tallies for k in t.verbs}):
        verbs[key] = avg([t.verbs.get(key, 0) for t in tallies])
    return {
        "statements": avg([t.statements for t in tallies]),
        "transactions": avg([t.begins for t in tallies]),
        "commits": avg([t.commits for t in tallies]),
        "by_verb": verbs,
    }


async def count_backend(url: str, data_dir: Path, n: int, batch: int) -> dict[str, Any]:
    inbox_key, token = await seed(url)
    settings = Settings(
        data_dir=data_dir,
        database_url=url,
        secret_key=SECRET,
        embedded=False,
        routing="offers",
        offer_timeout_s=600.0,
        max_concurrent=10_000,
        rate_limit_per_s=100_000.0,
        rate_limit_burst=100_000,
    )
    steps: dict[str, list[Tally]] = {k: [] for k in ("connect", "start", "offer", "accept", "close")}
    router_after: dict[str, list[Tally]] = {"accept": [], "close": []}
    offer_cycles: list[int] = []
    offer_net: list[float] = []
    by_task: dict[str, dict[str, int]] = {}
    """The last conversation's steps: statements per task (which part of the server ran them)."""
    async with serving(settings) as (host, ctx), httpx.AsyncClient(timeout=30) as http:
        router = ctx.router
        counter = StatementCounter(ctx.store.db.engine).attach()
        try:
            agent = Peer(await connect(f"ws://{host}/ws/agent", additional_headers=_bearer(token)))
            await agent.wait(lambda f: f["type"] == "snapshot")
            await quiet(counter)
            before, cycles0 = counter.snapshot(), router.stats.cycles
            await asyncio.sleep(3.0)
            idle = total(counter.since(before), where=is_router)
            idle_cycles = max(router.stats.cycles - cycles0, 1)
            idle_per_cycle = idle.statements / idle_cycles

            async def visitor() -> Peer:
                r = await http.post(f"http://{host}/api/v1/widget/sessions", json={"inbox_key": inbox_key})
                r.raise_for_status()
                v = Peer(await connect(f"ws://{host}/ws/visitor?token={r.json()['token']}"))
                await v.wait(lambda f: f["type"] == "snapshot")
                return v

            for _ in range(n):
                await quiet(counter)
                before = counter.snapshot()
                v = await visitor()
                await quiet(counter)
                steps["connect"].append(total(counter.since(before), where=lambda t: not is_router(t)))

                before, cycles0 = counter.snapshot(), router.stats.cycles
                ack = await v.request({"type": "conversation.start"})
                cid = ack["conversation_id"]
                offer = await agent.wait(
                    lambda f, c=cid: f["type"] == "offer" and f["conversation"]["id"] == c
                )
                await quiet(counter)
                window = counter.since(before)
                by_task["start+offer"] = _tasks(window)
                steps["start"].append(total(window, where=lambda t: not is_router(t)))
                routed = total(window, where=is_router)
                steps["offer"].append(routed)
                cycles = router.stats.cycles - cycles0
                offer_cycles.append(cycles)
                offer_net.append(routed.statements - max(cycles - 1, 0) * idle_per_cycle)

                for step, frame in (
                    ("accept", {"type": "offer.accept", "offer_id": offer["offer_id"]}),
                    ("close", {"type": "conversation.close", "conversation_id": cid}),
                ):
                    before = counter.snapshot()
                    await agent.request(frame)
                    await quiet(counter)
                    window = counter.since(before)
                    by_task[step] = _tasks(window)
                    steps[step].append(total(window, where=lambda t: not is_router(t)))
                    router_after[step].append(total(window, where=is_router))
                await v.close()

            await quiet(counter)
            visitors = [await visitor() for _ in range(batch)]
            await quiet(counter)
            before, cycles0, offers0 = counter.snapshot(), router.stats.cycles, router.stats.offers
            acks = await asyncio.gather(*(v.request({"type": "conversation.start"}) for v in visitors))
            wanted = {a["conversation_id"] for a in acks}
            await agent.wait(
                lambda f: wanted.issubset(
                    {g["conversation"]["id"] for g in agent.frames if g["type"] == "offer"}
                )
            )
            await quiet(counter)
            window = counter.since(before)
            batch_router = total(window, where=is_router)
            batch_start = total(window, where=lambda t: not is_router(t))
            batch_cycles = router.stats.cycles - cycles0
            batch_offers = router.stats.offers - offers0
            for v in visitors:
                await v.close()
            await agent.close()
        finally:
            counter.detach()

    per_conversation = Tally()
    for step in ("connect", "start", "offer", "accept", "close"):
        for t in steps[step]:
            per_conversation.add(t)
    return {
        "conversations": n,
        "per_step_mean": {k: mean_tally(v) for k, v in steps.items()},
        "offer_router_cycles_mean": round(statistics.fmean(offer_cycles), 2),
        "offer_statements_less_idle_cycles_mean": round(statistics.fmean(offer_net), 1),
        "last_conversation_by_task": by_task,
        "router_after_mean": {k: mean_tally(v) for k, v in router_after.items()},
        "router_idle_cycle": {
            "statements_per_cycle": round(idle_per_cycle, 2),
            "transactions_per_cycle": round(idle.begins / idle_cycles, 2),
            "cycles_in_3_s": idle_cycles,
        },
        "sequential_total_per_conversation": {
            "statements": round(per_conversation.statements / max(n, 1), 1),
            "transactions": round(per_conversation.begins / max(n, 1), 1),
            "commits": round(per_conversation.commits / max(n, 1), 1),
        },
        "batch": {
            "conversations": batch,
            "router_cycles": batch_cycles,
            "offers": batch_offers,
            "router_statements_per_offer": round(batch_router.statements / max(batch_offers, 1), 2),
            "router_transactions_per_offer": round(batch_router.begins / max(batch_offers, 1), 2),
            "start_statements_per_conversation": round(batch_start.statements / batch, 2),
        },
    }


def _tasks(window: dict[str, Tally]) -> dict[str, int]:
    """Statements per task, with connection-specific names folded (``sender-<id>`` -> ``sender``)."""
    out: dict[str, int] = {}
    for name, t in window.items():
        key = "sender" if name.startswith("sender-") else "connection" if name.startswith("Task-") else name
        out[key] = out.get(key, 0) + t.statements
    return out


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def count_main(backends: list[str], pg_url: Any, n: int, batch: int) -> dict[str, Any]:
    """Run the count on each backend; ``pg_url()`` gives (url, drop) for a fresh PostgreSQL database."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="routing-count-") as tmp:
        for kind in backends:
            drop = None
            if kind == "sqlite":
                url = f"sqlite+aiosqlite:///{Path(tmp) / 'count.db'}"
            else:
                url, drop = pg_url()
            try:
                out[kind] = asyncio.run(count_backend(url, Path(tmp) / f"{kind}-data", n, batch))
            finally:
                if drop is not None:
                    drop()
    return out


def print_counts(counts: dict[str, Any]) -> None:
    for kind, c in counts.items():
        print(f"\n== {kind}: statements (transactions, commits) per step, mean of {c['conversations']}")
        for step, t in c["per_step_mean"].items():
            verbs = ", ".join(f"{k} {v:g}" for k, v in t["by_verb"].items())
            print(
                f"   {step:<8}{t['statements']:>7g} ({t['transactions']:g} tx, {t['commits']:g} commits)"
                f"  [{verbs}]"
            )
        idle = c["router_idle_cycle"]
        print(
            f"   offer: {c['offer_router_cycles_mean']:g} router cycles per window; "
            f"{c['offer_statements_less_idle_cycles_mean']:g} statements less the idle cycles "
            f"(an idle cycle: {idle['statements_per_cycle']:g} statements, "
            f"{idle['transactions_per_cycle']:g} tx)"
        )
        for step, t in c["router_after_mean"].items():
            print(f"   router cycles woken by {step}: {t['statements']:g} statements")
        s = c["sequential_total_per_conversation"]
        print(
            f"   one conversation, all steps: {s['statements']:g} statements, {s['transactions']:g} "
            f"transactions, {s['commits']:g} commits"
        )
        b = c["batch"]
        print(
            f"   batch of {b['conversations']} starts: {b['offers']} offers in {b['router_cycles']} cycles, "
            f"router {b['router_statements_per_offer']:g} statements "
            f"({b['router_transactions_per_offer']:g} tx) per offer; start "
            f"{b['start_statements_per_conversation']:g} statements per conversation"
        )
