"""Core benchmark of the chat server: persisted throughput, delivery latency, memory per idle connection.

For SQLite (embedded) and PostgreSQL, in one run, against a real ``chatserver serve`` subprocess on
loopback (in-process bus), in this order:

1. **Memory per idle connection** -- on the fresh server: RSS before and after ``--idle`` (1,000)
   visitor connections that completed the ``hello``; (delta RSS) / connections.
2. **Latency** -- ``--pairs`` (50) fresh visitor/agent pairs (each visitor its own conversation; 10
   agent connections claim 5 conversations each). Open loop: sends are scheduled by the clock at
   ``--rate`` (1,000) messages/s in total, round-robin over the visitors, never waiting for acks.
   Per message: visitor send -> the claiming agent's connection receives the ``message`` frame
   (p50/p99/max), and send -> ack (p50/p99). One second of the same schedule runs first as a warm-up.
3. **Throughput** -- another 50 fresh pairs. Every visitor sends ``message.send`` as fast as acks allow,
   with at most ``--window`` (8) unacknowledged sends, for ``--duration`` seconds after a warm-up.
   The figure is acks received in the window / seconds: an ack is only sent after the message is
   committed, so this is *persisted* messages/s.
4. **Checks** -- ``GET /api/v1/conversations/{id}`` (``last_seq``) must have grown by exactly the number
   of acks, per conversation; every acked message must have reached the agent and the visitor's echo.
   Group-commit batch sizes are read back from the database (one ``created_at`` per batch).
5. **Raw relay** (``bench/relay.py``, no persistence) under the same loads, as the ceiling the chat
   server is compared with (chat server msgs/s as % of the relay's).

The load generator is one separate process (``--clients`` to use more), never the server's. CPU time of
server, clients and everything else on the machine is reported for each phase (psutil), and how long
the server was runnable but waiting for a CPU (schedstat), since on a 2-core machine a busy client or
a parallel job can starve the server.

Run: ``.venv/bin/python bench/core.py`` (about 2-3 minutes) or ``--quick`` (about 1 minute).
``--profile DIR`` instead runs only the SQLite throughput phase with py-spy attached to the server and
prints the hot spots (see bench/README.md). Writes ``bench/results/core.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import json
import multiprocessing as mp
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil  # type: ignore[import-untyped]
from common import (  # bench/common.py (this script's folder)
    BIN,
    PG_ADMIN_DSN,
    ROOT,
    Server,
    free_port,
    pg,
    raise_nofile,
    seed_via_cli,
)

RESULTS = ROOT / "bench" / "results" / "core.json"
SECRET = "bench-secret-" + "k" * 30
PASSWORD = "pw-long-one"

TARGETS = {
    "throughput_msgs_per_s": (">=", 2000.0),
    "latency_p99_ms": ("<=", 25.0),
    "idle_kib_per_conn": ("<=", 24.0),
    "relay_pct": (">=", 50.0),
}

now = time.perf_counter  # CLOCK_MONOTONIC on Linux: comparable across the client processes


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(q * (len(s) - 1))))
    return s[k]


def ms_stats(values: list[float]) -> dict[str, Any]:
    """Seconds -> {count, p50, p90, p99, max} in ms."""
    out: dict[str, Any] = {"count": len(values)}
    for name, q in (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("max", 1.0)):
        v = pct(values, q)
        out[name] = None if v is None else round(v * 1000, 3)
    return out


# ============================================================================================
# Client side: runs in its own process(es); driven by the orchestrator through a Pipe.
# ============================================================================================


@dataclass
class Pair:
    idx: int
    visitor_url: str
    ws: Any = None
    cid: str = ""
    inflight: dict[str, float] = field(default_factory=dict)  # client_id -> send time (until ack)
    undelivered: dict[str, float] = field(default_factory=dict)  # client_id -> send time (until agent)
    sem: asyncio.Semaphore | None = None
    acked: int = 0  # all successful message acks, all phases
    delivered: int = 0
    echoes: int = 0
    errors: int = 0
    sent: int = 0
    group: str = ""
    counter: itertools.count = field(default_factory=itertools.count)


class ClientState:
    def __init__(self, worker: int) -> None:
        self.worker = worker
        self.groups: dict[str, list[Pair]] = {}
        self.by_cid: dict[str, Pair] = {}
        self.agents: list[Any] = []
        self.idle: list[Any] = []
        self.waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.closes: list[dict[str, Any]] = []
        self.frame_types: Counter[str] = Counter()
        self.error_codes: Counter[str] = Counter()
        self.closing = False
        self.reset_phase(False)

    def reset_phase(self, recording: bool, stop_at: float = float("inf"), t0: float | None = None) -> None:
        self.recording = recording
        self.stop_at = stop_at
        self.t0 = now() if t0 is None else t0
        self.timeline: list[int] = [0] * 64
        self.ack_lat: list[float] = []
        self.del_lat: list[float] = []
        self.window_acks = 0
        self.phase_acks = 0
        self.phase_errors = 0

    # -- connections ----------------------------------------------------------------------------

    async def _connect(self, url: str, headers: dict[str, str] | None = None) -> Any:
        from websockets.asyncio.client import connect

        return await connect(
            url,
            additional_headers=headers,
            compression=None,
            ping_interval=None,
            open_timeout=60,
            close_timeout=2,
            max_size=2**20,
            max_queue=None,
        )

    def _spawn(self, coro: Any) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    def _closed(self, ws: Any, role: str) -> None:
        if not self.closing:
            self.closes.append({"role": role, "code": ws.close_code, "reason": ws.close_reason})

    async def _request(self, ws: Any, frame: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
        ref = f"r{uuid.uuid4().hex[:10]}"
        frame["ref"] = ref
        fut = asyncio.get_running_loop().create_future()
        self.waiters[ref] = fut
        await ws.send(orjson.dumps(frame).decode())
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self.waiters.pop(ref, None)

    def _answer(self, f: dict[str, Any]) -> bool:
        fut = self.waiters.get(f.get("ref") or "")
        if fut is not None and not fut.done():
            fut.set_result(f)
            return True
        return False

    async def _visitor_reader(self, p: Pair) -> None:
        from websockets.exceptions import ConnectionClosed

        loads = orjson.loads
        try:
            async for raw in p.ws:
                f = loads(raw)
                kind = f.get("type")
                if kind == "ack":
                    ref = f.get("ref")
                    t = p.inflight.pop(ref, None)
                    if t is None:
                        self._answer(f)
                        continue
                    t_now = now()
                    p.acked += 1
                    self.phase_acks += 1
                    if t_now <= self.stop_at:
                        self.window_acks += 1
                    if self.recording:
                        self.ack_lat.append(t_now - t)
                        sec = int(t_now - self.t0)
                        if 0 <= sec < 64:
                            self.timeline[sec] += 1
                    if p.sem is not None:
                        p.sem.release()
                elif kind == "message":
                    if f["message"].get("client_id"):
                        p.echoes += 1
                elif kind == "error":
                    self.frame_types["error"] += 1
                    self.error_codes[f.get("code", "?")] += 1
                    ref = f.get("ref")
                    if ref in p.inflight:
                        p.inflight.pop(ref)
                        p.undelivered.pop(ref, None)
                        p.errors += 1
                        self.phase_errors += 1
                        if p.sem is not None:
                            p.sem.release()
                    else:
                        self._answer(f)
                else:
                    self.frame_types[f"visitor:{kind}"] += 1
        except ConnectionClosed:
            pass
        finally:
            self._closed(p.ws, "visitor")

    async def _agent_reader(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        loads = orjson.loads
        try:
            async for raw in ws:
                f = loads(raw)
                kind = f.get("type")
                if kind == "message":
                    p = self.by_cid.get(f["conversation_id"])
                    if p is None:
                        continue
                    t = p.undelivered.pop(f["message"].get("client_id"), None)
                    if t is not None:
                        p.delivered += 1
                        if self.recording:
                            self.del_lat.append(now() - t)
                elif kind in ("ack", "error"):
                    if kind == "error":
                        self.frame_types["agent:error"] += 1
                        self.error_codes[f.get("code", "?")] += 1
                    self._answer(f)
                else:
                    self.frame_types[f"agent:{kind}"] += 1
        except ConnectionClosed:
            pass
        finally:
            self._closed(ws, "agent")

    # -- commands -------------------------------------------------------------------------------

    async def tokens(self, base: str, inbox_key: str, n: int, concurrency: int = 16) -> list[str]:
        out: list[str] = [""] * n
        sem = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:

            async def one(i: int) -> None:
                async with sem:
                    r = await http.post("/api/v1/widget/sessions", json={"inbox_key": inbox_key})
                    r.raise_for_status()
                    out[i] = r.json()["token"]

            await asyncio.gather(*(one(i) for i in range(n)))
        return out

    async def pairs_open(
        self, group: str, visitor_urls: list[str], agents: list[dict[str, Any]], per_agent: int
    ) -> dict[str, Any]:
        """Open the agents (once), then the visitors of ``group``; each visitor starts a conversation
        that agent ``i // per_agent`` claims."""
        t0 = now()
        if not self.agents:
            for spec in agents:
                ws = await self._connect(spec["url"], spec.get("headers"))
                hello = orjson.loads(await ws.recv())
                assert hello["type"] == "hello", hello
                self.agents.append(ws)
                self._spawn(self._agent_reader(ws))
        sem = asyncio.Semaphore(25)

        async def open_pair(i: int, url: str) -> Pair:
            async with sem:
                p = Pair(i, url)
                p.ws = await self._connect(url)
                hello = orjson.loads(await p.ws.recv())
                assert hello["type"] == "hello", hello
                self._spawn(self._visitor_reader(p))
                ack = await self._request(p.ws, {"type": "conversation.start"})
                assert ack["type"] == "ack", ack
                p.cid = ack["conversation_id"]
                self.by_cid[p.cid] = p
                agent = self.agents[(i // per_agent) % len(self.agents)]
                for attempt in range(5):  # a concurrent change (e.g. a routing offer) is a conflict
                    claim = {"type": "conversation.claim", "conversation_id": p.cid}
                    ack = await self._request(agent, claim)
                    if ack.get("code") != "conflict":
                        break
                    await asyncio.sleep(0.05 * (attempt + 1))
                assert ack["type"] == "ack", ack
                return p

        pairs = list(await asyncio.gather(*(open_pair(i, u) for i, u in enumerate(visitor_urls))))
        for p in pairs:
            p.group = group
        self.groups[group] = pairs
        await asyncio.sleep(0.3)  # let the claim's own frames (conversation, joined event) arrive
        return {"cids": [p.cid for p in pairs], "setup_s": round(now() - t0, 3)}

    def _frame(self, p: Pair, text_pad: str) -> tuple[str, str]:
        client_id = f"w{self.worker}{p.group}{p.idx}m{next(p.counter)}"
        frame = (
            f'{{"type":"message.send","ref":"{client_id}","conversation_id":"{p.cid}",'
            f'"client_id":"{client_id}","text":"{text_pad}"}}'
        )
        return client_id, frame

    async def _drain(self, pairs: list[Pair], timeout: float) -> bool:
        deadline = now() + timeout
        while now() < deadline:
            if not any(p.inflight or p.undelivered for p in pairs):
                return True
            await asyncio.sleep(0.02)
        return False

    async def throughput(
        self, group: str, duration: float, window: int, warmup: float, text_bytes: int
    ) -> dict[str, Any]:
        pad = "x" * text_bytes
        pairs = self.groups[group]
        if warmup > 0:
            await self._closed_loop(pairs, warmup, window, pad, record=False)
        return await self._closed_loop(pairs, duration, window, pad, record=True)

    async def _closed_loop(
        self, pairs: list[Pair], duration: float, window: int, pad: str, record: bool
    ) -> dict[str, Any]:
        start_len = sum(p.acked for p in pairs) / len(pairs)
        t0 = now()
        stop_at = t0 + duration
        self.reset_phase(record, stop_at, t0)
        sent = 0

        async def visitor(p: Pair) -> None:
            nonlocal sent
            p.sem = sem = asyncio.Semaphore(window)
            try:
                while True:
                    await sem.acquire()
                    t = now()
                    if t >= stop_at:
                        return
                    client_id, frame = self._frame(p, pad)
                    p.inflight[client_id] = t
                    p.undelivered[client_id] = t
                    p.sent += 1
                    sent += 1
                    await p.ws.send(frame)
            except Exception as exc:  # a closed connection ends this visitor; reported via closes
                self.frame_types[f"send_failed:{type(exc).__name__}"] += 1

        await asyncio.gather(*(visitor(p) for p in pairs))
        drained = await self._drain(pairs, 15)
        for p in pairs:
            p.sem = None
        res = {
            "duration_s": duration,
            "sent": sent,
            "acked_in_window": self.window_acks,
            "acked_total": self.phase_acks,
            "errors": self.phase_errors,
            "msgs_per_s": round(self.window_acks / duration, 1),
            "per_second": self.timeline[: max(1, int(duration + 0.999))],
            "msgs_per_conversation_at_start": round(start_len, 1),
            "msgs_per_conversation_at_end": round(sum(p.acked for p in pairs) / len(pairs), 1),
            "drained": drained,
            "ack_ms_under_load": ms_stats(self.ack_lat),
            "deliver_ms_under_load": ms_stats(self.del_lat),
        }
        self.reset_phase(False)
        return res

    async def latency(
        self, group: str, rate: float, duration: float, warmup: float, text_bytes: int
    ) -> dict[str, Any]:
        """Open loop: sends scheduled by the clock at ``rate``; the first ``warmup`` seconds of the same
        schedule are not recorded."""
        pad = "x" * text_bytes
        pairs = self.groups[group]
        n = len(pairs)
        interval = 1.0 / rate
        t0 = now() + 0.05
        t_rec = t0 + warmup
        end = t_rec + duration
        self.reset_phase(False, float("inf"), t_rec)
        start_len = 0.0
        lags: list[float] = []
        j = 0
        sent = 0
        while True:
            target = t0 + j * interval
            if target >= end:
                break
            delay = target - now()
            if delay > 0:
                await asyncio.sleep(delay)
            if not self.recording and target >= t_rec:
                start_len = sum(p.acked for p in pairs) / n
                self.recording = True
            p = pairs[j % n]
            j += 1
            t = now()
            client_id, frame = self._frame(p, pad)
            if self.recording:  # warm-up sends are counted and checked, but not their latencies
                lags.append(t - target)
                sent += 1
            p.inflight[client_id] = t
            p.undelivered[client_id] = t
            p.sent += 1
            try:
                await p.ws.send(frame)
            except Exception as exc:
                self.frame_types[f"send_failed:{type(exc).__name__}"] += 1
        wall = now() - t_rec
        drained = await self._drain(pairs, 15)
        lost = sum(len(p.undelivered) for p in pairs)
        res = {
            "offered_rate": rate,
            "sent": sent,
            "actual_send_rate": round(sent / wall, 1),
            "send_lag_ms": ms_stats(lags),
            "deliver_ms": ms_stats(self.del_lat),
            "ack_ms": ms_stats(self.ack_lat),
            "errors": self.phase_errors,
            "msgs_per_conversation_at_start": round(start_len, 1),
            "undelivered_after_drain": lost,
            "drained": drained,
        }
        self.reset_phase(False)
        return res

    async def pair_counts(self) -> list[dict[str, Any]]:
        return [
            {
                "cid": p.cid,
                "group": p.group,
                "sent": p.sent,
                "acked": p.acked,
                "delivered": p.delivered,
                "echoes": p.echoes,
                "errors": p.errors,
                "pending_ack": len(p.inflight),
                "pending_delivery": len(p.undelivered),
            }
            for pairs in self.groups.values()
            for p in pairs
        ]

    async def idle_open(self, urls: list[str], concurrency: int = 64) -> dict[str, Any]:
        t0 = now()
        sem = asyncio.Semaphore(concurrency)
        failed: Counter[str] = Counter()

        async def one(url: str) -> None:
            async with sem:
                try:
                    ws = await self._connect(url)
                    hello = orjson.loads(await asyncio.wait_for(ws.recv(), 30))
                    if hello.get("type") != "hello":
                        failed[f"first frame {hello.get('type')}"] += 1
                    self.idle.append(ws)
                except Exception as exc:
                    failed[type(exc).__name__] += 1

        await asyncio.gather(*(one(u) for u in urls))
        return {"opened": len(self.idle), "failed": dict(failed), "open_s": round(now() - t0, 3)}

    async def idle_close(self) -> dict[str, Any]:
        still_open = sum(1 for ws in self.idle if ws.close_code is None)
        self.closing = True
        await asyncio.gather(*(ws.close() for ws in self.idle), return_exceptions=True)
        self.closing = False
        self.idle = []
        return {"still_open_before_close": still_open}

    async def close_all(self) -> dict[str, Any]:
        report = {
            "closes": self.closes,
            "frame_types": dict(self.frame_types),
            "error_codes": dict(self.error_codes),
        }
        self.closing = True
        visitors = [p.ws for ps in self.groups.values() for p in ps if p.ws is not None]
        conns = visitors + self.agents + self.idle
        await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
        for t in list(self.tasks):
            t.cancel()
        self.groups, self.agents, self.idle, self.by_cid = {}, [], [], {}
        self.closes, self.frame_types, self.error_codes = [], Counter(), Counter()
        self.closing = False
        return report


async def _client_loop(conn: Any, worker: int) -> None:
    loop = asyncio.get_running_loop()
    state = ClientState(worker)
    while True:
        cmd, kwargs = await loop.run_in_executor(None, conn.recv)
        if cmd == "quit":
            conn.send(("ok", None))
            return
        try:
            result = await getattr(state, cmd)(**kwargs)
            conn.send(("ok", result))
        except Exception:
            conn.send(("err", traceback.format_exc()))


def client_main(conn: Any, worker: int) -> None:
    raise_nofile(16384)
    import uvloop

    uvloop.run(_client_loop(conn, worker))


class Clients:
    """The client processes, driven in parallel (each gets its share of pairs / idle connections)."""

    def __init__(self, n: int) -> None:
        ctx = mp.get_context("spawn")
        self.procs = []
        self.conns = []
        for i in range(n):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=client_main, args=(child, i), daemon=True, name=f"bench-client-{i}")
            proc.start()
            self.procs.append(proc)
            self.conns.append(parent)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def call_all(self, cmd: str, per_worker: list[dict[str, Any]] | None = None, **kwargs: Any) -> list[Any]:
        for i, conn in enumerate(self.conns):
            args = dict(kwargs)
            if per_worker is not None:
                args.update(per_worker[i])
            conn.send((cmd, args))
        out = []
        for conn in self.conns:
            status, result = conn.recv()
            if status != "ok":
                raise RuntimeError(f"client command {cmd} failed:\n{result}")
            out.append(result)
        return out

    def call_one(self, cmd: str, **kwargs: Any) -> Any:
        self.conns[0].send((cmd, kwargs))
        status, result = self.conns[0].recv()
        if status != "ok":
            raise RuntimeError(f"client command {cmd} failed:\n{result}")
        return result

    def stop(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(Exception):
                conn.send(("quit", {}))
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()


def split(items: list[Any], n: int) -> list[list[Any]]:
    return [items[i::n] for i in range(n)]


def merge_stats(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge per-client results: sum counts; for percentiles keep the worst client's (conservative)."""
    if len(parts) == 1:
        return parts[0]
    out: dict[str, Any] = {}
    for k, v in parts[0].items():
        if isinstance(v, dict) and "p99" in v:
            out[k] = {
                kk: (sum(p[k][kk] for p in parts) if kk == "count" else max((p[k][kk] or 0) for p in parts))
                for kk in v
            }
        elif isinstance(v, list) and all(isinstance(x, int) for x in v):
            out[k] = [sum(xs) for xs in zip(*(p[k] for p in parts), strict=False)]
        elif isinstance(v, bool):
            out[k] = all(p[k] for p in parts)
        elif isinstance(v, int | float) and k not in ("duration_s", "offered_rate"):
            out[k] = sum(p[k] for p in parts)
        else:
            out[k] = v
    return out


# ============================================================================================
# Orchestrator side: servers, seeding, phases, CPU accounting, report.
# ============================================================================================


class CpuMeter:
    """CPU seconds of the server, the clients, PostgreSQL (when used) and the whole machine over a
    phase, plus how long the server's threads were runnable but waiting for a CPU (schedstat run
    delay: starvation by others)."""

    def __init__(self, server_pid: int, client_pids: list[int], db_name: str | None = None) -> None:
        self.server = psutil.Process(server_pid)
        self.clients = [psutil.Process(p) for p in client_pids]
        self.me = psutil.Process()
        self.db_name = db_name

    @staticmethod
    def _busy() -> float:
        t = psutil.cpu_times()
        return float(t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0))

    def _db_cpu(self) -> dict[int, float]:
        """CPU seconds of the PostgreSQL backends serving our database, plus the shared WAL writer,
        checkpointer and background writer (our commits drive them; another job's would too)."""
        out: dict[int, float] = {}
        if self.db_name is None:
            return out
        for proc in psutil.process_iter(["cmdline"]):
            cmd = " ".join(proc.info.get("cmdline") or [])
            if cmd.startswith("postgres:") and (
                f" {self.db_name} " in f"{cmd} "
                or any(w in cmd for w in ("walwriter", "checkpointer", "background writer"))
            ):
                with contextlib.suppress(psutil.Error):
                    c = proc.cpu_times()
                    out[proc.pid] = c.user + c.system
        return out

    def _run_delay(self) -> float:
        total = 0
        for task in Path(f"/proc/{self.server.pid}/task").glob("*/schedstat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int(task.read_text().split()[1])
        return total / 1e9

    def _sample(self) -> tuple[Any, ...]:
        def cpu(p: psutil.Process) -> float:
            c = p.cpu_times()
            return float(c.user + c.system)

        return (
            time.monotonic(),
            cpu(self.server),
            sum(cpu(c) for c in self.clients),
            cpu(self.me),
            self._busy(),
            self._run_delay(),
            self._db_cpu(),
        )

    def start(self) -> None:
        self._t0 = self._sample()

    def stop(self) -> dict[str, Any]:
        t1 = self._sample()
        wall = t1[0] - self._t0[0]
        server, clients, me, busy, delay = (t1[i] - self._t0[i] for i in range(1, 6))
        # backends that closed during the phase are lost; ones opened during it count in full
        db = sum(max(0.0, cpu - self._t0[6].get(pid, 0.0)) for pid, cpu in t1[6].items())
        cores = psutil.cpu_count() or 1

        def pc(x: float) -> float:
            return round(100 * x / wall, 1)

        return {
            "wall_s": round(wall, 2),
            "server_pct_of_core": pc(server),
            "clients_pct_of_core": pc(clients),
            "orchestrator_pct_of_core": pc(me),
            "postgres_pct_of_core": pc(db) if self.db_name else None,
            "other_pct_of_core": pc(max(0.0, busy - server - clients - me - db)),
            "machine_busy_pct": round(100 * busy / (wall * cores), 1),
            "server_runqueue_wait_pct": pc(delay),
            "cores": cores,
        }


def fsync_probe(directory: Path, n: int = 200) -> dict[str, Any]:
    """fsync latency of 4 KiB appends in ``directory`` (where SQLite's WAL lives): the floor of an
    SQLite commit with synchronous=FULL. On a shared machine its tail shows I/O contention."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    times = []
    try:
        for _ in range(n):
            os.write(fd, b"x" * 4096)
            t = now()
            os.fsync(fd)
            times.append(now() - t)
    finally:
        os.close(fd)
        path.unlink()
    return ms_stats(times)


def cpu_pressure() -> str | None:
    with contextlib.suppress(OSError):
        return Path("/proc/pressure/cpu").read_text().splitlines()[0]
    return None


def commit_batches(db: tuple[str, str], cids: list[str]) -> dict[str, Any]:
    """Group-commit batch sizes, read back from the database: every message of one batch carries the
    same ``created_at`` (the writer stamps the batch once), so messages per distinct ``created_at`` of
    these conversations = batch size (two batches within one millisecond would merge; rare)."""
    sql = (
        "SELECT created_at, count(*) FROM messages"
        " WHERE client_id IS NOT NULL AND conversation_id IN ({}) GROUP BY created_at"
    )
    if db[0] == "sqlite":
        conn = sqlite3.connect(f"file:{db[1]}?mode=ro", uri=True)
        try:
            rows = conn.execute(sql.format(",".join("?" * len(cids))), cids).fetchall()
        finally:
            conn.close()
    else:

        async def fetch() -> list[Any]:
            import asyncpg

            c = await asyncpg.connect(db[1], timeout=10)
            try:
                ph = ",".join(f"${i + 1}" for i in range(len(cids)))
                return list(await c.fetch(sql.format(ph), *cids))
            finally:
                await c.close()

        rows = [tuple(r) for r in asyncio.run(fetch())]
    sizes = sorted(int(r[1]) for r in rows if int(r[1]) > 0)
    if not sizes:
        return {"batches": 0}
    span_s = max(1e-3, (max(int(r[0]) for r in rows) - min(int(r[0]) for r in rows)) / 1000)
    return {
        "batches": len(sizes),
        "messages": sum(sizes),
        "mean_size": round(sum(sizes) / len(sizes), 1),
        "p50_size": pct([float(x) for x in sizes], 0.5),
        "p90_size": pct([float(x) for x in sizes], 0.9),
        "max_size": sizes[-1],
        "batches_per_s": round(len(sizes) / span_s, 1),
    }


def settle_rss(server: Server, max_s: float) -> int:
    """Poll RSS until it stops growing (two consecutive 0.5 s samples within 64 KiB) or max_s."""
    deadline = time.monotonic() + max_s
    last = server.rss()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        cur = server.rss()
        if abs(cur - last) < 64 * 1024:
            return cur
        last = cur
    return server.rss()


def rest_last_seqs(base: str, token: str, cids: list[str]) -> dict[str, int]:
    out = {}
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        for cid in cids:
            r = http.get(f"/api/v1/conversations/{cid}")
            r.raise_for_status()
            out[cid] = int(r.json()["last_seq"])
    return out


@dataclass
class Config:
    pairs: int
    agents: int
    window: int
    duration: float
    warmup: float
    rate: float
    lat_duration: float
    idle: int
    text_bytes: int
    clients: int
    quick: bool


def bench_backend(
    kind: str,
    cfg: Config,
    clients: Clients,
    tmp: Path,
    profile_dir: Path | None = None,
    native: bool = False,
) -> dict[str, Any]:
    """One full pass against a chat server on SQLite or PostgreSQL (kind) or the raw relay."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("CHATSERVER_", "DATABASE_URL", "REDIS_URL"))
    }
    env.update(
        CHATSERVER_RATE_LIMIT_PER_S="100000",
        CHATSERVER_RATE_LIMIT_BURST="100000",
        CHATSERVER_ADMIN_PASSWORD=PASSWORD,
        CHATSERVER_SECRET_KEY=SECRET,
        # the benchmark assigns conversations itself (claims); automatic offers would race with them
        CHATSERVER_ROUTING="manual",
        PYTHONUNBUFFERED="1",
    )
    result: dict[str, Any] = {"backend": kind, "load_average_1m_at_start": round(os.getloadavg()[0], 2)}
    dbname = None
    t_start = time.monotonic()
    if kind == "relay":
        server = Server(
            "relay",
            [sys.executable, str(ROOT / "bench" / "relay.py"), "--port", str(port)],
            env,
            port,
            tmp / "relay.log",
        )
        server.start(ready_line="ready")
        seed = None
    else:
        if kind == "sqlite":
            data = tmp / "sqlite-data"
            data.mkdir()
            env["CHATSERVER_DATA_DIR"] = str(data)
            result["database"] = f"SQLite {sqlite3.sqlite_version} (WAL, synchronous=FULL), file in {tmp}"
            result["fsync_ms_before"] = fsync_probe(tmp)
        else:
            dbname = f"chatbench_{uuid.uuid4().hex[:10]}"
            pg(f'CREATE DATABASE "{dbname}"')
            env["DATABASE_URL"] = PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + dbname
            env["CHATSERVER_DATA_DIR"] = str(tmp / "pg-data")
            version = pg("SHOW server_version")
            result["database"] = f"PostgreSQL {version} (synchronous_commit=on), db {dbname}"
        t0 = time.monotonic()
        seed = seed_via_cli(
            env,
            cfg.agents,
            migrate=kind == "postgres",
            password=PASSWORD,
            role="admin",
            inbox="Bench",
            domain="bench.test",
            supervisor=False,
        )
        seed["db"] = (
            ("sqlite", str(tmp / "sqlite-data" / "chatserver.db"))
            if kind == "sqlite"
            else ("postgres", env["DATABASE_URL"])
        )
        result["seed_s"] = round(time.monotonic() - t0, 2)
        server = Server(
            kind, [str(BIN / "chatserver"), "serve", "--port", str(port)], env, port, tmp / f"{kind}.log"
        )
        server.start()
    try:
        result.update(_run_phases(kind, cfg, clients, server, base, port, seed, profile_dir, native))
    finally:
        reports = clients.call_all("close_all")
        result["client_report"] = {
            "closes": [c for r in reports for c in r["closes"]],
            "frame_types": dict(sum((Counter(r["frame_types"]) for r in reports), Counter())),
            "error_codes": dict(sum((Counter(r["error_codes"]) for r in reports), Counter())),
        }
        rc = server.stop()
        result["exit_code"] = rc
        result["log"] = server.log_summary()
        if dbname is not None:
            with contextlib.suppress(Exception):
                pg(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    result["backend_wall_s"] = round(time.monotonic() - t_start, 1)
    return result


def _run_phases(
    kind: str,
    cfg: Config,
    clients: Clients,
    server: Server,
    base: str,
    port: int,
    seed: dict[str, Any] | None,
    profile_dir: Path | None,
    native: bool = False,
) -> dict[str, Any]:
    res: dict[str, Any] = {}
    ws_base = f"ws://127.0.0.1:{port}"
    db_name = seed["db"][1].rsplit("/", 1)[1] if seed is not None and seed["db"][0] == "postgres" else None
    meter = CpuMeter(server.pid, clients.pids, db_name)
    n_idle = 0 if (kind == "relay" or profile_dir is not None) else cfg.idle
    groups = ["T"] if profile_dir is not None else ["L", "T"]  # latency pairs, throughput pairs

    # -- tokens (visitor sessions) ------------------------------------------------------------------
    n_pair_tokens = cfg.pairs * len(groups)
    if seed is not None:
        t0 = time.monotonic()
        tokens = clients.call_one(
            "tokens", base=base, inbox_key=seed["inbox"]["key"], n=n_pair_tokens + n_idle + 20
        )
        res["visitor_tokens_s"] = round(time.monotonic() - t0, 2)
        agents = [
            {"url": f"{ws_base}/ws/agent", "headers": {"Authorization": f"Bearer {a['token']}"}}
            for a in seed["agents"]
        ]
    else:
        tokens = [f"{g}{i}" for g in groups for i in range(cfg.pairs)]
        agents = [{"url": f"{ws_base}/ws/agent"} for _ in range(cfg.agents)]
    group_urls = {
        g: [f"{ws_base}/ws/visitor?token={t}" for t in tokens[k * cfg.pairs : (k + 1) * cfg.pairs]]
        for k, g in enumerate(groups)
    }

    # -- memory per idle connection (first, on a fresh server) -------------------------------------
    if n_idle:
        extra = tokens[n_pair_tokens:]
        warm = [f"{ws_base}/ws/visitor?token={t}" for t in extra[:20]]
        clients.call_one("idle_open", urls=warm)
        clients.call_one("idle_close")
        time.sleep(1.0)
        rss0 = settle_rss(server, 3)
        idle_urls = [f"{ws_base}/ws/visitor?token={t}" for t in extra[20:]]
        meter.start()
        shares = [{"urls": u} for u in split(idle_urls, cfg.clients)]
        opened = clients.call_all("idle_open", per_worker=shares)
        cpu = meter.stop()
        rss1 = settle_rss(server, 6 if not cfg.quick else 3)
        n_open = sum(o["opened"] for o in opened)
        closed = clients.call_all("idle_close")
        time.sleep(0.5)
        rss2 = server.rss()
        res["idle"] = {
            "connections": n_open,
            "failed": [o["failed"] for o in opened],
            "open_s": max(o["open_s"] for o in opened),
            "rss_before_mib": round(rss0 / 2**20, 2),
            "rss_after_mib": round(rss1 / 2**20, 2),
            "rss_after_close_mib": round(rss2 / 2**20, 2),
            "kib_per_conn": round((rss1 - rss0) / 1024 / max(1, n_open), 2),
            "still_open_at_close": sum(c["still_open_before_close"] for c in closed),
            "cpu": cpu,
        }

    # -- pairs: per group, agent a claims conversations a*per_agent .. (a+1)*per_agent-1 ----------
    per_agent = max(1, -(-cfg.pairs // cfg.agents))
    agent_blocks = split(list(range(-(-cfg.pairs // per_agent))), cfg.clients)  # whole agents per client
    cids: dict[str, list[str]] = {}
    setup = []
    for g in groups:
        per_worker = []
        for block in agent_blocks:
            idx = [i for a in block for i in range(a * per_agent, min(cfg.pairs, (a + 1) * per_agent))]
            per_worker.append(
                {
                    "group": g,
                    "visitor_urls": [group_urls[g][i] for i in idx],
                    "agents": [agents[a % len(agents)] for a in block],
                    "per_agent": per_agent,
                }
            )
        opened_pairs = clients.call_all("pairs_open", per_worker=per_worker)
        cids[g] = [c for o in opened_pairs for c in o["cids"]]
        setup.append(max(o["setup_s"] for o in opened_pairs))
    all_cids = [c for g in groups for c in cids[g]]
    res["pairs"] = {
        "pairs_per_phase": cfg.pairs,
        "phases_with_own_pairs": groups,
        "agent_connections": sum(len(b) for b in agent_blocks),
        "conversations_per_agent_per_phase": per_agent,
        "setup_s": setup,
    }
    before = rest_last_seqs(base, seed["agents"][0]["token"], all_cids) if seed is not None else {}

    # -- latency at a fixed offered load (fresh conversations) --------------------------------------
    if "L" in groups:
        meter.start()
        lat = clients.call_all(
            "latency",
            group="L",
            rate=cfg.rate / cfg.clients,
            duration=cfg.lat_duration,
            warmup=cfg.warmup,
            text_bytes=cfg.text_bytes,
        )
        cpu = meter.stop()
        res["latency"] = merge_stats(lat)
        res["latency"].update(
            offered_rate=cfg.rate, duration_s=cfg.lat_duration, warmup_s=cfg.warmup, cpu=cpu
        )

    # -- throughput (fresh conversations) ----------------------------------------------------------
    tp_args = {"group": "T", "window": cfg.window, "text_bytes": cfg.text_bytes}
    spy = None
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
        # warm up first, then start py-spy so that it samples only the measured window
        clients.call_all("throughput", duration=cfg.warmup, warmup=0, **tp_args)
        spy_cmd = [
            str(BIN / "py-spy"),
            "record",
            "--pid",
            str(server.pid),
            "--duration",
            str(int(cfg.duration)),
            "--rate",
            "100",
            "--format",
            "raw",
            *(["--native"] if native else []),
            "-o",
            str(profile_dir / f"{kind}-throughput.txt"),
        ]
        spy = subprocess.Popen(spy_cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        time.sleep(0.3)
        meter.start()
        tp = clients.call_all("throughput", duration=cfg.duration, warmup=0, **tp_args)
    else:
        meter.start()
        tp = clients.call_all("throughput", duration=cfg.duration, warmup=cfg.warmup, **tp_args)
    cpu = meter.stop()
    res["throughput"] = merge_stats(tp)
    res["throughput"].update(window_per_visitor=cfg.window, warmup_s=cfg.warmup, cpu=cpu)
    if spy is not None:
        out, _ = spy.communicate(timeout=60)
        res["profile"] = {"py_spy_output": out.decode(errors="replace")[-1000:]}
        return res

    # -- counts: acks vs stored vs delivered -------------------------------------------------------
    counts = [c for part in clients.call_all("pair_counts") for c in part]
    totals = {k: sum(c[k] for c in counts) for k in counts[0] if k not in ("cid", "group")}
    check: dict[str, Any] = {"client": totals}
    if seed is not None:
        after = rest_last_seqs(base, seed["agents"][0]["token"], all_cids)
        stored = {cid: after[cid] - before[cid] for cid in all_cids}
        mism = [
            {"cid": c["cid"], "acked": c["acked"], "stored": stored[c["cid"]]}
            for c in counts
            if stored[c["cid"]] != c["acked"]
        ]
        check["stored_total"] = sum(stored.values())
        check["acked_total"] = totals["acked"]
        check["mismatched_conversations"] = mism[:10]
        check["stored_matches_acks"] = not mism
    check["all_acked_delivered_to_agent"] = totals["delivered"] == totals["acked"]
    check["all_echoed_to_visitor"] = totals["echoes"] >= totals["acked"]
    res["check"] = check
    if seed is not None and "db" in seed:
        for g, phase in (("L", "latency"), ("T", "throughput")):
            if g in cids and phase in res:
                try:
                    res[phase]["commit_batches"] = commit_batches(seed["db"], cids[g])
                except Exception as exc:  # a diagnostic only
                    res[phase]["commit_batches"] = {"error": repr(exc)}
    return res


def target_status(name: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    op, limit = TARGETS[name]
    ok = value >= limit if op == ">=" else value <= limit
    return "PASS" if ok else "MISS"


def machine_info() -> dict[str, Any]:
    import sqlalchemy
    import uvicorn
    import websockets

    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": psutil.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "uvicorn": uvicorn.__version__,
        "websockets": websockets.__version__,
        "sqlalchemy": sqlalchemy.__version__,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    b = results["backends"]
    relay_tp = b.get("relay", {}).get("throughput", {}).get("msgs_per_s")
    summary: dict[str, Any] = {}
    for kind in ("sqlite", "postgres"):
        r = b.get(kind)
        if not r or "throughput" not in r:
            continue
        tp = r["throughput"]["msgs_per_s"]
        p99 = r.get("latency", {}).get("deliver_ms", {}).get("p99")
        kib = r.get("idle", {}).get("kib_per_conn")
        rel = round(100 * tp / relay_tp, 1) if relay_tp else None
        summary[kind] = {
            "throughput_msgs_per_s": [tp, target_status("throughput_msgs_per_s", tp)],
            "latency_p99_ms": [p99, target_status("latency_p99_ms", p99)],
            "idle_kib_per_conn": [kib, target_status("idle_kib_per_conn", kib)],
            "relay_pct": [rel, target_status("relay_pct", rel)],
        }
    return summary


def fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.1f}{unit}" if abs(v) >= 100 else f"{v:.2f}{unit}"
    return f"{v}{unit}"


def print_report(results: dict[str, Any]) -> None:
    b = results["backends"]
    kinds = [k for k in ("sqlite", "postgres", "relay") if k in b]
    summ = results["summary"]

    def get(kind: str, *path: str) -> Any:
        cur: Any = b.get(kind, {})
        for p in path:
            if not isinstance(cur, dict):
                return None
            cur = cur.get(p)
        return cur

    rows: list[tuple[str, list[str], str]] = []

    def row(label: str, path: tuple[str, ...], unit: str = "", target: str | None = None) -> None:
        cells = []
        for k in kinds:
            v = get(k, *path)
            cell = fmt(v, unit)
            if target and k in summ:
                cell += f" {summ[k][target][1]}"
            cells.append(cell)
        tgt = ""
        if target:
            op, lim = TARGETS[target]
            tgt = f"{op} {lim:g}"
        rows.append((label, cells, tgt))

    row("persisted msgs/s (closed loop)", ("throughput", "msgs_per_s"), "", "throughput_msgs_per_s")
    rows.append(
        (
            "  % of raw relay",
            [
                (
                    f"{summ[k]['relay_pct'][0]}% {summ[k]['relay_pct'][1]}"
                    if k in summ and summ[k]["relay_pct"][0] is not None
                    else ("100%" if k == "relay" else "-")
                )
                for k in kinds
            ],
            ">= 50%",
        )
    )
    row("  ack p50 under load (ms)", ("throughput", "ack_ms_under_load", "p50"))
    row("  ack p99 under load (ms)", ("throughput", "ack_ms_under_load", "p99"))
    row("  CPU server (% of 1 core)", ("throughput", "cpu", "server_pct_of_core"))
    row("  CPU clients (% of 1 core)", ("throughput", "cpu", "clients_pct_of_core"))
    row("  CPU PostgreSQL (% of 1 core)", ("throughput", "cpu", "postgres_pct_of_core"))
    row("  CPU other procs (% of 1 core)", ("throughput", "cpu", "other_pct_of_core"))
    row("  server waiting for a CPU (%)", ("throughput", "cpu", "server_runqueue_wait_pct"))
    row("  group commit: mean batch size", ("throughput", "commit_batches", "mean_size"))
    row("  group commit: batches/s", ("throughput", "commit_batches", "batches_per_s"))
    row(f"latency @ {fmt(results['config']['rate'])}/s: actual rate", ("latency", "actual_send_rate"))
    row("  send->agent p50 (ms)", ("latency", "deliver_ms", "p50"))
    row("  send->agent p99 (ms)", ("latency", "deliver_ms", "p99"), "", "latency_p99_ms")
    row("  send->agent max (ms)", ("latency", "deliver_ms", "max"))
    row("  send->ack p50 (ms)", ("latency", "ack_ms", "p50"))
    row("  send->ack p99 (ms)", ("latency", "ack_ms", "p99"))
    row("  group commit: mean batch size", ("latency", "commit_batches", "mean_size"))
    row("  client send lag p99 (ms)", ("latency", "send_lag_ms", "p99"))
    row("  CPU server (% of 1 core)", ("latency", "cpu", "server_pct_of_core"))
    row("  CPU clients (% of 1 core)", ("latency", "cpu", "clients_pct_of_core"))
    row("  CPU PostgreSQL (% of 1 core)", ("latency", "cpu", "postgres_pct_of_core"))
    row("  CPU other procs (% of 1 core)", ("latency", "cpu", "other_pct_of_core"))
    row("  server waiting for a CPU (%)", ("latency", "cpu", "server_runqueue_wait_pct"))
    row("idle connections opened", ("idle", "connections"))
    row("  RSS before (MiB)", ("idle", "rss_before_mib"))
    row("  RSS after (MiB)", ("idle", "rss_after_mib"))
    row("  KiB per idle connection", ("idle", "kib_per_conn"), "", "idle_kib_per_conn")
    row("  seconds to open them", ("idle", "open_s"))
    row("  CPU server while opening (% of 1 core)", ("idle", "cpu", "server_pct_of_core"))
    row("stored == acked (REST last_seq)", ("check", "stored_matches_acks"))
    row("acked == delivered to agent", ("check", "all_acked_delivered_to_agent"))
    row("server log WARNING/ERROR", ("log", "levels", "WARNING"))
    row("4008 slow-consumer closes", ("log", "slow_consumer_closes"))

    width = [max(34, *(len(r[0]) for r in rows))] + [22] * len(kinds) + [10]
    head = ["", *kinds, "target"]
    print()
    print("  ".join(h.ljust(w) for h, w in zip(head, width, strict=True)))
    print("-" * (sum(width) + 2 * len(width)))
    for label, cells, tgt in rows:
        print("  ".join(x.ljust(w) for x, w in zip([label, *cells, tgt], width, strict=True)))
    print()
    for k in kinds:
        closes = get(k, "client_report", "closes")
        errs = get(k, "client_report", "error_codes")
        if closes or errs:
            print(f"{k}: client saw closes={closes[:5] if closes else []} error_codes={errs}")
        notable = get(k, "log", "notable")
        if notable:
            print(f"{k}: server log notable lines:")
            for line in notable[:8]:
                print("   ", line)


IDLE_LEAVES = (
    "_connection_worker_thread (aiosqlite/core.py:59)",  # aiosqlite thread waiting for work
    "_worker (concurrent/futures/thread.py:81)",  # to_thread pool waiting for work
)


def _frame_name(fr: str, with_line: bool) -> str:
    m = re.match(r"(.*) \((.*?)(:\d+)?\)$", fr)
    if not m:
        return fr
    func, path, line = m.group(1), m.group(2), m.group(3) or ""
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path}{line if with_line else ''}:{func}"


def profile_summary(raw_path: Path, duration_s: float, rate: int = 100, top: int = 25) -> dict[str, Any]:
    """Self and inclusive share of samples per function from py-spy's raw (collapsed) output.

    Idle samples (aiosqlite's thread waiting for a statement, which py-spy does not recognise as idle)
    are dropped. Percentages are of the *active* samples of all threads; ``threads`` gives each
    thread's active samples as % of one core (samples / (duration * rate)). The main thread's
    ``Runner.run`` self time is uvloop's C code (socket I/O, epoll; py-spy cannot see inside it)."""
    self_c: Counter[str] = Counter()
    incl_c: Counter[str] = Counter()
    lines_c: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = idle = 0
    for line in raw_path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        frames = stack.split(";")
        if frames[-1].strip() in IDLE_LEAVES:
            idle += count
            continue
        total += count
        if any("_connection_worker_thread" in f for f in frames):
            threads["aiosqlite thread (SQLite C calls)"] += count
        elif frames[0].startswith("Thread._bootstrap"):
            threads["other threads"] += count
        else:
            threads["main thread (event loop)"] += count
        names = [_frame_name(f, False) for f in frames]
        self_c[names[-1]] += count
        lines_c[_frame_name(frames[-1], True)] += count
        for name in set(names):
            incl_c[name] += count

    def table(c: Counter[str], k: int = top) -> list[list[Any]]:
        return [[name, round(100 * n / max(1, total), 1)] for name, n in c.most_common(k)]

    wall_samples = duration_s * rate
    return {
        "active_samples": total,
        "idle_samples_dropped": idle,
        "threads_pct_of_core": {k: round(100 * v / wall_samples, 1) for k, v in threads.items()},
        "self": table(self_c),
        "self_by_line": table(lines_c, 15),
        "inclusive": table(incl_c, 40),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description="Core chat-server benchmark (see bench/README.md)")
    ap.add_argument("--quick", action="store_true", help="short phases (about 1 minute in all)")
    ap.add_argument("--backends", default="sqlite,postgres,relay", help="comma list of sqlite,postgres,relay")
    ap.add_argument("--pairs", type=int, default=50)
    ap.add_argument("--agents", type=int, default=10, help="agent connections (each claims pairs/agents)")
    ap.add_argument("--window", type=int, default=8, help="max unacked sends per visitor (throughput)")
    ap.add_argument("--duration", type=float, help="throughput seconds (10; quick 3)")
    ap.add_argument("--rate", type=float, default=1000.0, help="offered msgs/s for the latency phase")
    ap.add_argument("--lat-duration", type=float, help="latency seconds (10; quick 3)")
    ap.add_argument("--idle", type=int, help="idle connections for the memory figure (1000; quick 300)")
    ap.add_argument("--text-bytes", type=int, default=64, help="message text size")
    ap.add_argument("--clients", type=int, default=1, help="client processes")
    ap.add_argument("--profile", type=Path, metavar="DIR", help="py-spy the SQLite throughput phase only")
    ap.add_argument("--native", action="store_true", help="with --profile: py-spy --native (C frames)")
    ap.add_argument("--output", type=Path, default=RESULTS)
    args = ap.parse_args()
    cfg = Config(
        pairs=args.pairs,
        agents=args.agents,
        window=args.window,
        duration=args.duration or (3.0 if args.quick else 10.0),
        warmup=0.5 if args.quick else 1.0,
        rate=args.rate,
        lat_duration=args.lat_duration or (3.0 if args.quick else 10.0),
        idle=args.idle if args.idle is not None else (300 if args.quick else 1000),
        text_bytes=args.text_bytes,
        clients=args.clients,
        quick=args.quick,
    )
    nofile = raise_nofile(16384)
    started = time.monotonic()
    info = machine_info()
    info["rlimit_nofile"] = nofile
    print(
        f"core benchmark: {cfg.pairs} pairs, {cfg.agents} agent connections, window {cfg.window}, "
        f"throughput {cfg.duration:g}s, latency {cfg.rate:g}/s for {cfg.lat_duration:g}s, "
        f"{cfg.idle} idle connections, {cfg.clients} client process(es); "
        f"{info['cores']} cores, load {info['load_average_at_start']}",
        flush=True,
    )
    clients = Clients(cfg.clients)
    tmp = Path(tempfile.mkdtemp(prefix="chatbench-"))
    results: dict[str, Any] = {
        "benchmark": "core",
        "machine": info,
        "config": cfg.__dict__,
        "targets": {k: f"{op} {v:g}" for k, (op, v) in TARGETS.items()},
        "backends": {},
    }
    try:
        if args.profile is not None:
            r = bench_backend("sqlite", cfg, clients, tmp, profile_dir=args.profile, native=args.native)
            raw = args.profile / "sqlite-throughput.txt"
            tput = r["throughput"]
            print(f"throughput while profiled: {tput['msgs_per_s']} msgs/s; cpu {tput['cpu']}")
            if raw.exists():
                summ = profile_summary(raw, cfg.duration)
                (args.profile / "sqlite-throughput-summary.json").write_text(json.dumps(summ, indent=2))
                print(
                    f"py-spy active samples: {summ['active_samples']}; threads: {summ['threads_pct_of_core']}"
                )
                print("top self time:")
                for name, p in summ["self"]:
                    print(f"  {p:5.1f}%  {name}")
                print("top self time by line:")
                for name, p in summ["self_by_line"]:
                    print(f"  {p:5.1f}%  {name}")
                print("top inclusive:")
                for name, p in summ["inclusive"]:
                    print(f"  {p:5.1f}%  {name}")
            else:
                print("py-spy produced no profile:", r.get("profile"))
            return 0
        for kind in [k.strip() for k in args.backends.split(",") if k.strip()]:
            print(f"[{time.monotonic() - started:6.1f}s] {kind} ...", flush=True)
            r = bench_backend(kind, cfg, clients, tmp)
            results["backends"][kind] = r
            tp = r.get("throughput", {}).get("msgs_per_s")
            p99 = r.get("latency", {}).get("deliver_ms", {}).get("p99")
            print(
                f"[{time.monotonic() - started:6.1f}s] {kind}: {tp} msgs/s, p99 {p99} ms, "
                f"idle {r.get('idle', {}).get('kib_per_conn')} KiB/conn",
                flush=True,
            )
    finally:
        clients.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    results["summary"] = summarize(results)
    results["total_wall_s"] = round(time.monotonic() - started, 1)
    print_report(results)
    print(f"total {results['total_wall_s']} s; written to {args.output}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
