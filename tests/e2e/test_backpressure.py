"""A client that does not read is closed with 4008; it then resumes exactly (guarantee 6)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.harness import Client, Seed, Server, visitor_token


@pytest.fixture
def server_overrides() -> dict[str, Any]:
    return {"send_queue_size": 8, "rate_limit_per_s": 10_000.0, "rate_limit_burst": 10_000}


async def test_slow_consumer_is_closed_4008_others_unaffected_and_it_resumes(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    tok = (await visitor_token(http, server.url, seeded.inbox_key))["token"]
    async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
        cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
    big = "x" * 15_000
    async with (
        Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent,
        # max_queue=1 and a tiny read limit: the client stops reading, TCP fills, the server's queue fills
        Client.connect(f"{server.ws}/ws/visitor?token={tok}", max_queue=1) as slow,
        Client.connect(f"{server.ws}/ws/visitor?token={tok}") as fast,
    ):
        await agent.request({"type": "conversation.claim", "conversation_id": cid})
        last = 0
        closed_code = None
        for i in range(600):
            ack = await agent.request(
                {"type": "message.send", "conversation_id": cid, "client_id": f"b{i}", "text": big}
            )
            last = ack["seq"]
            # the fast client keeps up with every message
            await fast.expect("message", seq=last)
            if i % 20 == 19 and slow.ws.close_code is not None:
                closed_code = slow.ws.close_code
                break
        if closed_code is None:
            closed_code = await slow.closed_with(timeout=10)
        assert closed_code == 4008
        assert last > 8
        fast_seqs = [f["seq"] for f in fast.frames if f.get("type") == "message"]
        assert fast_seqs == sorted(set(fast_seqs)) and fast_seqs[-1] == last

    # the slow client reconnects and resumes: it gets exactly everything, in order
    async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as again:
        await again.send({"type": "resume", "cursors": {cid: 0}})
        resumed = await again.expect("resumed", timeout=20)
        seqs = [f["seq"] for f in again.frames if f.get("type") == "message"]
        assert seqs == list(range(1, last + 1))
        assert resumed["cursors"] == {cid: last}
