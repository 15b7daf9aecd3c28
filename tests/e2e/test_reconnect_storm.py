"""A reconnect storm: 200 visitors drop at once and come back with the widget's backoff and jitter while
agents keep writing; every one resumes exactly (no gap, no duplicate). The 2,000-visitor version is in
bench/scale.py (``--storm``)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.e2e.harness import ORIGIN, Seed, Server, run_server, seed, settings_for, visitor_token

pytestmark = pytest.mark.slow

VISITORS = 200
WHILE_DOWN = 2
"""Agent replies per conversation committed while its visitor is away."""
DURING = 1
"""Agent replies per conversation committed while the visitors come back (racing their resume)."""


def backoff(attempt: int, rng: random.Random) -> float:
    """The widget's (widget/chat.js): exponential from 1 s, capped at 30 s, half of it jitter. Scaled down
    10x so the test does not wait for whole seconds."""
    base = min(30.0, 1.0 * 2**attempt) / 10
    return base / 2 + rng.random() * (base / 2)


@dataclass
class Visitor:
    token: str
    cid: str = ""
    seqs: list[int] = field(default_factory=list)
    ws: ClientConnection | None = None
    attempts: int = 0
    log: list[str] = field(default_factory=list)

    @property
    def cursor(self) -> int:
        return self.seqs[-1] if self.seqs else 0


async def frames_until(ws: ClientConnection, v: Visitor, done: str | None, want_seq: int = 0) -> None:
    """Read frames, keeping every message seq, until a frame of type ``done`` and seq ``want_seq`` seen."""
    got_done = done is None
    while not (got_done and v.cursor >= want_seq):
        f = orjson.loads(await ws.recv())
        v.log.append(f"{f.get('type')}:{f.get('seq', '')}:{f.get('cursors', '')}")
        if f.get("type") == "message":
            v.seqs.append(f["seq"])
        elif f.get("type") == done:
            got_done = True


LAST = 1 + WHILE_DOWN + DURING
"""Each conversation's last seq once the storm is over: the visitor's message and the agent's replies."""


async def reconnect(server: Server, v: Visitor, rng: random.Random) -> None:
    """Come back like the widget does: backoff with jitter until connected, then resume from the cursor."""
    while True:
        await asyncio.sleep(backoff(v.attempts, rng))
        v.attempts += 1
        try:
            ws = await connect(f"{server.ws}/ws/visitor?token={v.token}", origin=ORIGIN)  # type: ignore[arg-type]
        except OSError:
            continue
        v.ws = ws
        await ws.send(orjson.dumps({"type": "resume", "ref": "r", "cursors": {v.cid: v.cursor}}).decode())
        await frames_until(ws, v, "resumed")
        break
    # then live until the last reply written during the storm has arrived
    await frames_until(ws, v, None, LAST)


async def test_two_hundred_visitors_drop_at_once_and_resume_exactly(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"
    s: Seed = await seed(url)
    rng = random.Random(13)
    auth = {"Authorization": f"Bearer {s.admin_token}"}
    # one agent answers everyone at once: neither its frame rate nor its queue may stop it
    fast = {"rate_limit_per_s": 10_000.0, "rate_limit_burst": 10_000, "send_queue_size": 10_000}
    async with (
        run_server(settings_for(url, tmp_path, **fast)) as server,
        httpx.AsyncClient(timeout=30) as http,
    ):
        visitors = [
            Visitor((await visitor_token(http, server.url, s.inbox_key))["token"]) for _ in range(VISITORS)
        ]

        async def start(v: Visitor) -> None:
            # 200 handshakes at once on a loaded machine may time out: the widget retries, so does this setup
            for attempt in range(5):
                try:
                    v.ws = await connect(f"{server.ws}/ws/visitor?token={v.token}", origin=ORIGIN)  # type: ignore[arg-type]
                    break
                except OSError:  # TimeoutError included
                    await asyncio.sleep(backoff(attempt, rng))
            assert v.ws is not None, "could not connect in 5 attempts"
            await v.ws.send(orjson.dumps({"type": "resume", "cursors": {}}).decode())
            await v.ws.send(orjson.dumps({"type": "conversation.start", "ref": "s"}).decode())
            while not v.cid:
                f = orjson.loads(await v.ws.recv())
                if f.get("type") == "ack" and f.get("ref") == "s":
                    v.cid = f["conversation_id"]
            first = {
                "type": "message.send",
                "conversation_id": v.cid,
                "client_id": "hi",
                "text": "hi",
                "ref": "m",
            }
            await v.ws.send(orjson.dumps(first).decode())
            await frames_until(v.ws, v, None, 1)  # its own message comes back as a message frame

        await asyncio.gather(*(start(v) for v in visitors))
        assert all(v.seqs == [1] for v in visitors)

        last_seq: dict[str, int] = {v.cid: 1 for v in visitors}
        agent = await connect(f"{server.ws}/ws/agent", additional_headers=auth)
        await agent.send(orjson.dumps({"type": "resume", "cursors": {}}).decode())

        acks: dict[str, asyncio.Future[int]] = {}

        async def read_agent() -> None:
            """The agent reads everything it is sent (it follows every conversation it writes in)."""
            async for raw in agent:
                f = orjson.loads(raw)
                waiter = acks.pop(str(f.get("ref")), None)
                if waiter is not None:
                    assert f["type"] == "ack", f
                    waiter.set_result(f["seq"])

        reader = asyncio.create_task(read_agent())

        async def reply_all(n: int) -> None:
            """The agent answers every conversation once."""
            loop = asyncio.get_running_loop()
            waiting = {}
            for v in visitors:
                ref = f"{v.cid}:{n}"
                waiting[v.cid] = acks[ref] = loop.create_future()
                text = f"reply {n}"
                frame = {"type": "message.send", "conversation_id": v.cid, "client_id": f"a{n}", "text": text}
                await agent.send(orjson.dumps({**frame, "ref": ref}).decode())
            for cid, fut in waiting.items():
                last_seq[cid] = max(last_seq[cid], await asyncio.wait_for(fut, 60))

        # everyone drops at once (no close handshake: the network went away)
        for v in visitors:
            assert v.ws is not None
            v.ws.transport.abort()
        for v in visitors:
            with contextlib.suppress(Exception):
                await v.ws.wait_closed()  # type: ignore[union-attr]
        for n in range(WHILE_DOWN):
            await reply_all(n)
        # they come back while the agents keep writing
        storm = [asyncio.create_task(reconnect(server, v, rng)) for v in visitors]
        for n in range(DURING):
            await reply_all(WHILE_DOWN + n)
        async with asyncio.timeout(120):
            await asyncio.gather(*storm)
        for v in visitors:
            # no gap, no duplicate
            assert v.seqs == list(range(1, last_seq[v.cid] + 1)), (v.cid, v.seqs, v.log)
            assert last_seq[v.cid] == LAST
        for v in visitors:
            if v.ws is not None:
                await v.ws.close()
        await agent.close()
        with contextlib.suppress(Exception):
            await reader
