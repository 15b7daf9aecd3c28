"""Scale-out, measured: the same load against 1 and then 2 web processes on PostgreSQL + Redis.

    .venv/bin/python bench/scale.py [--quick] [--storm 2000] [--rolling 1000]

For each layout (1 process, then 2 behind no balancer: clients alternate between them), with the routing
leader among them and routing on (`offers`):
- arrivals: visitors start conversations open loop at ``--rate`` per second; agents accept every offer;
  it reports `conversation.start` -> offer p50/p99 and the `conversation` frames agents received per
  conversation (targeted fan-out: independent of the number of agents online);
- messages: every visitor of an accepted conversation sends at a fixed rate for ``--duration`` seconds;
  it reports delivered msgs/s, visitor -> agent p50/p99, CPU seconds per process, and messages per
  CPU-second of the web processes (on a 2-core machine the ratio 1 -> 2 is bounded by the cores);
- ``--storm N``: N visitors connected to one process drop at once and reconnect with the widget's
  backoff and jitter; it reports how long until all resumed exactly (no gap, no duplicate) and the
  process's peak RSS;
- ``--rolling N``: a rolling restart of one of two processes while an agent writes to N visitors
  (bench/scale_rolling.py): time until all are back, messages lost, duplicates, peak RSS.

Writes bench/results/scale.json. The client runs in this one process (it shares the machine's cores).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BIN, PG_ADMIN_DSN, ROOT, Server, free_port, pg, raise_nofile, seed_via_cli

RESULTS = ROOT / "bench" / "results" / "scale.json"
PASSWORD = "bench-password-1"
SECRET = "bench-secret-" + "s" * 30
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def cpu_s(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


class Agent:
    """One agent connection: accepts every offer, counts frames, times messages it receives."""

    def __init__(self, ws: ClientConnection, offered_at: dict[str, float], latencies: list[float]) -> None:
        self.ws = ws
        self.frames: Counter[str] = Counter()
        self.offered_at = offered_at
        self.latencies = latencies
        self.accepted: list[str] = []
        self.recording = False
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                f = orjson.loads(raw)
                kind = f.get("type")
                self.frames[str(kind)] += 1
                if kind == "offer":
                    cid = f["conversation"]["id"]
                    self.offered_at.setdefault(cid, time.monotonic())
                    await self.ws.send(
                        orjson.dumps({"type": "offer.accept", "offer_id": f["offer_id"]}).decode()
                    )
                elif kind == "ack" and f.get("status") == "assigned":
                    self.accepted.append(f["conversation_id"])
                elif kind == "message" and self.recording:
                    text = f["message"]["text"]
                    if text.startswith("t="):
                        self.latencies.append((time.time() - float(text[2:].split(" ")[0])) * 1000)


async def visitor_tokens(bases: list[str], inbox_key: str, n: int) -> list[tuple[str, str]]:
    """(base, token) for n visitors, alternating between the processes."""
    out: list[tuple[str, str]] = []
    sem = asyncio.Semaphore(16)
    async with httpx.AsyncClient(timeout=30) as http:

        async def one(i: int) -> None:
            base = bases[i % len(bases)]
            async with sem:
                r = await http.post(f"{base}/api/v1/widget/sessions", json={"inbox_key": inbox_key})
            r.raise_for_status()
            out.append((base, r.json()["token"]))

        await asyncio.gather(*(one(i) for i in range(n)))
    return out


async def start_one(base: str, token: str) -> tuple[ClientConnection, str, float]:
    ws = await connect(f"{base.replace('http', 'ws')}/ws/visitor?token={token}")
    t0 = time.monotonic()
    await ws.send(orjson.dumps({"type": "resume", "cursors": {}}).decode())
    await ws.send(orjson.dumps({"type": "conversation.start", "ref": "s"}).decode())
    while True:
        f = orjson.loads(await ws.recv())
        if f.get("type") == "ack" and f.get("ref") == "s":
            return ws, f["conversation_id"], t0


async def drain(ws: ClientConnection) -> None:
    with contextlib.suppress(Exception):
        async for _ in ws:
            pass


async def layout_run(cfg: argparse.Namespace, n_procs: int, tmp: Path) -> dict[str, Any]:
    dbname = f"chatbench_{uuid.uuid4().hex[:10]}"
    await asyncio.to_thread(pg, f'CREATE DATABASE "{dbname}"')
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("CHATSERVER_", "DATABASE_URL", "REDIS_URL"))
    }
    env.update(
        DATABASE_URL=PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + dbname,
        REDIS_URL=REDIS_URL,
        CHATSERVER_REDIS_PREFIX=f"bench{uuid.uuid4().hex[:8]}:",
        CHATSERVER_SECRET_KEY=SECRET,
        CHATSERVER_ROUTING="offers",
        CHATSERVER_MAX_CONCURRENT="1000",
        CHATSERVER_RATE_LIMIT_PER_S="100000",
        CHATSERVER_RATE_LIMIT_BURST="100000",
        CHATSERVER_SEND_QUEUE="100000",
        CHATSERVER_DATA_DIR=str(tmp / f"data{n_procs}"),
        PYTHONUNBUFFERED="1",
    )
    seed = seed_via_cli(
        env,
        cfg.agents,
        migrate=True,
        password=PASSWORD,
        role="agent",
        inbox="Scale",
        domain="scale.test",
        supervisor=False,
    )
    servers = []
    for i in range(n_procs):
        port = free_port()
        s = Server(
            f"web{i}",
            [str(BIN / "chatserver"), "serve", "--port", str(port)],
            env,
            port,
            tmp / f"web{n_procs}-{i}.log",
        )
        s.start()
        servers.append(s)
    bases = [f"http://127.0.0.1:{s.port}" for s in servers]
    result: dict[str, Any] = {"processes": n_procs, "agents": cfg.agents}
    try:
        offered_at: dict[str, float] = {}
        latencies: list[float] = []
        agents = []
        for i, a in enumerate(seed["agents"]):
            url = f"{bases[i % n_procs].replace('http', 'ws')}/ws/agent"
            ws = await connect(url, additional_headers={"Authorization": f"Bearer {a['token']}"})
            await ws.send(orjson.dumps({"type": "resume", "cursors": {}}).decode())
            agents.append(Agent(ws, offered_at, latencies))
        await asyncio.sleep(1.0)  # presence reaches the router
        tokens = await visitor_tokens(bases, seed["inbox"]["key"], cfg.conversations)
        # arrivals, open loop
        cpu0 = {s.name: cpu_s(s.pid) for s in servers}
        frames0 = sum(a.frames["conversation"] for a in agents)
        started: dict[str, float] = {}
        visitors: list[tuple[ClientConnection, str]] = []
        t_arrive = time.monotonic()

        async def arrive(i: int, base: str, token: str) -> None:
            await asyncio.sleep(i / cfg.rate)
            ws, cid, t0 = await start_one(base, token)
            started[cid] = t0
            visitors.append((ws, cid))

        await asyncio.gather(*(arrive(i, b, t) for i, (b, t) in enumerate(tokens)))
        async with asyncio.timeout(120):
            while len([c for c in started if c in offered_at]) < len(started):  # noqa: ASYNC110 (a poll)
                await asyncio.sleep(0.1)
        arrival_s = time.monotonic() - t_arrive
        waits = [(offered_at[c] - t0) * 1000 for c, t0 in started.items()]
        conv_frames = sum(a.frames["conversation"] for a in agents) - frames0
        result["arrivals"] = {
            "conversations": len(started),
            "offered_rate_per_s": cfg.rate,
            "achieved_per_s": round(len(started) / arrival_s, 1),
            "start_to_offer_ms": {"p50": pct(waits, 0.5), "p99": pct(waits, 0.99)},
            "conversation_frames_to_agents_per_conversation": round(conv_frames / max(len(started), 1), 2),
            "server_cpu_s": {s.name: round(cpu_s(s.pid) - cpu0[s.name], 2) for s in servers},
        }
        readers = [asyncio.create_task(drain(ws)) for ws, _ in visitors]
        await asyncio.sleep(1.0)  # the accepts land
        # messages at a fixed rate
        for a in agents:
            a.recording = True
        cpu0 = {s.name: cpu_s(s.pid) for s in servers}
        per_visitor_s = len(visitors) / cfg.msg_rate
        stop_at = time.monotonic() + cfg.duration
        sent = 0

        async def talk(ws: ClientConnection, cid: str, offset: float) -> None:
            nonlocal sent
            await asyncio.sleep(offset)
            n = 0
            while time.monotonic() < stop_at:
                n += 1
                frame = {
                    "type": "message.send",
                    "conversation_id": cid,
                    "client_id": f"b{n}",
                    "text": f"t={time.time()} x",
                }
                with contextlib.suppress(Exception):
                    await ws.send(orjson.dumps(frame).decode())
                    sent += 1
                await asyncio.sleep(per_visitor_s)

        t_msgs = time.monotonic()
        await asyncio.gather(*(talk(ws, cid, random.random() * per_visitor_s) for ws, cid in visitors))
        await asyncio.sleep(2.0)  # the last ones arrive
        elapsed = time.monotonic() - t_msgs
        cpu = {s.name: round(cpu_s(s.pid) - cpu0[s.name], 2) for s in servers}
        total_cpu = sum(cpu.values())
        result["messages"] = {
            "offered_msgs_per_s": cfg.msg_rate,
            "sent": sent,
            "delivered": len(latencies),
            "delivered_per_s": round(len(latencies) / elapsed, 1),
            "visitor_to_agent_ms": {"p50": pct(latencies, 0.5), "p99": pct(latencies, 0.99)},
            "server_cpu_s": cpu,
            "msgs_per_cpu_s": round(len(latencies) / total_cpu, 1) if total_cpu else None,
            "rss_mib": {s.name: round(s.rss() / 2**20, 1) for s in servers},
        }
        for t in readers:
            t.cancel()
        for ws, _ in visitors:
            with contextlib.suppress(Exception):
                await ws.close()
        for a in agents:
            with contextlib.suppress(Exception):
                await a.ws.close()
    finally:
        for s in servers:
            s.stop()
        result["logs"] = {s.name: s.log_summary()["problems"] for s in servers}
        with contextlib.suppress(Exception):
            await asyncio.to_thread(pg, f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    return result


def widget_backoff(attempt: int, rng: random.Random) -> float:
    """widget/chat.js: exponential from 1 s, capped at 30 s, half of it jitter."""
    base = min(30.0, 2.0**attempt)
    return base / 2 + rng.random() * (base / 2)


async def storm(cfg: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """N visitors on one process drop at once and come back with the widget's backoff; all must resume
    exactly. The process's RSS is sampled throughout."""
    port = free_port()
    data = tmp / "storm-data"
    data.mkdir()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("CHATSERVER_", "DATABASE_URL", "REDIS_URL"))
    }
    env.update(
        CHATSERVER_DATA_DIR=str(data),
        CHATSERVER_SECRET_KEY=SECRET,
        CHATSERVER_ROUTING="manual",
        CHATSERVER_RATE_LIMIT_PER_S="100000",
        CHATSERVER_RATE_LIMIT_BURST="100000",
        CHATSERVER_SEND_QUEUE="100000",
        CHATSERVER_WS_PER_ADDRESS=str(cfg.storm * 2 + 100),
        PYTHONUNBUFFERED="1",
    )
    seed = seed_via_cli(
        env,
        1,
        migrate=False,
        password=PASSWORD,
        role="admin",
        inbox="Storm",
        domain="storm.test",
        supervisor=False,
    )
    server = Server(
        "storm", [str(BIN / "chatserver"), "serve", "--port", str(port)], env, port, tmp / "storm.log"
    )
    server.start()
    base = f"http://127.0.0.1:{port}"
    rng = random.Random(2000)
    peak = [server.rss()]
    sampling = True

    async def sample() -> None:
        while sampling:
            peak[0] = max(peak[0], server.rss())
            await asyncio.sleep(0.2)

    sampler = asyncio.create_task(sample())
    try:
        tokens = [t for _, t in await visitor_tokens([base], seed["inbox"]["key"], cfg.storm)]
        await asyncio.sleep(1.0)
        rss_before = server.rss()
        conns: list[tuple[ClientConnection, str, str]] = []
        sem = asyncio.Semaphore(64)

        async def open_one(tok: str) -> None:
            async with sem:
                ws, cid, _ = await start_one(base, tok)
            conns.append((ws, cid, tok))

        await asyncio.gather(*(open_one(t) for t in tokens))
        by_cid = {cid: tok for _, cid, tok in conns}
        await asyncio.sleep(1.0)
        rss_connected = server.rss()
        for ws, _, _ in conns:
            ws.transport.abort()
        # an agent writes one reply into every conversation while they are away
        agent = await connect(
            f"ws://127.0.0.1:{port}/ws/agent",
            additional_headers={"Authorization": f"Bearer {seed['agents'][0]['token']}"},
        )
        await agent.send(orjson.dumps({"type": "resume", "cursors": {}}).decode())
        acks = 0
        for cid in by_cid:
            await agent.send(
                orjson.dumps(
                    {
                        "type": "message.send",
                        "conversation_id": cid,
                        "client_id": "r",
                        "text": "r",
                        "ref": cid,
                    }
                ).decode()
            )
        while acks < len(by_cid):
            f = orjson.loads(await agent.recv())
            if f.get("type") == "ack" and f.get("ref") in by_cid:
                acks += 1
        t0 = time.monotonic()
        exact = 0
        attempts: list[int] = []
        errors: Counter[str] = Counter()

        async def come_back(cid: str, tok: str) -> None:
            nonlocal exact
            attempt = 0
            while True:
                await asyncio.sleep(widget_backoff(attempt, rng))
                attempt += 1
                try:  # the widget gives up on a silent connection after its heartbeat (here 30 s)
                    async with asyncio.timeout(30):
                        ws = await connect(f"ws://127.0.0.1:{port}/ws/visitor?token={tok}")
                        await ws.send(
                            orjson.dumps({"type": "resume", "ref": "r", "cursors": {cid: 0}}).decode()
                        )
                        seqs: list[int] = []
                        while True:
                            f = orjson.loads(await ws.recv())
                            if f.get("type") == "message":
                                seqs.append(f["seq"])
                            elif f.get("type") == "resumed":
                                break
                            elif f.get("type") == "error":
                                errors[str(f.get("code"))] += 1
                except Exception as exc:
                    errors[type(exc).__name__] += 1
                    continue
                attempts.append(attempt)
                if seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 1:
                    exact += 1
                await ws.close()
                return

        back = [asyncio.create_task(come_back(cid, tok)) for cid, tok in by_cid.items()]
        _, late = await asyncio.wait(back, timeout=cfg.storm_limit)
        for t in late:
            t.cancel()
        took = time.monotonic() - t0
        await agent.close()
        return {
            "visitors": cfg.storm,
            "resumed_exactly": exact,
            "all_resumed_s": round(took, 1),
            "not_back_within_limit": len(late),
            "limit_s": cfg.storm_limit,
            "attempts_max": max(attempts, default=0),
            "errors_seen": dict(errors),
            "rss_mib": {
                "before": round(rss_before / 2**20, 1),
                "connected": round(rss_connected / 2**20, 1),
                "peak": round(peak[0] / 2**20, 1),
            },
            "rss_kib_per_connection_with_a_conversation": round(
                (rss_connected - rss_before) / 1024 / cfg.storm, 1
            ),
        }
    finally:
        sampling = False
        sampler.cancel()
        server.stop()


async def amain(cfg: argparse.Namespace) -> dict[str, Any]:
    raise_nofile(65536)
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"scale-{uuid.uuid4().hex[:6]}"
    tmp.mkdir(parents=True)
    out: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "load_average_1m_at_start": round(os.getloadavg()[0], 2)},
        "config": {k: v for k, v in vars(cfg).items() if k != "out"},
        "layouts": [],
    }
    for n in [int(x) for x in cfg.layouts.split(",") if x]:
        out["layouts"].append(await layout_run(cfg, n, tmp))
    if cfg.storm:
        out["storm"] = await storm(cfg, tmp)
    if cfg.rolling:
        from bench.scale_rolling import rolling

        out["rolling_restart"] = await rolling(cfg.rolling, tmp, REDIS_URL, cfg.storm_limit)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short phases")
    ap.add_argument("--agents", type=int, default=20)
    ap.add_argument("--conversations", type=int, help="arrivals (500; quick 100)")
    ap.add_argument("--rate", type=float, default=50.0, help="new conversations per second")
    ap.add_argument("--msg-rate", type=float, default=1000.0, help="visitor messages per second in all")
    ap.add_argument("--duration", type=float, help="seconds of messages (10; quick 4)")
    ap.add_argument("--storm", type=int, default=0, help="visitors in the reconnect storm (0: none)")
    ap.add_argument(
        "--storm-limit",
        type=float,
        default=120.0,
        help="seconds the storm (or each phase of the rolling restart) may take at most",
    )
    ap.add_argument("--rolling", type=int, default=0, help="visitors in the rolling restart (0: none)")
    ap.add_argument("--layouts", default="1,2", help="numbers of web processes to run the load against")
    ap.add_argument("--out", type=Path, default=RESULTS)
    cfg = ap.parse_args()
    cfg.conversations = cfg.conversations or (100 if cfg.quick else 500)
    cfg.duration = cfg.duration or (4.0 if cfg.quick else 10.0)
    result = asyncio.run(amain(cfg))
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    cfg.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
