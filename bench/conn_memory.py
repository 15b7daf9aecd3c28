"""Where the memory of an idle visitor connection goes, measured with tracemalloc.

    .venv/bin/python bench/conn_memory.py [--n 500] [--rss]

Runs `chatserver`'s app in this process on SQLite (uvicorn configured as `chatserver serve` does) and
opens N visitor connections from a client subprocess; each completes `hello` and its snapshot, sends an
empty `resume`, and then stays idle. It prints the Python heap growth per connection, grouped by the
package that allocated it (uvicorn, websockets, starlette, asyncio, chatserver, ...), and the process
RSS growth per connection. tracemalloc sees Python allocations only (not the kernel's socket buffers),
and its own bookkeeping inflates RSS: ``--rss`` runs without it and reports the RSS growth alone (the
figure to compare with the 24 KiB budget).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import subprocess
import sys
import tempfile
import tracemalloc
from collections import Counter
from pathlib import Path

import psutil
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chatserver.app import create_app
from chatserver.settings import Settings
from chatserver.transport.server import uvicorn_config
from tests.e2e.harness import seed

CLIENT = r"""
import asyncio, sys, httpx, orjson
from websockets.asyncio.client import connect
base, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
async def main():
    conns = []
    async with httpx.AsyncClient(timeout=30) as http:
        toks = [(await http.post(base + "/api/v1/widget/sessions", json={"inbox_key": key})).json()["token"]
                for _ in range(n)]
    for t in toks:
        ws = await connect(base.replace("http", "ws") + "/ws/visitor?token=" + t)
        while orjson.loads(await ws.recv()).get("type") != "snapshot":
            pass
        await ws.send(orjson.dumps({"type": "resume", "cursors": {}}).decode())
        conns.append(ws)
    print("OPEN", flush=True)
    sys.stdin.readline()
    for ws in conns:
        await ws.close()
asyncio.run(main())
"""

GROUPS = ("uvicorn", "websockets", "starlette", "sqlalchemy", "asyncio", "chatserver", "h11", "httptools")


def group(filename: str) -> str:
    for g in GROUPS:
        if f"/{g}/" in filename:
            return g
    return "other"


async def measure(n: int, *, trace: bool = True) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="connmem-"))
    url = f"sqlite+aiosqlite:///{tmp / 'chat.db'}"
    s = await seed(url)
    settings = Settings(
        data_dir=tmp,
        database_url=url,
        secret_key="m" * 40,
        embedded=False,
        routing="manual",
        ws_per_address=n + 10,
    )
    app = create_app(settings)
    config = uvicorn_config(app, settings, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn has no started event)
        await asyncio.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    proc = psutil.Process()
    client = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CLIENT,
        f"http://127.0.0.1:{port}",
        s.inbox_key,
        str(n),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    # warm up once (imports, caches, pools) with the first connections' work, then measure
    gc.collect()
    if trace:
        tracemalloc.start(8)
        before = tracemalloc.take_snapshot()
    rss0 = proc.memory_info().rss
    assert client.stdout is not None and client.stdin is not None
    line = await client.stdout.readline()
    assert line.strip() == b"OPEN", line
    await asyncio.sleep(1.0)
    gc.collect()
    rss1 = proc.memory_info().rss
    if not trace:
        client.stdin.write(b"\n")
        await client.stdin.drain()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.wait(), 30)
        server.should_exit = True
        await task
        return {"connections": n, "rss_kib_per_connection": round((rss1 - rss0) / 1024 / n, 1)}
    after = tracemalloc.take_snapshot()
    by_group: Counter[str] = Counter()
    by_line: Counter[str] = Counter()
    for stat in after.compare_to(before, "traceback"):
        top = stat.traceback[-1]
        by_line[f"{top.filename.split('site-packages/')[-1]}:{top.lineno}"] += stat.size_diff
        frames = [f.filename for f in stat.traceback]
        owner = next((group(f) for f in reversed(frames) if group(f) != "other"), "other")
        by_group[owner] += stat.size_diff
    client.stdin.write(b"\n")
    await client.stdin.drain()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.wait(), 30)
    tracemalloc.stop()
    server.should_exit = True
    await task
    return {
        "connections": n,
        "python_heap_kib_per_connection": round(sum(by_group.values()) / 1024 / n, 2),
        "by_package_kib_per_connection": {k: round(v / 1024 / n, 2) for k, v in by_group.most_common()},
        "rss_kib_per_connection_with_tracemalloc": round((rss1 - rss0) / 1024 / n, 1),
        "top_sites_bytes_per_connection": {k: round(v / n) for k, v in by_line.most_common(25)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--rss", action="store_true", help="RSS growth only, without tracemalloc")
    cfg = ap.parse_args()
    print(json.dumps(asyncio.run(measure(cfg.n, trace=not cfg.rss)), indent=2))


if __name__ == "__main__":
    main()
