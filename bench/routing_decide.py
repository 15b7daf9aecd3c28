"""Routing engine decision time: 10,000 queued conversations, 500 agents with varied skills.

Run: ``.venv/bin/python bench/routing_decide.py`` (under 10 s). Prints a summary and writes
``bench/results/routing.json``. Measures:

- one ``decide()`` over the whole queue (repeated), and that time divided by the number of
  conversations it decided about (per-decision mean);
- ``choose_agent()`` for individual conversations against the full roster (p50 / p99 / max), the cost
  of one decision made on its own.

Each is timed on the wall clock and on the thread's CPU clock: on a busy shared machine the wall-clock
tail mostly measures preemption, the CPU clock the engine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

from chatserver.routing import (
    AgentState,
    LanguageRequirement,
    PendingOffer,
    QueuedConversation,
    RelaxStep,
    RoutingState,
    SkillRequirement,
    choose_agent,
    decide,
)

NOW = 1_700_000_000.0
SKILLS = [f"skill{i:02d}" for i in range(20)]
TEAMS = [f"team{i}" for i in range(10)]
LANGS = ["en", "de", "fr", "es", "it", "pt", "nl", "ja"]
TRANSLATABLE = LANGS[:6]


def build_agents(rnd: random.Random, n: int) -> list[AgentState]:
    agents = []
    for i in range(n):
        capacity = rnd.randint(2, 5)
        agents.append(
            AgentState(
                id=f"agent{i:04d}",
                status=rnd.choices(["online", "away", "offline"], weights=[90, 5, 5])[0],
                capacity=capacity,
                active=rnd.randint(0, capacity),
                skills={s: rnd.randint(1, 5) for s in rnd.sample(SKILLS, rnd.randint(3, 6))},
                languages={lang: rnd.randint(1, 5) for lang in rnd.sample(LANGS, rnd.randint(1, 3))},
                teams=frozenset(rnd.sample(TEAMS, rnd.randint(1, 2))),
                idle_since=NOW - rnd.uniform(0, 3600),
            )
        )
    return agents


def build_queue(rnd: random.Random, n: int, agent_ids: list[str]) -> list[QueuedConversation]:
    queue = []
    for i in range(n):
        language = rnd.choice(LANGS)
        steps: list[RelaxStep] = []
        if rnd.random() < 0.3:
            steps.append(RelaxStep(LanguageRequirement(language, 4), 30.0))
        if rnd.random() < 0.2:
            steps.append(RelaxStep(SkillRequirement(rnd.choice(SKILLS), 4), 60.0))
        offer = None
        roll = rnd.random()
        if roll < 0.05:
            offer = PendingOffer(rnd.choice(agent_ids), NOW + rnd.uniform(1, 30))
        elif roll < 0.07:
            offer = PendingOffer(rnd.choice(agent_ids), NOW - rnd.uniform(0, 5))
        queue.append(
            QueuedConversation(
                id=f"conv{i:05d}",
                enqueued_at=NOW - rnd.uniform(0, 3600),
                priority=rnd.choices([0, 1, 2, 3], weights=[70, 20, 8, 2])[0],
                sla_due_at=NOW + rnd.uniform(-600, 3600) if rnd.random() < 0.3 else None,
                team=rnd.choice(TEAMS) if rnd.random() < 0.8 else None,
                skills={s: rnd.randint(1, 3) for s in rnd.sample(SKILLS, rnd.randint(0, 2))},
                language=language,
                relax_steps=tuple(steps),
                preferred_agent_id=rnd.choice(agent_ids) if rnd.random() < 0.2 else None,
                offer=offer,
            )
        )
    return queue


def percentile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5, help="decide() calls to time")
    parser.add_argument("--single", type=int, default=2_000, help="choose_agent() calls to time")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "routing.json")
    args = parser.parse_args()

    rnd = random.Random(args.seed)
    agents = build_agents(rnd, args.agents)
    queue = build_queue(rnd, args.conversations, [a.id for a in agents])
    pairs = frozenset((src, dst) for src in TRANSLATABLE for dst in TRANSLATABLE if src != dst)
    state = RoutingState(
        agents=tuple(agents),
        queue=tuple(queue),
        translation_pairs=pairs,
        closed_teams=frozenset({TEAMS[-1]}),
        avg_handle_s=420.0,
    )

    load_before = os.getloadavg()[0]
    decisions = decide(state, NOW)  # warm-up, and the decisions to describe
    decide_wall: list[float] = []
    decide_cpu: list[float] = []
    for _ in range(args.repeat):
        wall, cpu = time.perf_counter(), time.thread_time()
        decide(state, NOW)
        decide_cpu.append(time.thread_time() - cpu)
        decide_wall.append(time.perf_counter() - wall)
    decided = sum(1 for c in queue if c.offer is None or c.offer.expires_at <= NOW)
    kinds = Counter(type(d).__name__ + (f":{d.reason}" if hasattr(d, "reason") else "") for d in decisions)

    single_wall: list[float] = []
    single_cpu: list[float] = []
    for conv in rnd.sample(queue, min(args.single, len(queue))):
        wall, cpu = time.perf_counter(), time.thread_time()
        choose_agent(conv, agents, NOW, pairs)
        single_cpu.append((time.thread_time() - cpu) * 1000)
        single_wall.append((time.perf_counter() - wall) * 1000)

    def spread(ms: list[float]) -> dict[str, float]:
        ordered = sorted(ms)
        return {q: round(percentile(ordered, v), 4) for q, v in (("p50", 0.5), ("p99", 0.99), ("max", 1.0))}

    median_cpu, median_wall = statistics.median(decide_cpu), statistics.median(decide_wall)
    single = {"wall": spread(single_wall), "cpu": spread(single_cpu)}
    per_conversation_ms = median_cpu * 1000 / decided
    results = {
        "benchmark": "routing_decide",
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "note": "wall = perf_counter, cpu = thread_time; on a shared machine wall tails include preemption",
        "conversations": len(queue),
        "agents": len(agents),
        "online_agents": sum(a.status == "online" for a in agents),
        "decisions": len(decisions),
        "decided_conversations": decided,
        "decision_kinds": dict(sorted(kinds.items())),
        "decide_s": {
            "wall": [round(v, 4) for v in decide_wall],
            "cpu": [round(v, 4) for v in decide_cpu],
            "median_wall": round(median_wall, 4),
            "median_cpu": round(median_cpu, 4),
        },
        "decide_per_decision_ms": {
            "cpu_per_decided_conversation": round(per_conversation_ms, 4),
            "cpu_per_decision": round(median_cpu * 1000 / len(decisions), 4),
            "wall_per_decided_conversation": round(median_wall * 1000 / decided, 4),
        },
        "choose_agent_ms": {"calls": len(single_wall), **single},
        "target_p99_ms": 5.0,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")

    online = sum(a.status == "online" for a in agents)
    print(f"{len(queue)} conversations x {len(agents)} agents ({online} online)")
    print(f"decide(): median {median_wall * 1000:.0f} ms wall, {median_cpu * 1000:.0f} ms cpu")
    print(f"  {len(decisions)} decisions: {dict(kinds)}")
    print(f"  per decided conversation: {per_conversation_ms:.4f} ms cpu")
    for clock, q in single.items():
        print(f"choose_agent() {clock}: p50 {q['p50']:.3f} ms, p99 {q['p99']:.3f} ms, max {q['max']:.3f} ms")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
