"""Many visitor connections reconnect and resume while an agent keeps writing: every connection receives
each of its conversation's messages exactly once, in strictly increasing seq, with no gap (guarantees 2
and 3). Several tabs share each conversation, so every commit races many resumes."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.harness import ORIGIN, Client, Seed, Server, visitor_token

CONVERSATIONS = 2
TABS = 25
"""Connections per conversation (one visitor's tabs): 50 in all."""
ROUNDS = 5


@pytest.fixture
def server_overrides() -> dict[str, Any]:
    # one visitor token holds many connections here on purpose: lift the per-token cap
    return {"rate_limit_per_s": 100_000.0, "rate_limit_burst": 100_000, "ws_per_token": 1_000}


class Visitor:
    def __init__(self, token: str, cid: str) -> None:
        self.token = token
        self.cid = cid
        self.last = 0
        """The highest seq this visitor has received (its resume cursor)."""
        self.problems: list[str] = []

    async def session(self, url: str, stop: asyncio.Event, *, until: int | None, rng: random.Random) -> None:
        """One connection: resume from ``last``, read until ``stop`` (or, with ``until``, until that seq
        arrived and the line is quiet), checking every message frame against the cursor."""
        got: list[int] = []
        async with connect(f"{url}/ws/visitor?token={self.token}", origin=ORIGIN, max_size=2**24) as ws:  # type: ignore[arg-type]
            hello = orjson.loads(await ws.recv())
            assert hello["type"] == "hello"
            if rng.random() < 0.8:  # some resume at once, most a moment later, while messages commit
                await asyncio.sleep(rng.random() * 0.1)
            await ws.send(
                orjson.dumps({"type": "resume", "ref": "r", "cursors": {self.cid: self.last}}).decode()
            )
            while True:
                if until is None and stop.is_set():
                    break
                if until is not None and self.last >= until:
                    with contextlib.suppress(TimeoutError):  # anything after the head is a duplicate
                        async with asyncio.timeout(0.3):
                            self._check(orjson.loads(await ws.recv()), got)
                    break
                try:
                    async with asyncio.timeout(0.05 if until is None else 20):
                        frame = orjson.loads(await ws.recv())
                except TimeoutError:
                    if until is not None:
                        self.problems.append(f"{self.cid}: stuck at {self.last} waiting for {until}")
                        break
                    continue
                except ConnectionClosed as exc:
                    self.problems.append(f"{self.cid}: closed {exc}")
                    return
                self._check(frame, got)
            await self._close(ws, got)

    async def _close(self, ws: ClientConnection, got: list[int]) -> None:
        """Close while reading what is still in flight, as a browser does. A client that stops reading
        with more than ``max_queue`` frames buffered has its socket paused by websockets, so it never
        reads the server's close frame and gives up after ``close_timeout`` (10 s); the agent writes on
        meanwhile and the final replay grows by thousands of messages (issue #13)."""
        closing = asyncio.create_task(ws.close())
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:  # ends once the server's close frame is read
                self._check(orjson.loads(raw), got)
        await closing
        if ws.close_code != 1000:  # 1006: the closing handshake did not complete
            self.problems.append(f"{self.cid}: closing handshake not completed ({ws.close_code})")

    def _check(self, frame: dict[str, Any], got: list[int]) -> None:
        if frame.get("type") != "message" or frame.get("conversation_id") != self.cid:
            return
        seq = frame["seq"]
        got.append(seq)
        if seq != self.last + 1:
            self.problems.append(f"{self.cid}: after {self.last} got {seq} (this connection: {got})")
        self.last = max(self.last, seq)


async def test_visitors_resuming_while_an_agent_writes_get_each_message_once_in_order(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    rng = random.Random(7)
    visitors: list[Visitor] = []
    for i in range(CONVERSATIONS):
        tok = (await visitor_token(http, server.url, seeded.inbox_key))["token"]
        async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
            cid = (await v.request({"type": "conversation.start", "fields": {"n": str(i)}}))[
                "conversation_id"
            ]
        visitors += [Visitor(tok, cid) for _ in range(TABS)]
    cids = list(dict.fromkeys(v.cid for v in visitors))

    async with Client.connect(f"{server.ws}/ws/agent", token=seeded.admin_token, origin=None) as agent:
        await agent.expect("hello")
        for cid in cids:
            assert (await agent.request({"type": "conversation.claim", "conversation_id": cid}))[
                "type"
            ] == "ack"
        head: dict[str, int] = {}
        writing = asyncio.Event()
        writing.set()

        async def write() -> None:
            n = 0
            while writing.is_set():
                refs = []
                for cid in cids * 8:
                    n += 1
                    refs.append(
                        await agent.send(
                            {
                                "type": "message.send",
                                "conversation_id": cid,
                                "client_id": f"w{n}",
                                "text": "hi",
                            }
                        )
                    )
                for ref in refs:
                    ack = await agent.next(lambda f, ref=ref: f.get("ref") == ref, timeout=20)
                    assert ack["type"] == "ack", ack
                    head[ack["conversation_id"]] = max(head.get(ack["conversation_id"], 0), ack["seq"])
                agent.pending.clear()  # the live messages of the conversations it follows

        writer = asyncio.create_task(write())
        try:
            for _ in range(ROUNDS):  # everyone reconnects at once, stays a random while, drops
                stops = [asyncio.Event() for _ in visitors]
                tasks = [
                    asyncio.create_task(v.session(server.ws, stop, until=None, rng=rng))
                    for v, stop in zip(visitors, stops, strict=True)
                ]
                await asyncio.sleep(0.3)
                for stop in sorted(stops, key=lambda _: rng.random()):
                    await asyncio.sleep(rng.random() * 0.004)
                    stop.set()
                await asyncio.gather(*tasks)
        finally:
            writing.clear()
            await writer
        assert sum(head.values()) > 50 * CONVERSATIONS, f"the agent hardly wrote ({head}): it raced nothing"

        # last round: the agent has stopped; each visitor resumes and must end exactly at the head
        stop = asyncio.Event()
        final = [v.session(server.ws, stop, until=head.get(v.cid, 1), rng=rng) for v in visitors]
        await asyncio.gather(*final)
    problems = [p for v in visitors for p in v.problems]
    assert not problems, f"{len(problems)} problems, e.g. {problems[:5]}"
    assert all(v.last == head.get(v.cid, 1) for v in visitors)


async def _claimed_chat(
    http: httpx.AsyncClient, server: Server, seeded: Seed, agent: Client
) -> tuple[str, str]:
    tok = (await visitor_token(http, server.url, seeded.inbox_key))["token"]
    async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
        cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
    await agent.request({"type": "conversation.claim", "conversation_id": cid})
    return tok, cid


async def _say(agent: Client, cid: str, n: int) -> int:
    seq = 0
    for _ in range(n):
        ack = await agent.request(
            {"type": "message.send", "conversation_id": cid, "client_id": uuid.uuid4().hex, "text": "x"}
        )
        seq = ack["seq"]
    return seq


def _seqs(client: Client, cid: str) -> list[int]:
    return [f["seq"] for f in client.frames if f.get("type") == "message" and f["conversation_id"] == cid]


async def test_a_message_committed_before_the_resume_is_read_comes_once_in_order(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    async with Client.connect(f"{server.ws}/ws/agent", token=seeded.admin_token, origin=None) as agent:
        await agent.expect("hello")
        tok, cid = await _claimed_chat(http, server, seeded, agent)
        head = await _say(agent, cid, 3)
        async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as tab:
            await tab.expect("snapshot")  # this connection follows the conversation from here on
            live = await _say(agent, cid, 1)  # committed and published before the tab's resume is read
            await tab.send({"type": "resume", "cursors": {cid: head - 2}})
            resumed = await tab.expect("resumed")
            await tab.drain(0.5)
            assert _seqs(tab, cid) == list(range(head - 1, live + 1))
            assert resumed["cursors"] == {cid: live}


async def test_a_resume_after_live_delivery_never_repeats_what_the_connection_sent(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    async with Client.connect(f"{server.ws}/ws/agent", token=seeded.admin_token, origin=None) as agent:
        await agent.expect("hello")
        tok, cid = await _claimed_chat(http, server, seeded, agent)
        async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as tab:
            await tab.send({"type": "ping"})  # a first frame that is not a resume: live from the snapshot
            await tab.expect("pong")
            head = await _say(agent, cid, 2)
            await tab.expect("message", seq=head)
            await tab.send({"type": "resume", "cursors": {cid: 0}})  # late, and behind what it was sent
            resumed = await tab.expect("resumed")
            live = await _say(agent, cid, 1)
            await tab.expect("message", seq=live)
            await tab.drain(0.3)
            assert _seqs(tab, cid) == list(range(head - 1, live + 1))
            assert resumed["cursors"] == {cid: head}


@pytest.mark.parametrize("value", [2**63, 2**63 + 1, 2**64 - 1, -1, 1.5, True])
async def test_an_out_of_range_cursor_is_invalid_and_the_connection_stays_open(
    http: httpx.AsyncClient, server: Server, seeded: Seed, value: Any
) -> None:
    tok = (await visitor_token(http, server.url, seeded.inbox_key))["token"]
    async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
        cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
        raw = '{"type":"resume","ref":"big","cursors":{"' + cid + '":' + orjson.dumps(value).decode() + "}}"
        await v.ws.send(raw)
        err = await v.expect("error", ref="big")
        assert err["code"] == "invalid" and err["data"] == {"field": "cursors", "conversation_id": cid}
        for n in (2**63, 2**64 - 1):  # read's seq too
            bad = await v.request({"type": "read", "conversation_id": cid, "seq": n})
            assert bad["code"] == "invalid" and bad["data"] == {"field": "seq"}
        # the connection is still fine
        ok = await v.request(
            {"type": "message.send", "conversation_id": cid, "client_id": "c1", "text": "hi"}
        )
        assert ok["type"] == "ack"
        await v.send({"type": "resume", "ref": "ok", "cursors": {cid: 0}})
        assert (await v.expect("resumed", ref="ok"))["cursors"] == {cid: ok["seq"]}


async def test_a_cursor_past_the_head_is_brought_back_to_it(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    async with Client.connect(f"{server.ws}/ws/agent", token=seeded.admin_token, origin=None) as agent:
        await agent.expect("hello")
        tok, cid = await _claimed_chat(http, server, seeded, agent)
        head = await _say(agent, cid, 2)
        async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as tab:
            await tab.send({"type": "resume", "cursors": {cid: 10_000}})
            assert (await tab.expect("resumed"))["cursors"] == {cid: head}
            live = await _say(agent, cid, 1)
            assert (await tab.expect("message", conversation_id=cid))["seq"] == live
