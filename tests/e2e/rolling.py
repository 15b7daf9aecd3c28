"""A rolling restart under load, shared by the test (tests/e2e/test_rolling_restart.py, 50 visitors) and
the benchmark (``bench/scale.py --rolling N``).

Two web processes on PostgreSQL + Redis carry N visitors (half on each) while an agent on the second one
keeps answering every conversation. The first process is stopped gracefully (SIGTERM: it closes its
sockets with 1012 "service restart") and started again while the agent writes on. Its visitors reconnect
as the widget does (at once with up to 1 s of jitter after 1001/1012, else the widget's backoff),
through a "load balancer" that picks either process at random and tries the other one when the first
refuses the connection, and resume from their cursor. Every
visitor must end with each seq of its conversation exactly once, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import psutil
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tests.e2e.harness import ORIGIN, Seed, ServerProcess, visitor_token

RESTART_CODES = (1001, 1012)
"""Going away / service restart: the widget reconnects at once, with jitter (widget/chat.js)."""
SLOW_CODES = (4008, 4408)


def widget_delay(code: int | None, attempt: int, rng: random.Random, scale: float) -> float:
    """How long the widget waits before reconnecting after a close with ``code`` (None: the connection
    attempt itself failed), ``scale`` times (tests run it 10x faster)."""
    if attempt == 0 and code in RESTART_CODES + SLOW_CODES:
        return rng.random() * 1.0 * scale
    base = min(30.0, 1.0 * 2**attempt)
    return (base / 2 + rng.random() * (base / 2)) * scale


@dataclass
class Visitor:
    token: str
    home: int
    cid: str = ""
    seqs: list[int] = field(default_factory=list)
    closes: list[int] = field(default_factory=list)
    connects: int = 0
    attempts: list[tuple[int, str, float]] = field(default_factory=list)
    """(process, outcome, seconds) of each connection attempt after the first."""
    closed_at: float | None = None
    """When the restart closed its connection."""
    back_at: float | None = None
    """When its resume after the restart was answered (None: it was not disconnected)."""

    @property
    def cursor(self) -> int:
        return self.seqs[-1] if self.seqs else 0


@dataclass
class Result:
    visitors: list[Visitor]
    heads: dict[str, int]
    restart_s: float
    """SIGTERM until the restarted process was ready again."""
    all_back_s: float
    """SIGTERM until the last disconnected visitor's resume was answered."""
    peak_rss_mib: dict[str, float]
    agent_messages: int
    t0: float
    """When the SIGTERM was sent (monotonic)."""
    gave_up: bool = False
    """Not every visitor was back (or had the last message) within the limit."""

    @property
    def moved(self) -> int:
        return sum(1 for v in self.visitors if v.back_at is not None)

    def lost(self) -> int:
        return sum(len(set(range(1, self.heads[v.cid] + 1)) - set(v.seqs)) for v in self.visitors)

    def duplicates(self) -> int:
        return sum(len(v.seqs) - len(set(v.seqs)) for v in self.visitors)

    def out_of_order(self) -> int:
        return sum(1 for v in self.visitors if v.seqs != sorted(v.seqs))

    def summary(self) -> dict[str, Any]:
        codes: dict[str, int] = {}
        for v in self.visitors:
            for c in v.closes:
                codes[str(c)] = codes.get(str(c), 0) + 1
        back = [v.back_at - self.t0 for v in self.visitors if v.back_at is not None]
        closed = [v.closed_at - self.t0 for v in self.visitors if v.closed_at is not None]
        away = [v.back_at - v.closed_at for v in self.visitors if v.back_at and v.closed_at]
        return {
            "completed": not self.gave_up,
            "not_back": sum(1 for v in self.visitors if v.closes and v.back_at is None),
            "visitors": len(self.visitors),
            "disconnected_by_the_restart": self.moved,
            "close_codes": codes,
            "agent_messages": self.agent_messages,
            "restart_s": round(self.restart_s, 2),
            "all_back_s": round(self.all_back_s, 2),
            "back_p50_s": round(statistics.median(back), 2) if back else None,
            "closed_p50_s": round(statistics.median(closed), 2) if closed else None,
            "away_p50_max_s": [round(statistics.median(away), 2), round(max(away), 2)] if away else None,
            "messages_lost": self.lost(),
            "duplicates": self.duplicates(),
            "out_of_order": self.out_of_order(),
            "exact": sum(1 for v in self.visitors if v.seqs == list(range(1, self.heads[v.cid] + 1))),
            "peak_rss_mib": self.peak_rss_mib,
        }


class Load:
    def __init__(self, procs: list[ServerProcess], seed: Seed, *, scale: float, rng: random.Random) -> None:
        self.procs = procs
        self.seed = seed
        self.scale = scale
        self.rng = rng
        self.heads: dict[str, int] = {}
        self.final: dict[str, int] | None = None
        self.restarting_since: float | None = None
        self.peak: dict[str, float] = {}
        self._ws: dict[str, ClientConnection] = {}

    async def open(self, v: Visitor) -> ClientConnection:
        """Connect like the widget through a load balancer (either process), retrying with backoff."""
        attempt = 0
        code = v.closes[-1] if v.closes else None
        while True:
            if v.connects:
                await asyncio.sleep(widget_delay(code, attempt, self.rng, self.scale))
            v.connects += 1
            ws = None
            # the balancer picks a process at random and, when it refuses the connection (stopped), tries
            # the next one, as proxies retry the next upstream
            for proc in self.rng.sample(self.procs, len(self.procs)):
                began, where = time.monotonic(), self.procs.index(proc)
                url = f"{proc.ws}/ws/visitor?token={v.token}"
                try:
                    ws = await connect(url, origin=ORIGIN, open_timeout=30)  # type: ignore[arg-type]
                    v.attempts.append((where, "open", time.monotonic() - began))
                    break
                except OSError as exc:  # refused: the balancer tries the next process
                    v.attempts.append((where, type(exc).__name__, time.monotonic() - began))
                    continue
                except (InvalidHandshake, TimeoutError) as exc:
                    v.attempts.append((where, type(exc).__name__, time.monotonic() - began))
                    break
            if ws is None:
                attempt, code = attempt + 1, None
                continue
            try:
                await ws.send(
                    orjson.dumps({"type": "resume", "ref": "r", "cursors": {v.cid: v.cursor}}).decode()
                )
                while True:
                    f = orjson.loads(await ws.recv())
                    self.take(v, f)
                    if f.get("type") == "resumed":
                        if self.restarting_since is not None and v.closes:
                            v.back_at = time.monotonic()
                        return ws
            except ConnectionClosed as exc:  # e.g. 1013 while the database is busy, or the other restart
                v.closes.append(exc.rcvd.code if exc.rcvd else 1006)
                attempt, code = attempt + 1, v.closes[-1]

    def take(self, v: Visitor, f: dict[str, Any]) -> None:
        if f.get("type") == "message" and f.get("conversation_id") == v.cid:
            v.seqs.append(f["seq"])

    async def start(self, v: Visitor) -> None:
        ws = await connect(f"{self.procs[v.home].ws}/ws/visitor?token={v.token}", origin=ORIGIN)  # type: ignore[arg-type]
        v.connects = 1
        await ws.send(orjson.dumps({"type": "resume", "cursors": {}}).decode())
        await ws.send(orjson.dumps({"type": "conversation.start", "ref": "s"}).decode())
        hi = {"type": "message.send", "client_id": "hi", "text": "hi", "ref": "m"}
        while v.cursor < 1:
            f = orjson.loads(await ws.recv())
            if f.get("type") == "ack" and f.get("ref") == "s":
                v.cid = f["conversation_id"]
                await ws.send(orjson.dumps({**hi, "conversation_id": v.cid}).decode())
            self.take(v, f)
        self.heads[v.cid] = 1
        self._ws[v.token] = ws

    async def live(self, v: Visitor) -> None:
        """Read until the final head of its conversation arrived (reconnecting whenever closed), then
        a moment more: anything after the head would be a duplicate."""
        ws = self._ws.pop(v.token)
        while True:
            try:
                async with asyncio.timeout(0.5):
                    self.take(v, orjson.loads(await ws.recv()))
            except TimeoutError:
                pass
            except ConnectionClosed as exc:
                v.closes.append(exc.rcvd.code if exc.rcvd else 1006)
                if v.closed_at is None and self.restarting_since is not None:
                    v.closed_at = time.monotonic()
                ws = await self.open(v)
                continue
            if self.final is not None and v.cursor >= self.final[v.cid]:
                with contextlib.suppress(TimeoutError, ConnectionClosed):
                    while True:
                        async with asyncio.timeout(0.3):
                            self.take(v, orjson.loads(await ws.recv()))
                await ws.close()
                return

    async def sample_rss(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for i, p in enumerate(self.procs):
                with contextlib.suppress(Exception):
                    assert p.proc is not None
                    mib = psutil.Process(p.proc.pid).memory_info().rss / 2**20
                    key = "ab"[i]
                    self.peak[key] = round(max(self.peak.get(key, 0.0), mib), 1)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.2):
                    await stop.wait()


async def rolling_restart(
    procs: list[ServerProcess],
    seed: Seed,
    n: int,
    *,
    rng: random.Random,
    scale: float = 1.0,
    rounds_after: int = 3,
    limit_s: float = 300.0,
) -> Result:
    """Run the scenario on two started processes; ``procs[0]`` is restarted. Gives up (``gave_up``) when
    the visitors are not all back, or the last messages not all delivered, within ``limit_s`` each."""
    load = Load(procs, seed, scale=scale, rng=rng)
    async with httpx.AsyncClient(timeout=30) as http:
        visitors = [
            Visitor((await visitor_token(http, procs[i % 2].url, seed.inbox_key))["token"], i % 2)
            for i in range(n)
        ]
    gate = asyncio.Semaphore(50)

    async def start(v: Visitor) -> None:
        async with gate:
            await load.start(v)

    await asyncio.gather(*(start(v) for v in visitors))
    stop_sampling = asyncio.Event()
    sampler = asyncio.create_task(load.sample_rss(stop_sampling))
    readers = [asyncio.create_task(load.live(v)) for v in visitors]

    auth = {"Authorization": f"Bearer {seed.admin_token}"}
    agent = await connect(f"{procs[1].ws}/ws/agent", additional_headers=auth, max_size=2**24)
    await agent.send(orjson.dumps({"type": "resume", "cursors": {}}).decode())
    acks: dict[str, asyncio.Future[int]] = {}

    async def read_agent() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in agent:
                f = orjson.loads(raw)
                waiter = acks.pop(str(f.get("ref")), None)
                if waiter is not None:
                    if f["type"] == "ack":
                        waiter.set_result(f["seq"])
                    else:
                        waiter.set_exception(AssertionError(f"the agent's message failed: {f}"))

    agent_reader = asyncio.create_task(read_agent())
    written = 0

    async def round_(k: int) -> None:
        nonlocal written
        loop = asyncio.get_running_loop()
        waiting = []
        for v in visitors:
            ref = f"{v.cid}:{k}"
            acks[ref] = fut = loop.create_future()
            waiting.append((v.cid, fut))
            frame = {"type": "message.send", "conversation_id": v.cid, "client_id": f"a{k}", "text": f"r{k}"}
            await agent.send(orjson.dumps({**frame, "ref": ref}).decode())
        for cid, fut in waiting:
            load.heads[cid] = max(load.heads[cid], await asyncio.wait_for(fut, 120))
            written += 1

    writing = asyncio.Event()
    writing.set()

    async def writer() -> None:
        k = 0
        while writing.is_set():
            await round_(k)
            k += 1

    await round_(-1)  # everyone is live before the restart
    writes = asyncio.create_task(writer())
    t0 = time.monotonic()
    load.restarting_since = t0
    await asyncio.to_thread(procs[0].stop)
    await asyncio.to_thread(procs[0].start)
    restart_s = time.monotonic() - t0
    gave_up = False
    try:
        async with asyncio.timeout(limit_s):  # the ones it closed come back (on either process)
            while any(v.closes and v.back_at is None for v in visitors):  # noqa: ASYNC110 (over all of them)
                await asyncio.sleep(0.05)
        writing.clear()
        await writes
        for k in range(rounds_after):
            await round_(10_000 + k)
        load.final = dict(load.heads)
        async with asyncio.timeout(limit_s):
            await asyncio.gather(*readers)
    except TimeoutError:  # over capacity: report how far it got, not a traceback
        gave_up = True
        for task in (writes, *readers):
            task.cancel()
        await asyncio.gather(writes, *readers, return_exceptions=True)
    all_back = max((v.back_at for v in visitors if v.back_at is not None), default=t0) - t0
    stop_sampling.set()
    await sampler
    await agent.close()
    agent_reader.cancel()
    await asyncio.gather(agent_reader, return_exceptions=True)
    return Result(visitors, dict(load.heads), restart_s, all_back, load.peak, written, t0, gave_up)


__all__ = ["Result", "Visitor", "rolling_restart", "widget_delay"]
