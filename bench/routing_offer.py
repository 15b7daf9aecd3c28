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

``--count`` instead counts database statements and transactions per conversation state change
(connect, ``conversation.start``, the router's offer, ``offer.accept``, ``conversation.close``) with the
server in this process (bench/routing_offer_count.py); counts are deterministic, so they compare across
machines and loads. ``--backends`` applies; the counts go into the results file under ``counts``.

Redis: the lease key ``chat:routing:leader`` and presence keys are per Redis database, so the default
``--redis-url`` uses database 11, not 0, to stay out of the way of test servers on database 0 (they would
otherwise compete for the routing lease). Pub/sub channels are global across Redis databases; the number
of other subscribers to ``chat:routing`` is reported.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
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
from pathlib import Path
from typing import Any

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
from routing_offer_count import count_main, print_counts  # bench/routing_offer_count.py: --count
from routing_offer_load import loadgen_main  # bench/routing_offer_load.py: the load generator process

RESULTS = ROOT / "bench" / "results" / "routing_offer.json"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
SECRET = "bench-secret-" + "r" * 30  # 43 characters
ADMIN_PASSWORD = "pw-long-123"
AGENT_PASSWORD = "pw-long-one"


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
        CHATSERVER_WS_PER_ADDRESS="100000",  # every agent and visitor connects from 127.0.0.1
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


def count_only(args: argparse.Namespace) -> int:
    """``--count``: statements per state change (bench/routing_offer_count.py), written under ``counts``."""

    def pg_database() -> tuple[str, Any]:
        name = f"routing_count_{uuid.uuid4().hex[:10]}"
        pg(f'CREATE DATABASE "{name}"')
        url = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + "/" + name
        return url, lambda: pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    counts = count_main(backends, pg_database, args.count_conversations, args.count_batch)
    print_counts(counts)
    results: dict[str, Any] = {}
    with contextlib.suppress(Exception):
        results = json.loads(args.out.read_text())
    results["counts"] = {"machine": machine_info(), "code": code_version(), "backends": counts}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    return 0


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
    ap.add_argument(
        "--count", action="store_true", help="count statements per state change instead of the load"
    )
    ap.add_argument("--count-conversations", type=int, default=10, help="--count: one at a time")
    ap.add_argument("--count-batch", type=int, default=20, help="--count: started at once")
    ap.add_argument("--loadgen", nargs=2, metavar=("CONFIG", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.loadgen:
        loadgen_main(*args.loadgen)
        return 0
    if args.count:
        return count_only(args)
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
