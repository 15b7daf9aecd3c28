"""CPU per message of the group commit alone, by batch size, in this process (no sockets, no clients).

For each backend (``--backends sqlite,postgres``) it creates a fresh database, 50 conversations, and then
commits rounds of exactly ``k`` messages for each ``k`` in ``--sizes`` (the writer takes them as one
batch): process CPU seconds (the event loop and the database driver's threads) per message and per
batch, and the wall time of a batch. It is the writer's share of ``bench/core.py``'s server CPU per
message, without the WebSocket work; on a shared machine the CPU figures hold up where wall times do not.

Run: ``.venv/bin/python bench/writer.py [--sizes 1,10,100] [--backends sqlite,postgres]``. Writes
``bench/results/writer.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import uvloop
from common import PG_ADMIN_DSN, ROOT, pg  # bench/common.py (this script's folder)

from chatserver.model.types import Author, AuthorKind, MessageKind
from chatserver.store.db import Database, make_engine
from chatserver.store.migrate import upgrade
from chatserver.store.store import Store
from chatserver.store.writer import PendingMessage

RESULTS = ROOT / "bench" / "results" / "writer.json"


async def run(url: str, sizes: list[int], messages: int) -> list[dict[str, Any]]:
    engine = make_engine(url)
    await upgrade(engine)
    store = Store(Database(engine))
    await store.start()
    out = []
    try:
        inbox = await store.create_inbox("Bench")
        convs = []
        for _ in range(50):
            contact = await store.create_contact(name="Visitor", channel="widget")
            conv = await store.create_conversation(inbox=inbox, contact_id=contact.id)
            convs.append((conv.id, Author(AuthorKind.CONTACT, contact.id, contact.name)))
        n = 0
        for k in sizes:
            rounds = max(20, messages // k)
            batches0 = store.writer.batches
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for r in range(rounds):
                futures = []
                for j in range(k):
                    cid, author = convs[(r * k + j) % len(convs)]
                    n += 1
                    item = PendingMessage(cid, author, MessageKind.TEXT, "x" * 64, client_id=f"c{n}")
                    futures.append(await store.writer.submit(item))
                await asyncio.gather(*futures)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            out.append(
                {
                    "batch_size": k,
                    "rounds": rounds,
                    "batches": store.writer.batches - batches0,
                    "cpu_us_per_message": round(1e6 * cpu / (rounds * k), 1),
                    "cpu_us_per_batch": round(1e6 * cpu / rounds, 1),
                    "wall_ms_per_batch": round(1e3 * wall / rounds, 2),
                }
            )
    finally:
        await store.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description="Group-commit CPU per message by batch size")
    ap.add_argument("--sizes", default="1,10,100")
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--messages", type=int, default=2000, help="messages per batch size (at least 20 rounds)")
    ap.add_argument("--output", type=Path, default=RESULTS)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[str, Any] = {"benchmark": "writer", "load_average_at_start": os.getloadavg()}
    for kind in [k.strip() for k in args.backends.split(",") if k.strip()]:
        if kind == "sqlite":
            url = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp(prefix='writerbench-')) / 'chat.db'}"
            results[kind] = uvloop.run(run(url, sizes, args.messages))
        else:
            name = f"writerbench_{uuid.uuid4().hex[:10]}"
            pg(f'CREATE DATABASE "{name}"')
            try:
                dsn = PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
                url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
                results[kind] = uvloop.run(run(url, sizes, args.messages))
            finally:
                pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        for row in results[kind]:
            print(
                f"{kind:8s} batch {row['batch_size']:4d}: {row['cpu_us_per_message']:8.1f} us CPU/message, "
                f"{row['cpu_us_per_batch']:9.1f} us CPU/batch, {row['wall_ms_per_batch']:7.2f} ms/batch"
            )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
