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
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
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
from core_client import (  # bench/core_client.py: the load client
    Clients,
    merge_stats,
    ms_stats,
    now,
    pct,
    split,
)
from core_report import (  # bench/core_report.py
    TARGETS,
    cpu_us_per_message,
    machine_info,
    print_report,
    profile_summary,
    summarize,
)

RESULTS = ROOT / "bench" / "results" / "core.json"
SECRET = "bench-secret-" + "k" * 30
PASSWORD = "pw-long-one"


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
            "server_cpu_s": round(server, 3),
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
    profile_phase: str = "throughput",
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
        CHATSERVER_WS_PER_ADDRESS="100000",  # every client connects from 127.0.0.1 (the idle phase: 1,000)
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
        result.update(
            _run_phases(kind, cfg, clients, server, base, port, seed, profile_dir, native, profile_phase)
        )
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


def _start_spy(pid: int, out: Path, seconds: float, native: bool) -> subprocess.Popen[bytes]:
    """py-spy on the server for ``seconds`` (raw collapsed stacks into ``out``)."""
    cmd = [
        str(BIN / "py-spy"),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(int(seconds)),
        "--rate",
        "100",
        "--format",
        "raw",
        *(["--native"] if native else []),
        "-o",
        str(out),
    ]
    spy = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(0.3)
    return spy


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
    profile_phase: str = "throughput",
) -> dict[str, Any]:
    res: dict[str, Any] = {}
    ws_base = f"ws://127.0.0.1:{port}"
    db_name = seed["db"][1].rsplit("/", 1)[1] if seed is not None and seed["db"][0] == "postgres" else None
    meter = CpuMeter(server.pid, clients.pids, db_name)
    n_idle = 0 if (kind == "relay" or profile_dir is not None) else cfg.idle
    groups = ["L", "T"]  # latency pairs, throughput pairs
    if profile_dir is not None:  # one phase only, on its own pairs
        groups = ["L"] if profile_phase == "latency" else ["T"]

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
        lat_args = {"group": "L", "rate": cfg.rate / cfg.clients, "text_bytes": cfg.text_bytes}
        spy = None
        if profile_dir is not None:
            profile_dir.mkdir(parents=True, exist_ok=True)
            clients.call_all("latency", duration=cfg.warmup, warmup=0, **lat_args)
            spy = _start_spy(server.pid, profile_dir / f"{kind}-latency.txt", cfg.lat_duration, native)
            meter.start()
            lat = clients.call_all("latency", duration=cfg.lat_duration, warmup=0, **lat_args)
        else:
            meter.start()
            lat = clients.call_all("latency", duration=cfg.lat_duration, warmup=cfg.warmup, **lat_args)
        cpu = meter.stop()
        res["latency"] = merge_stats(lat)
        res["latency"].update(
            offered_rate=cfg.rate, duration_s=cfg.lat_duration, warmup_s=cfg.warmup, cpu=cpu
        )
        res["latency"]["cpu_us_per_msg"] = cpu_us_per_message(res["latency"])
        if spy is not None:
            out, _ = spy.communicate(timeout=60)
            res["profile"] = {"py_spy_output": out.decode(errors="replace")[-1000:]}
            return res

    # -- throughput (fresh conversations) ----------------------------------------------------------
    tp_args = {"group": "T", "window": cfg.window, "text_bytes": cfg.text_bytes}
    spy = None
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
        # warm up first, then start py-spy so that it samples only the measured window
        clients.call_all("throughput", duration=cfg.warmup, warmup=0, **tp_args)
        spy = _start_spy(server.pid, profile_dir / f"{kind}-throughput.txt", cfg.duration, native)
        meter.start()
        tp = clients.call_all("throughput", duration=cfg.duration, warmup=0, **tp_args)
    else:
        meter.start()
        tp = clients.call_all("throughput", duration=cfg.duration, warmup=cfg.warmup, **tp_args)
    cpu = meter.stop()
    res["throughput"] = merge_stats(tp)
    res["throughput"].update(window_per_visitor=cfg.window, warmup_s=cfg.warmup, cpu=cpu)
    res["throughput"]["cpu_us_per_msg"] = cpu_us_per_message(res["throughput"])
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
    ap.add_argument("--profile", type=Path, metavar="DIR", help="py-spy one SQLite phase only")
    ap.add_argument(
        "--profile-phase",
        choices=("throughput", "latency"),
        default="throughput",
        help="with --profile: the phase to profile (latency: the open loop at --rate)",
    )
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
            phase = args.profile_phase
            r = bench_backend(
                "sqlite",
                cfg,
                clients,
                tmp,
                profile_dir=args.profile,
                native=args.native,
                profile_phase=phase,
            )
            raw = args.profile / f"sqlite-{phase}.txt"
            ph = r[phase]
            rate = ph["msgs_per_s"] if phase == "throughput" else ph.get("actual_send_rate")
            print(f"{phase} while profiled: {rate} msgs/s; cpu {ph['cpu']}")
            print(f"server CPU per message: {ph['cpu_us_per_msg']} us")
            if raw.exists():
                seconds = cfg.duration if phase == "throughput" else cfg.lat_duration
                summ = profile_summary(raw, seconds)
                (args.profile / f"sqlite-{phase}-summary.json").write_text(json.dumps(summ, indent=2))
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
