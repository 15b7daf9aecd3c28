"""``bench/scale.py --rolling N``: a rolling restart of one of two web processes under load.

Two processes on PostgreSQL + Redis carry N visitors (half on each); an agent on the second one answers
every conversation in rounds, on and on. The first process gets SIGTERM (it closes its sockets with
1012, service restart) and is started again; its visitors reconnect with the widget's rule (at once,
up to 1 s of jitter, to either process) and resume from their cursors. The scenario is the one of
tests/e2e/test_rolling_restart.py (tests/e2e/rolling.py) at full size, with the widget's real delays.
Reports the time until all were back, messages lost, duplicates, and each process's peak RSS.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import PG_ADMIN_DSN, pg
from chatserver.settings import normalize_database_url
from tests.e2e.harness import ServerProcess, seed
from tests.e2e.rolling import rolling_restart


async def rolling(n: int, tmp: Path, redis_url: str, limit_s: float = 300.0) -> dict[str, Any]:
    dbname = f"chatbench_{uuid.uuid4().hex[:10]}"
    await asyncio.to_thread(pg, f'CREATE DATABASE "{dbname}"')
    url = normalize_database_url(PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + dbname)
    procs: list[ServerProcess] = []
    try:
        s = await seed(url)
        env = {
            "DATABASE_URL": url,
            "REDIS_URL": redis_url,
            "CHATSERVER_REDIS_PREFIX": f"bench{uuid.uuid4().hex[:8]}:",
            "CHATSERVER_SECRET_KEY": "r" * 40,
            "CHATSERVER_ROUTING": "manual",
            "CHATSERVER_RATE_LIMIT_PER_S": "100000",
            "CHATSERVER_RATE_LIMIT_BURST": "100000",
            "CHATSERVER_SEND_QUEUE": "100000",
            "CHATSERVER_WS_PER_ADDRESS": str(2 * n + 10),  # every client comes from 127.0.0.1
            "CHATSERVER_DATA_DIR": str(tmp / "rolling"),
        }
        for name in ("a", "b"):
            p = ServerProcess(env=env, log=tmp / f"rolling-{name}.log")
            procs.append(p)
            await asyncio.to_thread(p.start)
        t = time.monotonic()
        result = await rolling_restart(procs, s, n, rng=random.Random(11), limit_s=limit_s)
        out = result.summary()
        out["run_s"] = round(time.monotonic() - t, 1)
        out["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
        return out
    finally:
        for p in procs:
            p.kill()
        await asyncio.to_thread(pg, f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


__all__ = ["rolling"]
