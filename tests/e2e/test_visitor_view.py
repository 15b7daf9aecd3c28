"""Visitors see their conversation through the visitor projection only: no contact attributes set by
agents, no priority, skills, team or routing, no agent ids in read receipts."""

from __future__ import annotations

import httpx

from chatserver.model.visitor import VISITOR_FIELDS
from tests.e2e.harness import Client, Seed, Server, visitor_token

NOTE = "CRM: disputed invoice, be firm"


async def test_visitor_frames_carry_only_the_visitor_view(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    admin = {"Authorization": f"Bearer {seeded.admin_token}"}
    tok = (await visitor_token(http, server.url, seeded.inbox_key))["token"]
    async with (
        Client.connect(f"{server.ws}/ws/agent", token=seeded.admin_token, origin=None) as agent,
        Client.connect(f"{server.ws}/ws/visitor?token={tok}") as visitor,
    ):
        await agent.expect("hello")
        ack = await visitor.request(
            {"type": "conversation.start", "skills": {"billing": 3}, "fields": {"topic": "refund"}}
        )
        cid = ack["conversation_id"]
        waiting = await agent.expect("conversation", conversation__id=cid)
        contact_id = waiting["conversation"]["contact"]["id"]
        r = await http.patch(
            f"{server.url}/api/v1/contacts/{contact_id}",
            json={"attributes": {"crm_note": NOTE, "tier": "gold"}},
            headers={**admin, "Origin": server.url},
        )
        assert r.status_code == 200, r.text
        claim = await agent.request({"type": "conversation.claim", "conversation_id": cid})
        assert claim["type"] == "ack"
        full = await agent.expect("conversation", conversation__status="assigned")
        assert full["conversation"]["contact"]["attributes"]["crm_note"] == NOTE  # agents see it all
        assert full["conversation"]["skills"] == {"billing": 3}
        await visitor.expect("conversation", conversation__status="assigned")
        sent = await visitor.request(
            {"type": "message.send", "conversation_id": cid, "client_id": "v1", "text": "hi"}
        )
        assert (await agent.request({"type": "read", "conversation_id": cid, "seq": sent["seq"]}))[
            "type"
        ] == "ack"
        read = await visitor.expect("read", conversation_id=cid)
        assert read["reader"] == {"kind": "agent", "name": "Ada"}
        answer = await agent.request(
            {"type": "message.send", "conversation_id": cid, "client_id": "a1", "text": "hello from Ada"}
        )
        assert answer["type"] == "ack"
        got = await visitor.expect("message", message__text="hello from Ada")
        assert got["message"]["author"] == {"kind": "agent", "name": "Ada"}  # never the agent's id
        mine = await visitor.expect("message", message__text="hi")
        assert mine["message"]["author"]["kind"] == "contact"
        await agent.request({"type": "conversation.close", "conversation_id": cid})
        await visitor.expect("conversation", conversation__status="resolved")
        first_frames = list(visitor.frames)

    # a reconnect: the snapshot is the visitor view too
    async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as again:
        await again.send({"type": "resume", "cursors": {cid: 0}})
        await again.expect("resumed")
        frames = first_frames + again.frames

    convs = [f["conversation"] for f in frames if f.get("type") == "conversation"]
    assert len(convs) >= 3
    for conv in convs:
        assert set(conv) <= {*VISITOR_FIELDS, "queue"}, set(conv) - {*VISITOR_FIELDS}
        assert set(VISITOR_FIELDS) <= set(conv)
        assert conv["assignee"] in (None, {"kind": "agent", "name": "Ada"})
        assert all(set(r["reader"]) == {"kind"} for r in conv["reads"])
    everything = str(frames)
    for secret in (NOTE, "gold", "billing", seeded.admin_id, "refund"):
        assert secret not in everything
