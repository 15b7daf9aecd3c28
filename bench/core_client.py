"""The load client of bench/core.py: visitor/agent pairs over real WebSockets in worker processes
(spawned), and the statistics they report. Run through bench/core.py, never alone."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing as mp
import time
import traceback
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from common import (  # bench/common.py (this script's folder)
    raise_nofile,
)

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
            "acked_total": self.phase_acks,
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
