"""The load generator of bench/routing_offer.py (its own process: ``routing_offer.py --loadgen CONFIG
OUT``): visitors and agents over real WebSockets, and the statistics helpers both sides use."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import os
import statistics
import subprocess
import time
import traceback
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil  # type: ignore[import-untyped]
from common import (  # bench/common.py (this script's folder)
    raise_nofile,
)

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
