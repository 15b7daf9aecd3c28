"""The report of bench/core.py: targets, the machine, the summary table and py-spy profile summaries."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import re
from collections import Counter
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

TARGETS = {
    "throughput_msgs_per_s": (">=", 2000.0),
    "latency_p99_ms": ("<=", 25.0),
    "idle_kib_per_conn": ("<=", 24.0),
    "relay_pct": (">=", 50.0),
}


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


def cpu_us_per_message(phase: dict[str, Any]) -> float | None:
    """Server CPU microseconds per acknowledged (persisted) message over a phase: the figure that does
    not depend on how busy the rest of the machine is (the CPU meter covers the phase's warm-up and
    drain, and so do the acks counted)."""
    cpu_s = phase.get("cpu", {}).get("server_cpu_s")
    acked = phase.get("acked_total")
    if cpu_s is None or not acked:
        return None
    return round(cpu_s * 1e6 / acked, 1)


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
    row("  server CPU per message (us)", ("throughput", "cpu_us_per_msg"))
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
    row("  server CPU per message (us)", ("latency", "cpu_us_per_msg"))
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
