"""Benchmark of channel webhooks: inbound webhooks/s to a committed message on one process, and the delay
from a webhook to the agent's socket.

Starts ``chatserver serve`` (SQLite, manual routing) with a Telegram inbox created through the CLI, then:

* throughput: ``--n`` signed Telegram updates posted with ``--concurrency`` in flight, from 50 customers
  (into their open conversations) and from as many new customers (each a new contact and conversation);
  a 200 means the message is committed, so completed/s is committed messages/s;
* latency: an agent who claimed 20 of the conversations is connected; updates are posted open loop at
  ``--rate``/s for ``--seconds``; each one's delay is from sending the webhook to the agent receiving
  its ``message`` frame (p50/p99).

Run: ``.venv/bin/python bench/webhooks.py`` (about a minute). Prints the figures and writes
``bench/results/webhooks.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil  # type: ignore[import-untyped]
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Server, free_port, seed_via_cli  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "webhooks.json"
SECRET = "bench-secret-token"
IDS = itertools.count(1)


def update(user: int, text: str) -> bytes:
    n = next(IDS)
    return orjson.dumps(
        {
            "update_id": n,
            "message": {
                "message_id": n,
                "from": {"id": user, "is_bot": False, "first_name": f"U{user}", "language_code": "en"},
                "chat": {"id": user, "type": "private"},
                "date": int(time.time()),
                "text": text,
            },
        }
    )


async def post_all(url: str, bodies: list[bytes], concurrency: int) -> tuple[float, int]:
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
    queue = list(reversed(bodies))
    failures = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal failures
        while queue:
            r = await client.post(url, content=queue.pop(), headers=headers)
            failures += r.status_code != 200

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return time.perf_counter() - start, failures


async def latency(base: str, url: str, agent_token: str, rate: float, seconds: float) -> dict[str, Any]:
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    users = [9_000_000 + i for i in range(20)]
    async with httpx.AsyncClient(timeout=30) as http:
        for u in users:
            assert (await http.post(url, content=update(u, "hello"), headers=headers)).status_code == 200
        r = await http.get(
            f"{base}/api/v1/conversations?status=queued&limit=200",
            headers={"Authorization": f"Bearer {agent_token}"},
        )
        convs = [c["id"] for c in r.json()["items"] if int(c["contact"]["name"][1:]) in users]
        ws_url = base.replace("http://", "ws://") + "/ws/agent"
        async with connect(ws_url, additional_headers={"Authorization": f"Bearer {agent_token}"}) as ws:
            for cid in convs:
                await ws.send(json.dumps({"type": "conversation.claim", "conversation_id": cid}))
            sent: dict[str, float] = {}
            delays: list[float] = []
            done = asyncio.Event()
            finished_sending = False

            async def reader() -> None:
                async for raw in ws:
                    frame = orjson.loads(raw)
                    if frame.get("type") == "message":
                        key = frame["message"]["text"]
                        if key in sent:
                            delays.append(time.perf_counter() - sent.pop(key))
                            if not sent and finished_sending:
                                done.set()

            task = asyncio.create_task(reader())
            await asyncio.sleep(1)
            posts = []
            start = time.perf_counter()
            for i in range(int(rate * seconds)):
                at = start + i / rate
                await asyncio.sleep(max(0.0, at - time.perf_counter()))
                key = f"m{i}"
                sent[key] = time.perf_counter()
                body = update(users[i % len(users)], key)
                posts.append(asyncio.create_task(http.post(url, content=body, headers=headers)))
            statuses = [r.status_code for r in await asyncio.gather(*posts)]
            finished_sending = True
            if sent:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(10):
                        await done.wait()
            task.cancel()
    delays.sort()
    return {
        "rate_per_s": rate,
        "sent": len(statuses),
        "non_200": sum(s != 200 for s in statuses),
        "received": len(delays),
        "p50_ms": round(statistics.median(delays) * 1000, 1) if delays else None,
        "p99_ms": round(delays[int(len(delays) * 0.99) - 1] * 1000, 1) if delays else None,
    }


def other_cpu(mine: set[int]) -> float:
    """CPU % used by every other process over one second (the figures are only as good as a quiet machine)."""
    procs = [p for p in psutil.process_iter() if p.pid not in mine]
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.cpu_percent(None)
    time.sleep(1)
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.cpu_percent(None)
    return total


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--rate", type=float, default=100)
    p.add_argument("--seconds", type=float, default=10)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp / 'chat.db'}",
        "CHATSERVER_SECRET_KEY": "bench-" + "x" * 40,
        "CHATSERVER_ROUTING": "manual",
        "CHATSERVER_LOG_LEVEL": "warning",
    }
    seeded = seed_via_cli(
        env,
        1,
        migrate=True,
        password="bench-password",
        role="agent",
        inbox="W",
        domain="b.test",
        supervisor=False,
    )
    config = json.dumps({"bot_token": "1:bench", "secret_token": SECRET})
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "chatserver.cli",
            "create-inbox",
            "--channel",
            "telegram",
            "--name",
            "Bot",
            "--config",
            config,
            "--json",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    inbox = json.loads(out.stdout)
    port = free_port()
    server = Server(
        "serve",
        [sys.executable, "-m", "chatserver.cli", "serve", "--port", str(port)],
        env,
        port,
        tmp / "serve.log",
    )
    server.start()
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/webhooks/telegram/{inbox['id']}"
    try:
        others_cpu = other_cpu({os.getpid(), server.pid})
        known = [update(1000 + i % 50, f"known {i}") for i in range(args.n)]
        fresh = [update(5_000_000 + i, f"new {i}") for i in range(args.n)]
        t_known, f_known = asyncio.run(post_all(url, known, args.concurrency))
        t_fresh, f_fresh = asyncio.run(post_all(url, fresh, args.concurrency))
        lat = asyncio.run(latency(base, url, seeded["agents"][0]["token"], args.rate, args.seconds))
        result = {
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "python": platform.python_version(),
            "backend": "sqlite",
            "other_processes_cpu_percent": round(others_cpu, 1),
            "existing_conversations": {"n": args.n, "per_s": round(args.n / t_known), "failures": f_known},
            "new_contacts": {"n": args.n, "per_s": round(args.n / t_fresh), "failures": f_fresh},
            "webhook_to_agent": lat,
            "server_log": server.log_summary(),
        }
    finally:
        server.stop()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"webhooks -> committed, existing conversations: {result['existing_conversations']['per_s']}/s")
    print(f"webhooks -> committed, new contacts:           {result['new_contacts']['per_s']}/s")
    print(
        f"webhook -> agent socket at {args.rate:.0f}/s: p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms "
        f"({lat['received']}/{lat['sent']} received)"
    )
    print(f"other processes used {others_cpu:.0f} % CPU during setup")


if __name__ == "__main__":
    main()
