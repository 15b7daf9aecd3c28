"""No conversation is a dead end: a visitor who finds nobody is told so and leaves a message; when the
visitor is gone it becomes a ticket; a routing rule's wait limit makes one at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import Client, Seed, Server, run_server, seed, settings_for, visitor_token

FAST: dict[str, Any] = {
    "routing": "offers",
    "offer_timeout_s": 1.0,
    "agent_grace_s": 0.6,
    "rona_threshold": 5,
    "visitor_gone_s": 0.5,
}


@pytest.fixture
async def routed(tmp_path: Path) -> AsyncIterator[tuple[Server, Seed]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'q.db'}"
    s = await seed(url)
    async with run_server(settings_for(url, tmp_path, **FAST)) as server:
        yield server, s


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_nobody_there_the_visitor_leaves_a_message_then_leaves_and_it_becomes_a_ticket(
    routed: tuple[Server, Seed], http: httpx.AsyncClient
) -> None:
    server, s = routed
    async with Client.connect(f"{server.ws}/ws/agent", token=s.admin_token, origin=None) as sup:
        await sup.expect("hello")
        assert (await sup.request({"type": "status.set", "status": "away"}))["type"] == "ack"
        tok = (await visitor_token(http, server.url, s.inbox_key))["token"]
        async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
            await v.expect("hello")
            cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
            await v.expect("conversation", conversation__status="pending", timeout=10)
            told = await v.expect("message", message__kind="event", timeout=10)
            assert "Leave your message" in told["message"]["text"]
            sent = await v.request(
                {
                    "type": "message.send",
                    "conversation_id": cid,
                    "client_id": "m1",
                    "text": "Please call me back",
                }
            )
            assert sent["type"] == "ack"
        # the visitor left: after the grace, the conversation is a ticket in the queue of tickets
        frame = await sup.expect("ticket", ticket__conversation_id=cid, timeout=10)
        ticket = frame["ticket"]
        assert ticket["status"] == "new" and ticket["subject"] == "Please call me back"
        async with asyncio.timeout(5):
            while True:  # the escalation note is written right after the ticket
                got = (
                    await http.get(
                        f"{server.url}/api/v1/tickets/{ticket['number']}", headers=auth(s.admin_token)
                    )
                ).json()
                notes = [m["text"] for m in got["thread"] if m["kind"] == "event"]
                if any("the visitor left" in n for n in notes):
                    break
                await asyncio.sleep(0.05)
        assert "Please call me back" in [m["text"] for m in got["thread"]]
        conv = (
            await http.get(f"{server.url}/api/v1/conversations/{cid}", headers=auth(s.admin_token))
        ).json()
        assert conv["status"] == "resolved"  # out of the live queue


async def test_a_visitor_who_comes_back_in_time_keeps_the_chat(
    routed: tuple[Server, Seed], http: httpx.AsyncClient
) -> None:
    server, s = routed
    ctx = server.app.state.ctx
    async with Client.connect(f"{server.ws}/ws/agent", token=s.admin_token, origin=None) as sup:
        await sup.expect("hello")
        await sup.request({"type": "status.set", "status": "away"})
        session = await visitor_token(http, server.url, s.inbox_key)
        url = f"{server.ws}/ws/visitor?token={session['token']}"
        async with Client.connect(url) as v:
            await v.expect("hello")
            cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
            await v.expect("conversation", conversation__status="pending", timeout=10)
            await v.request(
                {"type": "message.send", "conversation_id": cid, "client_id": "m1", "text": "hello?"}
            )
            async with Client.connect(url) as again:  # a second tab stays while the first closes
                await again.expect("hello")
                await v.ws.close()
                assert await ctx.service.tickets.ticket_if_gone(session["contact_id"]) == []
            assert await ctx.service.tickets.q.for_conversation(cid) is None
        # nothing was written: an empty chat whose visitor left is not a ticket
        empty = await visitor_token(http, server.url, s.inbox_key)
        async with Client.connect(f"{server.ws}/ws/visitor?token={empty['token']}") as v2:
            await v2.expect("hello")
            await v2.request({"type": "conversation.start"})
        assert await ctx.service.tickets.ticket_if_gone(empty["contact_id"]) == []


async def test_a_rules_wait_limit_escalates_to_a_ticket(
    routed: tuple[Server, Seed], http: httpx.AsyncClient
) -> None:
    server, s = routed
    r = await http.post(
        f"{server.url}/api/v1/routing/rules",
        json={"name": "vip", "priority": 3, "max_wait_s": 1, "offer_timeout_s": 1},
        headers=auth(s.admin_token),
    )
    assert r.status_code == 201, r.text
    async with (
        Client.connect(f"{server.ws}/ws/agent", token=s.admin_token, origin=None) as sup,
        Client.connect(f"{server.ws}/ws/agent", token=s.agent_token, origin=None) as bob,
    ):
        await sup.expect("hello")
        await sup.request({"type": "status.set", "status": "away"})
        await bob.expect("hello")
        tok = (await visitor_token(http, server.url, s.inbox_key))["token"]
        async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
            await v.expect("hello")
            cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
            await v.request(
                {"type": "message.send", "conversation_id": cid, "client_id": "m1", "text": "Order 42?"}
            )
            await bob.expect("offer", conversation__id=cid, timeout=10)  # Bob lets it expire
            frame = await sup.expect("ticket", ticket__conversation_id=cid, timeout=15)
            assert frame["ticket"]["priority"] == "urgent"
            assert frame["ticket"]["subject"] == "Order 42?"


async def test_a_rule_can_make_nobody_available_a_ticket_at_once(
    routed: tuple[Server, Seed], http: httpx.AsyncClient
) -> None:
    server, s = routed
    for bad in (["bogus"], "no_agent_eligible", [1]):
        r = await http.post(
            f"{server.url}/api/v1/routing/rules",
            json={"name": "x", "ticket_on": bad},
            headers=auth(s.admin_token),
        )
        assert r.status_code == 422 and r.json()["error"]["data"]["field"] == "ticket_on", r.text
    r = await http.post(
        f"{server.url}/api/v1/routing/rules",
        json={
            "name": "async",
            "priority": 1,
            "match": {"channel": "widget"},
            "ticket_on": ["no_agent_eligible"],
        },
        headers=auth(s.admin_token),
    )
    assert r.status_code == 201, r.text
    assert r.json()["ticket_on"] == ["no_agent_eligible"]
    listed = await http.get(f"{server.url}/api/v1/routing/rules", headers=auth(s.admin_token))
    assert [x["ticket_on"] for x in listed.json()["items"]] == [["no_agent_eligible"]]
    async with Client.connect(f"{server.ws}/ws/agent", token=s.admin_token, origin=None) as sup:
        await sup.expect("hello")
        await sup.request({"type": "status.set", "status": "away"})
        tok = (await visitor_token(http, server.url, s.inbox_key))["token"]
        async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
            await v.expect("hello")
            cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
            await v.request(
                {"type": "message.send", "conversation_id": cid, "client_id": "m1", "text": "Refund please"}
            )
            # the visitor is still there, but the rule says: nobody available -> a ticket now
            frame = await sup.expect("ticket", ticket__conversation_id=cid, timeout=15)
            assert frame["ticket"]["subject"] == "Refund please"
            assert frame["ticket"]["priority"] == "high"
            told = await v.next(
                lambda f: f.get("type") == "message" and "Escalated to ticket" in f["message"]["text"],
                timeout=10,
            )
            assert "nobody was available" in told["message"]["text"]
        conv = (
            await http.get(f"{server.url}/api/v1/conversations/{cid}", headers=auth(s.admin_token))
        ).json()
        assert conv["status"] == "resolved" and conv["ticket"]["number"] == frame["ticket"]["number"]
