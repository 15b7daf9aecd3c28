"""Routing offer latency: a visitor's first message -> the routing ``offer`` reaching an agent.

Against a real ``chatserver serve`` subprocess with ``CHATSERVER_ROUTING=offers``, for

1. **sqlite**: one process, embedded (SQLite file, in-process bus);
2. **postgres**: one process on PostgreSQL + Redis (a fresh database, created and dropped by this run).

The load generator is a separate process (this script with ``--loadgen``). It connects ``--agents`` (20)
agent WebSockets, then opens new visitor conversations open-loop at ``--rate`` (50) per second, scheduled
by the clock, for ``--warmup`` (1 s, not counted) + ``--duration`` (20 s). Each arrival does what the
widget does when a visitor sends their first message: open ``/ws/visitor`` (tokens from
``POST /api/v1/widget/sessions`` were created before the load, so the REST call does not distort the
pacing), wait for ``hello``, ``conversation.start``, and on its ack ``message.send``. Agents accept every
offer at once (``offer.accept``) and close the conversation after the accept's ack (``conversation.close``).

Measured per conversation (one monotonic clock in one process):

- **msg->offer**: ``message.send`` written -> the agent connection receives ``offer`` for that conversation.
  The server queues a conversation (and wakes the router) on ``conversation.start``, not on the first
  message, so this can be very small or negative (the offer may overtake the message).
- **start->offer**: ``conversation.start`` written -> ``offer`` received. The widget sends
  ``conversation.start`` when the visitor sends their first message, so this is the visitor-perceived
  "first message -> an agent is offered the chat".
- start->ack and message->ack, and the schedule lag of each arrival (open-loop fidelity).
- **Breakdown** of start->offer from the server's own millisecond stamps in the offer (same machine, same
  wall clock): start written -> conversation row created (``created_at``); -> the router cycle that made
  the offer began (``expires_at`` - offer timeout, the cycle's ``now``); -> the offer row was written
  (``updated_at``); -> the agent connection received it. Offers sharing one ``expires_at`` came from one
  router cycle, which gives offers per cycle.

After the last arrival the load generator waits up to 15 s for outstanding offers (and 5 s for answers).
Conversations still not offered then are reported, and counted at their waiting time so far in the
``..._with_never_offered_as_lower_bounds`` percentiles (a lower bound). Also reported: offers received per
second while conversations arrived, how many were still waiting when arrivals ended, and start->offer for
the first vs the last quarter of arrivals: if the router keeps up these match; if not, latency grows with
the length of the run and the percentiles describe a backlog, not a steady state.

CPU: server process, load generator, PostgreSQL and Redis processes, and the whole machine, over the
measured arrival window (psutil), plus how long the server was runnable but waiting for a CPU
(schedstat). The load generator also measures its own event-loop lag: its receive timestamps are only as
good as that.

Run: ``.venv/bin/python bench/routing_offer.py`` (about 2.5-3 minutes) or ``--quick`` (about 1.5 minutes).
``--profile`` additionally samples the server with py-spy during the measured window and reports where
its time goes. Writes ``bench/results/routing_offer.json`` (the previous run's summary is kept in it).

Redis: the lease key ``chat:routing:leader`` and presence keys are per Redis database, so the default
``--redis-url`` uses database 11, not 0, to stay out of the way of test servers on database 0 (they would
otherwise compete for the routing lease). Pub/sub channels are global across Redis databases; the number
of other subscribers to ``chat:routing`` is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import json
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter, defaultdict
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

RESULTS = ROOT / "bench" / "results" / "routing_offer.json"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
SECRET = "bench-secret-" + "r" * 30  # 43 characters
ADMIN_PASSWORD = "pw-long-123"
AGENT_PASSWORD = "pw-long-one"


# ============================================================================================
# Small helpers
# ============================================================================================


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(q / 100 * len(s) + 0.5) - 1))
    return s[k]


def ms_stats(values_s: list[float], scale: float = 1000.0) -> dict[str, Any]:
    """p50/p95/p99/max/mean/min in ms of values in seconds (or in ms with scale=1)."""
    v = [x * scale for x in values_s]
    if not v:
        return {"n": 0}

    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 2)

    return {
        "n": len(v),
        "p50": r(pct(v, 50)),
        "p95": r(pct(v, 95)),
        "p99": r(pct(v, 99)),
        "max": r(max(v)),
        "mean": r(statistics.fmean(v)),
        "min": r(min(v)),
    }


def iso_ms(s: str | None) -> float | None:
    if not s:
        return None
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() * 1000


# ============================================================================================
# Load generator (a separate process: ``routing_offer.py --loadgen CONFIG OUT``)
# ============================================================================================


class Conn:
    """One WebSocket with a reader that resolves acks/errors by ref; other frames go to ``on_frame``."""

    def __init__(self, ws: Any, lg: LoadGen, on_frame: Any = None) -> None:
        self.ws = ws
        self.lg = lg
        self.on_frame = on_frame
        self.waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.task = asyncio.create_task(self._read())
        self.hello: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.snapshot: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        lg = self.lg
        try:
            async for raw in self.ws:
                t = time.monotonic()
                tw = time.time()
                head = raw[:24] if isinstance(raw, str) else ""
                if head.startswith('{"type":"conversation"') or head.startswith('{"type":"message"'):
                    lg.frames["conversation" if "conversation" in head else "message"] += 1
                    continue  # the bulk of the traffic: not parsed
                f = orjson.loads(raw)
                typ = f.get("type")
                lg.frames[typ] += 1
                if typ in ("ack", "error"):
                    if typ == "error":
                        lg.errors[f"{f.get('code')}"] += 1
                        if len(lg.error_samples) < 10:
                            lg.error_samples.append(f)
                    fut = self.waiting.pop(str(f.get("ref")), None)
                    if fut is not None and not fut.done():
                        fut.set_result(f)
                elif typ == "hello":
                    if not self.hello.done():
                        self.hello.set_result(f)
                elif typ == "snapshot":
                    if not self.snapshot.done():
                        self.snapshot.set_result(None)
                elif self.on_frame is not None:
                    self.on_frame(self, f, t, tw)
        except ConnectionClosed as exc:
            self.close_code = exc.rcvd.code if exc.rcvd is not None else None
        except Exception:
            lg.errors["reader_exception"] += 1
            if len(lg.error_samples) < 10:
                lg.error_samples.append({"reader": traceback.format_exc()[-800:]})
        finally:
            if not lg.stopping:
                lg.unexpected_closes[str(self.close_code)] += 1
            for fut in self.waiting.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("closed"))
                    fut.exception()  # retrieved: whoever awaits it still gets it

    def request(self, frame: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        """Send without waiting; the future resolves with the ack or error."""
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[frame["ref"]] = fut
        return fut

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(orjson.dumps(frame).decode())


class LoadGen:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.frames: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.error_samples: list[Any] = []
        self.unexpected_closes: Counter[str] = Counter()
        self.stopping = False
        self.offers: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.visitors: dict[int, dict[str, Any]] = {}
        self.by_cid: dict[str, int] = {}
        self.agent_ids: dict[Conn, str] = {}
        self.pending_answers = 0
        self.accept_status: Counter[str] = Counter()
        self.close_status: Counter[str] = Counter()
        self.revoked: list[dict[str, Any]] = []
        self.notices: list[dict[str, Any]] = []
        self.all_offered = asyncio.Event()
        self.expected: int | None = None

    # -- agents --------------------------------------------------------------------------------------

    def on_agent_frame(self, conn: Conn, f: dict[str, Any], t: float, tw: float) -> None:
        typ = f.get("type")
        if typ == "offer":
            conv = f.get("conversation") or {}
            cid = str(conv.get("id"))
            self.offers[cid].append(
                {
                    "t": t,
                    "tw": tw,
                    "agent": self.agent_ids.get(conn),
                    "offer_id": f.get("offer_id"),
                    "expires_at": iso_ms(f.get("expires_at")),
                    "updated_at": iso_ms(conv.get("updated_at")),
                    "created_at": iso_ms(conv.get("created_at")),
                    "enqueued_at": iso_ms(conv.get("enqueued_at")),
                    "status": conv.get("status"),
                }
            )
            self.pending_answers += 1
            asyncio.get_running_loop().create_task(self._answer(conn, cid, str(f.get("offer_id"))))
            if self.expected is not None and len(self.offers) >= self.expected:
                self.all_offered.set()
        elif typ == "offer.revoked":
            self.revoked.append(f)
        elif typ == "notice":
            self.notices.append(f)

    async def _answer(self, conn: Conn, cid: str, offer_id: str) -> None:
        try:
            ref = f"a|{offer_id}"
            fut = conn.request({"ref": ref})
            await conn.send({"type": "offer.accept", "ref": ref, "offer_id": offer_id})
            ack = await asyncio.wait_for(fut, 30)
            self.accept_status[ack.get("status") or ack.get("code") or "?"] += 1
            if ack.get("type") == "ack" and ack.get("status") == "assigned":
                ref = f"c|{cid}"
                fut = conn.request({"ref": ref})
                await conn.send({"type": "conversation.close", "ref": ref, "conversation_id": cid})
                ack = await asyncio.wait_for(fut, 30)
                self.close_status[ack.get("status") or ack.get("code") or "?"] += 1
        except Exception as exc:
            self.errors[f"answer:{type(exc).__name__}"] += 1
        finally:
            self.pending_answers -= 1

    # -- visitors ------------------------------------------------------------------------------------

    async def visitor(self, i: int, token: str, scheduled: float, conns: list[Conn]) -> None:
        from websockets.asyncio.client import connect

        rec: dict[str, Any] = {"i": i}
        self.visitors[i] = rec
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        t_arr = time.monotonic()
        rec["lag"] = t_arr - scheduled
        try:
            ws = await connect(
                f"{self.cfg['ws']}/ws/visitor?token={token}",
                max_size=2**22,
                compression=None,
                ping_interval=None,
                open_timeout=30,
            )
            conn = Conn(ws, self)
            conns.append(conn)
            await asyncio.wait_for(conn.hello, 30)
            rec["connect"] = time.monotonic() - t_arr
            fut = conn.request({"ref": "s"})
            rec["t_start"] = time.monotonic()
            rec["tw_start"] = time.time()
            await conn.send({"type": "conversation.start", "ref": "s"})
            ack = await asyncio.wait_for(fut, 30)
            rec["t_start_ack"] = time.monotonic()
            if ack.get("type") != "ack":
                rec["error"] = f"start:{ack.get('code')}"
                return
            cid = ack["conversation_id"]
            rec["cid"] = cid
            self.by_cid[cid] = i
            fut = conn.request({"ref": "m"})
            rec["t_msg"] = time.monotonic()
            await conn.send(
                {
                    "type": "message.send",
                    "ref": "m",
                    "conversation_id": cid,
                    "client_id": "c1",
                    "text": "hello",
                }
            )
            ack = await asyncio.wait_for(fut, 30)
            rec["t_msg_ack"] = time.monotonic()
            if ack.get("type") != "ack":
                rec["error"] = f"send:{ack.get('code')}"
        except Exception as exc:
            rec["error"] = f"{type(exc).__name__}: {exc}"[:200]

    # -- the run -------------------------------------------------------------------------------------

    async def tokens(self, n: int, concurrency: int = 8) -> tuple[list[str], float]:
        out: list[str | None] = [None] * n
        sem = asyncio.Semaphore(concurrency)
        t0 = time.monotonic()
        async with httpx.AsyncClient(timeout=30) as http:

            async def one(i: int) -> None:
                async with sem:
                    r = await http.post(
                        f"{self.cfg['base']}/api/v1/widget/sessions",
                        json={"inbox_key": self.cfg["inbox_key"]},
                    )
                    r.raise_for_status()
                    out[i] = r.json()["token"]

            await asyncio.gather(*(one(i) for i in range(n)))
        return [t for t in out if t is not None], time.monotonic() - t0

    async def metrics(self) -> dict[str, Any] | None:
        with contextlib.suppress(Exception):
            async with httpx.AsyncClient(timeout=10) as http:
                r = await http.get(
                    f"{self.cfg['base']}/api/v1/routing/metrics",
                    headers={"Authorization": f"Bearer {self.cfg['admin_token']}"},
                )
                return dict(r.json())
        return None

    async def run(self) -> dict[str, Any]:
        from websockets.asyncio.client import connect

        cfg = self.cfg
        rate, warm, dur = float(cfg["rate"]), float(cfg["warmup_s"]), float(cfg["duration_s"])
        n_warm = round(rate * warm)
        n_total = n_warm + round(rate * dur)
        out: dict[str, Any] = {"nofile": raise_nofile(65536)}

        tokens, took = await self.tokens(n_total)
        out["visitor_tokens"] = {
            "count": len(tokens),
            "seconds": round(took, 2),
            "how": "POST /api/v1/widget/sessions before the load, 8 concurrent requests",
        }

        agents: list[Conn] = []
        for tok in cfg["agent_tokens"]:
            ws = await connect(
                f"{cfg['ws']}/ws/agent",
                additional_headers={"Authorization": f"Bearer {tok}"},
                max_size=2**24,
                compression=None,
                ping_interval=None,
                open_timeout=30,
            )
            conn = Conn(ws, self, self.on_agent_frame)
            hello = await asyncio.wait_for(conn.hello, 30)
            self.agent_ids[conn] = hello["you"]["id"]
            agents.append(conn)
        await asyncio.wait_for(asyncio.gather(*(c.snapshot for c in agents)), 30)
        await asyncio.sleep(1.0)  # let presence settle (the router wakes on agent connections)
        idle = psutil.Process(cfg["server_pid"])
        i0, iw = idle.cpu_times(), time.monotonic()
        await asyncio.sleep(2.0)
        i1 = idle.cpu_times()
        out["server_cpu_idle_pct_of_core"] = round(
            100 * ((i1.user + i1.system) - (i0.user + i0.system)) / (time.monotonic() - iw), 1
        )  # agents connected, no visitors: the background (router poll, heartbeats, reconciliation)
        m_before = await self.metrics()

        self.expected = n_total
        visitor_conns: list[Conn] = []
        loop_lag: list[float] = []
        cpu: dict[str, Any] = {}
        profilers: list[asyncio.subprocess.Process] = []
        t0 = time.monotonic() + 0.3
        t_meas0 = t0 + n_warm / rate
        t_meas1 = t0 + n_total / rate

        async def lag_probe() -> None:
            while time.monotonic() < t_meas1:
                a = time.monotonic()
                await asyncio.sleep(0.01)
                if a >= t_meas0:
                    loop_lag.append(time.monotonic() - a - 0.01)

        async def cpu_window() -> None:
            meter = CpuMeter(cfg["server_pid"])
            await asyncio.sleep(max(0.0, t_meas0 - time.monotonic()))
            spy = None
            if cfg.get("profile_cmd"):
                spy = await asyncio.create_subprocess_exec(
                    *cfg["profile_cmd"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            meter.start()
            await asyncio.sleep(max(0.0, t_meas1 - time.monotonic()))
            cpu.update(meter.stop())
            if spy is not None:
                cpu["py_spy"] = "running alongside (its own CPU counts under everything_else)"
                profilers.append(spy)

        server_proc = psutil.Process(cfg["server_pid"])
        c0 = server_proc.cpu_times()
        w0 = time.monotonic()
        probe = asyncio.create_task(lag_probe())
        cpu_task = asyncio.create_task(cpu_window())
        tasks = [
            asyncio.create_task(self.visitor(i, tokens[i], t0 + i / rate, visitor_conns))
            for i in range(n_total)
        ]
        await asyncio.gather(*tasks)
        await cpu_task
        await probe
        t_arrivals_done = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.all_offered.wait(), cfg["drain_s"])
        deadline = time.monotonic() + cfg["answer_drain_s"]
        while self.pending_answers > 0 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        t_drained = time.monotonic()
        out["drain_s"] = round(t_drained - t_arrivals_done, 2)
        c1 = server_proc.cpu_times()
        cpu_s = (c1.user + c1.system) - (c0.user + c0.system)
        out["server_cpu_whole_load"] = {
            "cpu_s": round(cpu_s, 2),
            "wall_s": round(t_drained - w0, 2),
            "conversations": n_total,
            "closed_ok": self.close_status.get("resolved", 0),
            "cpu_ms_per_conversation": round(1000 * cpu_s / max(n_total, 1), 1),
            "what": "server CPU from the first arrival until offers and answers drained, per conversation: "
            "visitor connect, start, first message, offer, accept, close, with fan-out to every agent",
        }
        await asyncio.sleep(0.5)
        m_after = await self.metrics()

        for spy in profilers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(spy.wait(), 30)
        self.stopping = True
        await asyncio.gather(*(c.ws.close() for c in visitor_conns + agents), return_exceptions=True)

        out.update(self.summarize(n_warm, n_total, m_before, m_after, (t_meas0, t_meas1, t_drained)))
        out["cpu"] = cpu
        out["loadgen_loop_lag_ms"] = ms_stats(loop_lag)
        out["frames_received"] = dict(self.frames)
        out["error_frames"] = dict(self.errors)
        out["error_samples"] = self.error_samples
        out["unexpected_closes"] = dict(self.unexpected_closes)
        return out

    def summarize(
        self,
        n_warm: int,
        n_total: int,
        m_before: dict[str, Any] | None,
        m_after: dict[str, Any] | None,
        times: tuple[float, float, float],
    ) -> dict[str, Any]:
        t_meas0, t_meas1, t_drained = times
        censored: list[float] = []
        by_arrival: list[tuple[int, float]] = []
        timeout_ms = float(self.cfg["offer_timeout_s"]) * 1000
        msg_offer: list[float] = []
        start_offer: list[float] = []
        start_ack: list[float] = []
        msg_ack: list[float] = []
        lag: list[float] = []
        connect: list[float] = []
        parts: dict[str, list[float]] = defaultdict(list)
        offer_before_msg = offer_before_start_ack = 0
        missing: list[str] = []
        visitor_errors: Counter[str] = Counter()
        measured_cids: set[str] = set()
        for i in range(n_warm, n_total):
            rec = self.visitors.get(i, {})
            if "lag" in rec:
                lag.append(rec["lag"])
            if "connect" in rec:
                connect.append(rec["connect"])
            if "error" in rec:
                visitor_errors[rec["error"].split(":")[0]] += 1
            cid = rec.get("cid")
            if cid is None:
                continue
            measured_cids.add(cid)
            if "t_start_ack" in rec:
                start_ack.append(rec["t_start_ack"] - rec["t_start"])
            if "t_msg_ack" in rec:
                msg_ack.append(rec["t_msg_ack"] - rec["t_msg"])
            got = self.offers.get(cid)
            if not got:
                missing.append(cid)
                censored.append(t_drained - rec["t_start"])  # a lower bound: not offered by the end
                continue
            o = got[0]
            start_offer.append(o["t"] - rec["t_start"])
            by_arrival.append((i, o["t"] - rec["t_start"]))
            if "t_msg" in rec:
                msg_offer.append(o["t"] - rec["t_msg"])
                if o["t"] < rec["t_msg"]:
                    offer_before_msg += 1
            if o["t"] < rec["t_start_ack"]:
                offer_before_start_ack += 1
            tw0 = rec["tw_start"] * 1000
            cycle_start = o["expires_at"] - timeout_ms if o["expires_at"] else None
            if o["created_at"] and cycle_start and o["updated_at"]:
                parts["start_to_created"].append(o["created_at"] - tw0)
                parts["created_to_cycle_start"].append(cycle_start - o["created_at"])
                parts["cycle_start_to_offer_written"].append(o["updated_at"] - cycle_start)
                parts["offer_written_to_received"].append(o["tw"] * 1000 - o["updated_at"])

        # router cycles as seen from the offers: one cycle's offers share expires_at (its `now`); all
        # offers count here (warm-up ones too), so positions within a cycle are real positions
        cycles: dict[float, list[dict[str, Any]]] = defaultdict(list)
        for got in self.offers.values():
            for o in got:
                if o["expires_at"]:
                    cycles[o["expires_at"]].append(o)
        in_window = sum(1 for got in self.offers.values() for o in got if t_meas0 <= o["t"] < t_meas1)
        backlog_at_end = sum(
            1
            for i in range(n_warm, n_total)
            if (cid := self.visitors.get(i, {}).get("cid")) is not None
            and not any(o["t"] < t_meas1 for o in self.offers.get(cid, []))
        )
        quarter = max(1, len(by_arrival) // 4)
        trend = {
            "first_quarter_of_arrivals_p50": ms_stats([v for _, v in by_arrival[:quarter]]).get("p50"),
            "last_quarter_of_arrivals_p50": ms_stats([v for _, v in by_arrival[-quarter:]]).get("p50"),
        }
        per_cycle = [len(v) for v in cycles.values()]
        starts = sorted(k - timeout_ms for k in cycles)
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        # the k-th offer of a cycle: how long after the cycle began was it written
        kth: dict[int, list[float]] = defaultdict(list)
        for k, v in cycles.items():
            for j, o in enumerate(sorted(v, key=lambda o: o["updated_at"] or 0)):
                if o["updated_at"]:
                    kth[j].append(o["updated_at"] - (k - timeout_ms))

        multi = {cid: len(v) for cid, v in self.offers.items() if len(v) > 1}
        unknown = [cid for cid in self.offers if cid not in self.by_cid]
        per_agent = Counter(o[0]["agent"] for cid, o in self.offers.items() if cid in measured_cids)

        router = None
        if m_before and m_after and m_before.get("router") and m_after.get("router"):
            rb, ra = m_before["router"], m_after["router"]
            router = {
                k: ra[k] - rb[k]
                for k in (
                    "cycles",
                    "offers",
                    "expired",
                    "escalated",
                    "requeued",
                    "set_away",
                    "refused_writes",
                )
            }
            router["leader"] = ra.get("leader")
            router["decide_ms_p50_at_end"] = ra.get("decide_ms_p50")
            router["events_at_end"] = m_after.get("events")
            router["wait_ms_avg_at_end"] = m_after.get("wait_ms_avg")
            router["wait_ms_max_at_end"] = m_after.get("wait_ms_max")

        return {
            "conversations": {
                "warmup": n_warm,
                "measured": n_total - n_warm,
                "started": len(measured_cids),
                "offered": len(measured_cids) - len(missing),
                "never_offered": len(missing),
                "never_offered_sample": missing[:5],
                "visitor_errors": dict(visitor_errors),
            },
            "throughput": {
                "arrivals_per_s": self.cfg["rate"],
                "offers_received_per_s_during_arrivals": round(in_window / max(t_meas1 - t_meas0, 1e-9), 1),
                "measured_conversations_not_yet_offered_when_arrivals_ended": backlog_at_end,
            },
            "start_to_offer_trend_ms": trend,
            "start_to_offer_with_never_offered_as_lower_bounds_ms": ms_stats(start_offer + censored),
            "latency_ms": {
                "msg_to_offer": ms_stats(msg_offer),
                "start_to_offer": ms_stats(start_offer),
                "start_to_ack": ms_stats(start_ack),
                "msg_to_ack": ms_stats(msg_ack),
                "arrival_schedule_lag": ms_stats(lag),
                "visitor_connect_to_hello": ms_stats(connect),
            },
            "offer_before_first_message_sent": offer_before_msg,
            "offer_before_start_ack": offer_before_start_ack,
            "breakdown_ms": {k: ms_stats(v, scale=1.0) for k, v in parts.items()},
            "router_cycles_from_offers": {
                "cycles_with_offers": len(cycles),
                "offers_per_cycle": ms_stats([float(x) for x in per_cycle], scale=1.0),
                "gap_between_cycle_starts_ms": ms_stats(gaps, scale=1.0),
                "written_after_cycle_start_by_position_ms": {
                    str(j): ms_stats(v, scale=1.0)["p50"] for j, v in sorted(kth.items()) if j < 8
                },
            },
            "router_metrics_delta": router,
            "offers_per_agent": {
                "min": min(per_agent.values(), default=0),
                "max": max(per_agent.values(), default=0),
            },
            "conversations_offered_more_than_once": len(multi),
            "offers_for_unknown_conversations": len(unknown),
            "accept_answers": dict(self.accept_status),
            "close_answers": dict(self.close_status),
            "offers_revoked": len(self.revoked),
            "revoked_sample": self.revoked[:3],
            "notices": [n.get("code") for n in self.notices][:10],
        }


def loadgen_main(cfg_path: str, out_path: str) -> None:
    cfg = json.loads(Path(cfg_path).read_text())
    result = asyncio.run(LoadGen(cfg).run())
    Path(out_path).write_text(json.dumps(result, indent=1, default=str))


# ============================================================================================
# CPU accounting
# ============================================================================================


def _procs_named(*names: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["name"]):
        with contextlib.suppress(psutil.Error):
            if any((p.info["name"] or "").startswith(n) for n in names):
                found.append(p)
    return found


class CpuMeter:
    """CPU seconds of the server, this process (the load generator), PostgreSQL and Redis processes and
    the whole machine over a window, and how long the server's threads were runnable but not running."""

    def __init__(self, server_pid: int) -> None:
        self.server = psutil.Process(server_pid)
        self.me = psutil.Process()
        self.pg: dict[int, float] = {}
        self.redis: dict[int, float] = {}

    @staticmethod
    def _busy() -> float:
        t = psutil.cpu_times()
        return float(t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0))

    def _run_delay(self) -> float:
        total = 0
        for task in Path(f"/proc/{self.server.pid}/task").glob("*/schedstat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int(task.read_text().split()[1])
        return total / 1e9

    @staticmethod
    def _cpu(procs: list[psutil.Process]) -> float:
        total = 0.0
        for p in procs:
            with contextlib.suppress(psutil.Error):
                c = p.cpu_times()
                total += c.user + c.system
        return total

    def _sample(self) -> tuple[float, ...]:
        return (
            time.monotonic(),
            self._cpu([self.server]),
            self._cpu([self.me]),
            0.0,  # postgres and redis: per process, see _named()
            0.0,
            self._busy(),
            self._run_delay(),
            self._main_thread(),
        )

    def _main_thread(self) -> float:
        """CPU of the server's main thread (the event loop); the rest are database driver threads."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (
                Path(f"/proc/{self.server.pid}/task/{self.server.pid}/stat").read_text().rsplit(")", 1)[1]
            )
            parts = fields.split()
            return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
        return 0.0

    @staticmethod
    def _named(name: str) -> dict[int, float]:
        """CPU seconds per live process of that name. Sampled at both ends: a process started within the
        window counts in full, one that ended within it is lost (short-lived PostgreSQL backends)."""
        out = {}
        for p in _procs_named(name):
            with contextlib.suppress(psutil.Error):
                c = p.cpu_times()
                out[p.pid] = c.user + c.system
        return out

    @staticmethod
    def _delta(before: dict[int, float], after: dict[int, float]) -> float:
        return sum(max(0.0, v - before.get(pid, 0.0)) for pid, v in after.items())

    def start(self) -> None:
        self.pg, self.redis = self._named("postgres"), self._named("redis-server")
        self._t0 = self._sample()

    def stop(self) -> dict[str, Any]:
        t1 = self._sample()
        wall = t1[0] - self._t0[0]
        server, me, _, _, busy, delay, main = (t1[i] - self._t0[i] for i in range(1, 8))
        pg = self._delta(self.pg, self._named("postgres"))
        rd = self._delta(self.redis, self._named("redis-server"))
        cores = psutil.cpu_count() or 1

        def pc(x: float) -> float:
            return round(100 * x / wall, 1)

        return {
            "window_s": round(wall, 2),
            "server_pct_of_core": pc(server),
            "server_main_thread_pct_of_core": pc(main),
            "loadgen_pct_of_core": pc(me),
            "postgres_pct_of_core": pc(pg) if self.pg else None,
            "redis_pct_of_core": pc(rd) if self.redis else None,
            "everything_else_pct_of_core": pc(max(0.0, busy - server - me - pg - rd)),
            "machine_busy_pct": round(100 * busy / (wall * cores), 1),
            "server_runqueue_wait_pct_of_wall": pc(delay),
            "note": "postgres/redis: all processes of that name on the machine, including other users'",
        }


# ============================================================================================
# Orchestrator: database, seeding, server, load generator, report
# ============================================================================================


def seed_cli(env: dict[str, str], n_agents: int, migrate: bool) -> dict[str, Any]:
    """n agents (role agent) and one supervisor (for the metrics; never connected, so never offered)."""
    return seed_via_cli(
        env,
        n_agents,
        migrate=migrate,
        password=AGENT_PASSWORD,
        role="agent",
        inbox="B",
        domain="x.test",
        supervisor=True,
    )


def redis_check(url: str) -> dict[str, Any]:
    import redis

    r = redis.Redis.from_url(url, socket_timeout=2)
    try:
        return {
            "url": url,
            "keys_in_db_before": int(r.dbsize()),
            "leader_key_before": r.get("chat:routing:leader") is not None,
            "other_subscribers_chat_routing": int(
                dict(r.pubsub_numsub("chat:routing")).get(b"chat:routing", 0)
            ),
        }
    finally:
        r.close()


def profile_summary(raw_path: Path, top: int = 20) -> dict[str, Any]:
    """py-spy raw output (``stack;stack;... count``): share of samples per function, inclusive."""
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    for line in raw_path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        total += count
        frames = [
            re.sub(r"\s*\((.*?)(:\d+)?\)$", r" (\1)", f).replace(str(ROOT) + "/", "")
            for f in stack.split(";")
        ]
        frames = [re.sub(r"\(/.*?site-packages/", "(", f) for f in frames]
        for f in set(frames):
            inclusive[f] += count
        leaf[frames[-1]] += count

    def table(c: Counter[str]) -> list[list[Any]]:
        return [[f, round(100 * n / max(total, 1), 1)] for f, n in c.most_common(top)]

    interesting = Counter({f: n for f, n in inclusive.items() if "chatserver/" in f})
    return {"samples": total, "inclusive_chatserver_pct": table(interesting), "leaf_pct": table(leaf)}


def bench_backend(kind: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("CHATSERVER_", "DATABASE_URL", "REDIS_URL"))
    }
    env.update(
        CHATSERVER_DATA_DIR=str(tmp / f"{kind}-data"),
        CHATSERVER_ADMIN_PASSWORD=ADMIN_PASSWORD,
        CHATSERVER_ROUTING="offers",
        CHATSERVER_RATE_LIMIT_PER_S="100000",
        CHATSERVER_RATE_LIMIT_BURST="100000",
        CHATSERVER_MAX_CONCURRENT="1000",
        CHATSERVER_OFFER_TIMEOUT_S=str(args.offer_timeout),
        PYTHONUNBUFFERED="1",
    )
    result: dict[str, Any] = {
        "backend": kind,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "code": code_version(),
    }
    dbname = None
    if kind == "sqlite":
        result["database"] = (
            f"SQLite {sqlite3.sqlite_version} (embedded, WAL, synchronous=FULL), in-process bus"
        )
    else:
        dbname = f"routing_offer_{uuid.uuid4().hex[:10]}"
        pg(f'CREATE DATABASE "{dbname}"')
        env["DATABASE_URL"] = PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + dbname
        env["REDIS_URL"] = args.redis_url
        env["CHATSERVER_SECRET_KEY"] = SECRET
        result["database"] = f"PostgreSQL {pg('SHOW server_version')} (db {dbname}) + Redis bus"
        result["redis"] = redis_check(args.redis_url)
    server = Server(
        "server", [str(BIN / "chatserver"), "serve", "--port", str(port)], env, port, tmp / f"{kind}.log"
    )
    seed: dict[str, Any] | None = None
    try:
        t = time.monotonic()
        if kind == "sqlite":
            server.start()  # first start: migrates, creates the admin and an inbox; the seed adds to it
            seed = seed_cli(env, args.agents, migrate=False)
        else:
            seed = seed_cli(env, args.agents, migrate=True)
            server.start()
        result["setup_s"] = round(time.monotonic() - t, 2)
        assert server.proc is not None
        cfg = {
            "base": f"http://127.0.0.1:{port}",
            "ws": f"ws://127.0.0.1:{port}",
            "inbox_key": seed["inbox"]["key"],
            "agent_tokens": [a["token"] for a in seed["agents"]],
            "admin_token": seed["admin_token"],
            "rate": args.rate,
            "warmup_s": args.warmup,
            "duration_s": args.duration,
            "drain_s": 15.0,
            "answer_drain_s": 5.0,
            "offer_timeout_s": args.offer_timeout,
            "server_pid": server.proc.pid,
        }
        if args.profile:
            spy = shutil.which("py-spy") or str(BIN / "py-spy")
            cfg["profile_cmd"] = [
                spy, "record", "--pid", str(server.proc.pid), "--rate", "100", "--nonblocking", "--gil",
                "--format", "raw", "--output", str(tmp / f"{kind}.pyspy"),
                "--duration", str(int(args.duration)),
            ]  # fmt: skip
        cfg_path, out_path = tmp / f"{kind}-cfg.json", tmp / f"{kind}-out.json"
        cfg_path.write_text(json.dumps(cfg))
        lg = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--loadgen", str(cfg_path), str(out_path)],
            cwd=ROOT,
        )
        rc = lg.wait(timeout=args.duration + args.warmup + 180)
        if rc != 0 or not out_path.exists():
            raise RuntimeError(f"load generator failed with exit code {rc}")
        result.update(json.loads(out_path.read_text()))
        if args.profile and (tmp / f"{kind}.pyspy").exists():
            result["profile"] = profile_summary(tmp / f"{kind}.pyspy")
            result["profile"]["note"] = (
                "py-spy --gil (100 Hz, nonblocking) on the server over the measured window: "
                "where the Python CPU goes (samples of the thread holding the GIL)"
            )

    finally:
        result["server_exit_code"] = server.stop()
        result["server_log"] = server.log_summary()
        if dbname is not None:
            with contextlib.suppress(Exception):
                pg(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            result["database_dropped"] = True
    return result


def code_version() -> dict[str, Any]:
    """The commit under test and uncommitted changes to the server's code (others may be editing it)."""
    out: dict[str, Any] = {}
    with contextlib.suppress(Exception):
        git = ["git", "-C", str(ROOT)]
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        out["commit"] = head.stdout.strip()
        status = subprocess.run(
            [*git, "status", "--porcelain", "--", "chatserver"], capture_output=True, text=True
        )
        out["uncommitted_chatserver_files"] = [ln[3:] for ln in status.stdout.splitlines()]
    return out


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
        "websockets": websockets.__version__,  # type: ignore[attr-defined]
        "sqlalchemy": sqlalchemy.__version__,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def summary_of(results: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"date": results["machine"]["date"], "parameters": results["parameters"]}
    for b in results["backends"]:
        if "error" in b:
            out[b["backend"]] = {"error": b["error"]}
            continue
        lat = b["latency_ms"]
        out[b["backend"]] = {
            "samples": lat["msg_to_offer"]["n"],
            "msg_to_offer_ms": {k: lat["msg_to_offer"].get(k) for k in ("p50", "p95", "p99", "max")},
            "start_to_offer_ms": {k: lat["start_to_offer"].get(k) for k in ("p50", "p95", "p99", "max")},
            "start_to_offer_ms_unoffered_as_lower_bounds": {
                k: b["start_to_offer_with_never_offered_as_lower_bounds_ms"].get(k)
                for k in ("n", "p50", "p95", "p99", "max")
            },
            "never_offered": b["conversations"]["never_offered"],
            "offers_per_s": b["throughput"]["offers_received_per_s_during_arrivals"],
            "server_cpu_pct": b["cpu"].get("server_pct_of_core"),
            "loadgen_cpu_pct": b["cpu"].get("loadgen_pct_of_core"),
            "machine_busy_pct": b["cpu"].get("machine_busy_pct"),
            "everything_else_pct_of_core": b["cpu"].get("everything_else_pct_of_core"),
            "server_cpu_ms_per_conversation": b["server_cpu_whole_load"]["cpu_ms_per_conversation"],
        }
    return out


def fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.1f}" if isinstance(v, float) else str(v)


def print_report(results: dict[str, Any]) -> None:
    p = results["parameters"]
    m = results["machine"]
    print(
        f"\nrouting offer latency: {p['rate']} new conversations/s for {p['duration_s']} s "
        f"(+{p['warmup_s']} s warm-up), {p['agents']} agents; {m['cores']} cores, Python {m['python']}, "
        f"load average at start {m['load_average_at_start']}"
    )
    for b in results["backends"]:
        print(f"\n== {b['backend']}: {b.get('database', '')}; code {b.get('code')}")
        if "error" in b:
            print(f"   FAILED: {b['error']}")
            continue
        c = b["conversations"]
        print(
            f"   conversations: {c['measured']} measured, {c['started']} started, {c['offered']} offered, "
            f"{c['never_offered']} not offered by the end of the drain, "
            f"visitor errors {c['visitor_errors'] or 'none'}"
        )
        th, tr = b["throughput"], b["start_to_offer_trend_ms"]
        print(
            f"   router throughput: {th['offers_received_per_s_during_arrivals']} offers/s while "
            f"{th['arrivals_per_s']} conversations/s arrived; "
            f"{th['measured_conversations_not_yet_offered_when_arrivals_ended']} measured conversations "
            f"still waiting when arrivals ended; start->offer p50 first quarter of arrivals "
            f"{fmt(tr['first_quarter_of_arrivals_p50'])} ms, "
            f"last quarter {fmt(tr['last_quarter_of_arrivals_p50'])} ms"
        )
        print(f"   {'ms':<28}{'n':>6}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}{'min':>9}")
        for name, key in (
            ("first message -> offer", "msg_to_offer"),
            ("conversation.start -> offer", "start_to_offer"),
            ("start -> ack", "start_to_ack"),
            ("message -> ack", "msg_to_ack"),
            ("arrival schedule lag", "arrival_schedule_lag"),
            ("start -> offer, unoffered=LB", None),
        ):
            s = b["latency_ms"][key] if key else b["start_to_offer_with_never_offered_as_lower_bounds_ms"]
            print(
                f"   {name:<28}{s.get('n', 0):>6}{fmt(s.get('p50')):>9}{fmt(s.get('p95')):>9}"
                f"{fmt(s.get('p99')):>9}{fmt(s.get('max')):>9}{fmt(s.get('min')):>9}"
            )
        print(
            "   offers that arrived before the first message was sent: "
            f"{b['offer_before_first_message_sent']}, "
            f"before the start's ack: {b['offer_before_start_ack']}"
        )
        print("   breakdown of start -> offer (server ms stamps):")
        for k, s in b["breakdown_ms"].items():
            print(
                f"     {k:<32} p50 {fmt(s.get('p50')):>7}  p99 {fmt(s.get('p99')):>7}  "
                f"max {fmt(s.get('max')):>7}"
            )
        rc = b["router_cycles_from_offers"]
        print(
            f"   router: {rc['cycles_with_offers']} cycles made offers, offers/cycle p50 "
            f"{fmt(rc['offers_per_cycle'].get('p50'))} max {fmt(rc['offers_per_cycle'].get('max'))}, "
            f"gap between cycle starts p50 {fmt(rc['gap_between_cycle_starts_ms'].get('p50'))} ms; "
            f"metrics delta {b.get('router_metrics_delta')}"
        )
        print(
            f"   accepts {b['accept_answers']}, closes {b['close_answers']}, revoked {b['offers_revoked']}, "
            f"offered twice {b['conversations_offered_more_than_once']}, "
            f"error frames {b['error_frames'] or 'none'}, "
            f"unexpected closes {b['unexpected_closes'] or 'none'}"
        )
        cpu = b["cpu"]
        print(
            f"   CPU (% of one core over {cpu.get('window_s')} s): server {cpu.get('server_pct_of_core')} "
            f"(event-loop thread {cpu.get('server_main_thread_pct_of_core')}), "
            f"load generator {cpu.get('loadgen_pct_of_core')}, "
            f"postgres {fmt(cpu.get('postgres_pct_of_core'))}, redis {fmt(cpu.get('redis_pct_of_core'))}, "
            f"everything else {cpu.get('everything_else_pct_of_core')}; "
            f"machine busy {cpu.get('machine_busy_pct')}%, server waited for a CPU "
            f"{cpu.get('server_runqueue_wait_pct_of_wall')}% of the time; "
            f"load generator loop lag p99 {fmt(b['loadgen_loop_lag_ms'].get('p99'))} ms"
        )
        sc = b["server_cpu_whole_load"]
        print(
            f"   server CPU for the whole load: {sc['cpu_s']} s over {sc['wall_s']} s for "
            f"{sc['conversations']} conversations = {sc['cpu_ms_per_conversation']} ms CPU per conversation "
            f"(idle with the agents connected: {b['server_cpu_idle_pct_of_core']}% of a core)"
        )
        print(
            f"   visitor tokens: {b['visitor_tokens']}; "
            f"server log problems: {b['server_log']['problems'] or 'none'}"
        )
        if "profile" in b:
            print("   server profile (inclusive %, chatserver frames):")
            for f, share in b["profile"]["inclusive_chatserver_pct"][:15]:
                print(f"     {share:>5}%  {f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="5 s of arrivals per backend instead of 20")
    ap.add_argument("--rate", type=float, default=50.0, help="new conversations per second")
    ap.add_argument("--duration", type=float, default=None, help="measured seconds of arrivals (20)")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds of arrivals first, not counted")
    ap.add_argument("--agents", type=int, default=20)
    ap.add_argument("--offer-timeout", type=float, default=60.0)
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--redis-url", default=REDIS_URL)
    ap.add_argument("--profile", action="store_true", help="py-spy the server during the load")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument(
        "--workdir", type=Path, help="keep server logs, data and profiles here (default: a temp dir)"
    )
    ap.add_argument("--loadgen", nargs=2, metavar=("CONFIG", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.loadgen:
        loadgen_main(*args.loadgen)
        return 0
    if args.duration is None:
        args.duration = 5.0 if args.quick else 20.0
    raise_nofile(65536)
    results: dict[str, Any] = {
        "benchmark": "routing_offer",
        "machine": machine_info(),
        "parameters": {
            "rate": args.rate,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "agents": args.agents,
            "offer_timeout_s": args.offer_timeout,
            "max_concurrent": 1000,
            "quick": args.quick,
            "profile": args.profile,
            "arrival": "open loop by the clock; each arrival connects /ws/visitor, waits for hello, "
            "sends conversation.start, then message.send on its ack",
            "agents_behaviour": "offer.accept at once, conversation.close after the accept's ack",
        },
        "backends": [],
    }
    t0 = time.monotonic()
    with contextlib.ExitStack() as stack:
        if args.workdir is not None:
            args.workdir.mkdir(parents=True, exist_ok=True)
            d = str(args.workdir)
        else:
            d = stack.enter_context(tempfile.TemporaryDirectory(prefix="routing-offer-"))
        for kind in [b.strip() for b in args.backends.split(",") if b.strip()]:
            print(f"-- {kind} ...", flush=True)
            try:
                results["backends"].append(bench_backend(kind, args, Path(d)))
            except Exception as exc:
                traceback.print_exc()
                results["backends"].append({"backend": kind, "error": f"{type(exc).__name__}: {exc}"[:2000]})
    results["total_wall_s"] = round(time.monotonic() - t0, 1)
    results["summary"] = summary_of(results)
    previous: list[Any] = []
    with contextlib.suppress(Exception):
        old = json.loads(args.out.read_text())
        previous = [old["summary"], *old.get("previous_runs", [])][:4]
    results["previous_runs"] = previous
    print_report(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(
        f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out} "
        f"({results['total_wall_s']} s)"
    )
    return 0 if all("error" not in b for b in results["backends"]) else 1


if __name__ == "__main__":
    sys.exit(main())
