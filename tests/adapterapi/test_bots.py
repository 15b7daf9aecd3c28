"""Bots over /ws/adapter against a real server: a bot inbox's conversations start in ``bot``, the bot
answers with buttons, a click is the visitor's message, the handoff reaches an agent with its summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.adapterapi.helpers import admin, create_adapter, make_bot
from tests.e2e.harness import Client, Seed, Server, visitor_token


async def _visitor_chat(http: httpx.AsyncClient, server: Server, seeded: Seed) -> tuple[str, str]:
    tok = (await visitor_token(http, server.url, seeded.inbox_key))["token"]
    return tok, f"{server.ws}/ws/visitor?token={tok}"


async def test_bot_answers_with_buttons_then_hands_off_to_an_agent(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    bot = await make_bot(http, server, seeded)
    _, visitor_url = await _visitor_chat(http, server, seeded)
    async with (
        Client.connect(f"{server.ws}/ws/adapter?token={bot['token']}", origin=None) as b,
        Client.connect(visitor_url) as v,
        Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent,
    ):
        hello = await b.expect("hello")
        assert hello["you"] == {"kind": "bot", "id": bot["id"], "name": "Helper Bot"}
        await b.expect("snapshot")
        await v.expect("hello")
        await agent.expect("hello")

        cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
        conv = await b.expect("conversation", conversation__id=cid)
        assert conv["conversation"]["status"] == "bot"
        assert (await v.expect("conversation", conversation__id=cid))["conversation"]["status"] == "bot"

        await v.request({"type": "message.send", "conversation_id": cid, "client_id": "v1", "text": "Hi"})
        got = await b.expect("message", conversation_id=cid, message__author__kind="contact")
        assert got["message"]["text"] == "Hi"

        actions = [{"id": "hours", "label": "Opening hours"}, {"id": "human", "label": "Talk to a person"}]
        frame = {"type": "message.send", "conversation_id": cid, "client_id": "b1", "text": "How can I help?"}
        sent = await b.request({**frame, "actions": actions})
        assert sent["type"] == "ack" and sent["seq"] == 2
        again = await b.request({**frame, "actions": actions})  # the same client_id: the same message
        assert again["message_id"] == sent["message_id"]
        shown = await v.expect("message", conversation_id=cid, message__author__kind="bot")
        assert shown["message"]["author"]["name"] == "Helper Bot"
        assert shown["message"]["actions"] == actions

        click = await v.request(
            {"type": "action", "conversation_id": cid, "message_id": sent["message_id"], "action_id": "hours"}
        )
        assert click["type"] == "ack", click
        clicked = await b.expect("message", conversation_id=cid, seq=click["seq"])
        assert clicked["message"]["text"] == "Opening hours"
        assert clicked["message"]["actions"] == [
            {"id": "hours", "label": "Opening hours", "reply_to": sent["message_id"]}
        ]
        bad = await v.request(
            {"type": "action", "conversation_id": cid, "message_id": sent["message_id"], "action_id": "nope"}
        )
        assert bad["type"] == "error" and bad["code"] == "invalid"

        attrs = await b.request(
            {
                "type": "contact.update",
                "conversation_id": cid,
                "email": "v@x.test",
                "attributes": {"plan": "pro"},
            }
        )
        assert attrs["contact"]["attributes"] == {"plan": "pro"} and attrs["contact"]["email"] == "v@x.test"
        routed = await b.request({"type": "conversation.update", "conversation_id": cid, "priority": 5})
        assert routed["priority"] == 5

        handoff = await b.request(
            {
                "type": "conversation.handoff",
                "conversation_id": cid,
                "skills": {"billing": 2},
                "summary": "Wants to change the plan to yearly billing.",
            }
        )
        assert handoff == {**handoff, "type": "ack", "status": "queued"}
        waiting = await agent.expect("conversation", conversation__id=cid, conversation__status="queued")
        assert waiting["conversation"]["handoff"]["summary"] == "Wants to change the plan to yearly billing."
        assert waiting["conversation"]["skills"] == {"billing": 2}
        assert waiting["conversation"]["priority"] == 5

        again_handoff = await b.request(
            {"type": "conversation.handoff", "conversation_id": cid, "summary": "x"}
        )
        assert again_handoff["type"] == "error" and again_handoff["code"] == "conflict"
        late = await b.request(
            {"type": "message.send", "conversation_id": cid, "client_id": "b9", "text": "x"}
        )
        assert late["type"] == "error" and late["code"] == "conflict"

        claim = await agent.request({"type": "conversation.claim", "conversation_id": cid})
        assert claim["status"] == "assigned", claim
        r = await http.get(
            f"{server.url}/api/v1/conversations/{cid}/messages?after=0",
            headers={"Authorization": f"Bearer {seeded.agent_token}"},
        )
        items = r.json()["items"]
        note = next(m for m in items if m["kind"] == "note")
        assert "Wants to change the plan to yearly billing." in note["text"]
        assert [m["text"] for m in items if m["kind"] == "text"] == ["Hi", "How can I help?", "Opening hours"]


async def test_visitor_typing_agent_forces_a_handoff(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    bot = await make_bot(http, server, seeded)
    _, visitor_url = await _visitor_chat(http, server, seeded)
    async with (
        Client.connect(f"{server.ws}/ws/adapter", token=bot["token"], origin=None) as b,
        Client.connect(visitor_url) as v,
    ):
        await b.expect("snapshot")
        await v.expect("hello")
        cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
        await b.expect("conversation", conversation__id=cid, conversation__status="bot")
        await v.request(
            {"type": "message.send", "conversation_id": cid, "client_id": "v1", "text": "my agent id is 4"}
        )
        await v.request({"type": "message.send", "conversation_id": cid, "client_id": "v2", "text": "Agent!"})
        queued = await v.expect(
            "conversation", conversation__id=cid, conversation__status="queued", timeout=10
        )
        assert queued["conversation"]["status"] == "queued"
        seen = await b.expect("conversation", conversation__id=cid, conversation__status="queued")
        assert seen["conversation"]["handoff"]["reason"] == "visitor"


async def test_bad_tokens_and_other_inboxes_are_refused(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    bot = await make_bot(http, server, seeded)
    async with Client.connect(f"{server.ws}/ws/adapter?token=cst_wrong", origin=None) as c:
        assert await c.closed_with() == 4401
    r = await http.post(
        f"{server.url}/api/v1/adapter/messages", json={}, headers={"Authorization": "Bearer cst_x"}
    )
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = await http.get(
        f"{server.url}/api/v1/adapters", headers={"Authorization": f"Bearer {seeded.agent_token}"}
    )
    assert r.status_code == 403  # admins only

    # a bot of another inbox cannot touch this inbox's conversations
    other_inbox = (
        await http.post(
            f"{server.url}/api/v1/inboxes", json={"name": "Other", "channel": "widget"}, headers=admin(seeded)
        )
    ).json()
    other = await create_adapter(
        http, server, seeded, kind="bot", inboxes=[other_inbox["id"]], name="Other Bot"
    )
    _, visitor_url = await _visitor_chat(http, server, seeded)
    async with Client.connect(visitor_url) as v:
        await v.expect("hello")
        cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
    async with Client.connect(f"{server.ws}/ws/adapter?token={other['token']}", origin=None) as o:
        snap = await o.expect("snapshot")
        assert cid not in snap.get("conversation_ids", [])
        for frame in (
            {"type": "message.send", "conversation_id": cid, "client_id": "x", "text": "hi"},
            {"type": "conversation.handoff", "conversation_id": cid, "summary": "s"},
            {"type": "contact.update", "conversation_id": cid, "name": "Eve"},
        ):
            err = await o.request(frame)
            assert err["type"] == "error" and err["code"] == "forbidden", err
        bad = await o.request(
            {"type": "message.send", "conversation_id": cid, "client_id": "x", "text": "hi", "actions": "x"}
        )
        assert bad["code"] == "invalid"
        unknown = await o.request({"type": "offer.accept", "offer_id": "x"})
        assert unknown["code"] == "forbidden"

    # revoked: the open socket closes with 4401, new ones are refused
    async with Client.connect(f"{server.ws}/ws/adapter?token={bot['token']}", origin=None) as b:
        await b.expect("snapshot")
        r = await http.delete(f"{server.url}/api/v1/adapters/{bot['id']}", headers=admin(seeded))
        assert r.status_code == 200 and r.json()["revoked_at"] is not None
        assert await b.closed_with() == 4401
    async with Client.connect(f"{server.ws}/ws/adapter?token={bot['token']}", origin=None) as b:
        assert await b.closed_with() == 4401
    listed = (await http.get(f"{server.url}/api/v1/adapters", headers=admin(seeded))).json()["items"]
    assert all("token" not in a and "secret" not in a for a in listed)
    # a revoked bot no longer takes the inbox's new conversations: people do
    _, fresh_url = await _visitor_chat(http, server, seeded)
    async with Client.connect(fresh_url) as v:
        await v.expect("hello")
        fresh = (await v.request({"type": "conversation.start"}))["conversation_id"]
        conv = await v.expect("conversation", conversation__id=fresh)
        assert conv["conversation"]["status"] == "queued"


@pytest.fixture
def server_overrides() -> dict[str, Any]:
    return {"bot_grace_s": 0.5}


async def test_a_disconnected_bot_hands_off_after_the_grace_period(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    bot = await make_bot(http, server, seeded)
    _, visitor_url = await _visitor_chat(http, server, seeded)
    async with Client.connect(visitor_url) as v:
        await v.expect("hello")
        async with Client.connect(f"{server.ws}/ws/adapter?token={bot['token']}", origin=None) as b:
            await b.expect("snapshot")
            cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
            await b.expect("conversation", conversation__id=cid, conversation__status="bot")
            await b.request(
                {"type": "message.send", "conversation_id": cid, "client_id": "b1", "text": "Hello!"}
            )
        # the bot is gone: after the grace period a person gets the conversation
        queued = await v.expect(
            "conversation", conversation__id=cid, conversation__status="queued", timeout=15
        )
        assert queued["conversation"]["status"] == "queued"
    r = await http.get(
        f"{server.url}/api/v1/conversations/{cid}", headers={"Authorization": f"Bearer {seeded.agent_token}"}
    )
    assert r.json()["handoff"]["reason"] == "grace"
    assert r.json()["status"] == "queued"
    # while the bot stays away, new conversations go straight to people; once it is back, to the bot
    _, second_url = await _visitor_chat(http, server, seeded)
    async with Client.connect(second_url) as v2:
        await v2.expect("hello")
        second = (await v2.request({"type": "conversation.start"}))["conversation_id"]
        assert (await v2.expect("conversation", conversation__id=second))["conversation"][
            "status"
        ] == "queued"
    async with Client.connect(f"{server.ws}/ws/adapter?token={bot['token']}", origin=None) as b:
        await b.expect("snapshot")
        _, third_url = await _visitor_chat(http, server, seeded)
        async with Client.connect(third_url) as v3:
            await v3.expect("hello")
            third = (await v3.request({"type": "conversation.start"}))["conversation_id"]
            assert (await v3.expect("conversation", conversation__id=third))["conversation"][
                "status"
            ] == "bot"


async def test_inbox_bot_validation(
    http: httpx.AsyncClient, server: Server, seeded: Seed, tmp_path: Path
) -> None:
    channel = await create_adapter(http, server, seeded, kind="channel", inboxes=[], name="Bridge")
    url = f"{server.url}/api/v1/inboxes/{seeded.inbox_id}"
    for bad in (channel["id"], "ad_missing", 5):
        r = await http.patch(url, json={"bot": bad}, headers=admin(seeded))
        assert r.status_code in (404, 422), r.text
    r = await http.patch(url, json={"bot": None}, headers=admin(seeded))
    assert r.status_code == 200 and r.json()["bot"] is None
    r = await http.post(
        f"{server.url}/api/v1/adapters", json={"name": "x", "kind": "robot"}, headers=admin(seeded)
    )
    assert r.status_code == 422
    r = await http.post(
        f"{server.url}/api/v1/adapters",
        json={"name": "x", "kind": "bot", "inboxes": ["ib_nope"]},
        headers=admin(seeded),
    )
    assert r.status_code == 422
    assert (await http.get(f"{server.url}/api/v1/adapters", headers=admin(seeded))).json()["items"] == [
        {k: v for k, v in channel.items() if k not in ("token", "secret")}
    ]


async def test_handoff_to_a_team_by_name(http: httpx.AsyncClient, server: Server, seeded: Seed) -> None:
    team = (
        await http.post(f"{server.url}/api/v1/teams", json={"name": "Billing"}, headers=admin(seeded))
    ).json()
    bot = await make_bot(http, server, seeded)
    _, visitor_url = await _visitor_chat(http, server, seeded)
    async with (
        Client.connect(f"{server.ws}/ws/adapter?token={bot['token']}", origin=None) as b,
        Client.connect(visitor_url) as v,
    ):
        await b.expect("snapshot")
        await v.expect("hello")
        cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
        await b.expect("conversation", conversation__id=cid, conversation__status="bot")
        unknown = await b.request(
            {"type": "conversation.handoff", "conversation_id": cid, "summary": "", "team": "Nope"}
        )
        assert unknown["code"] == "not_found"
        done = await b.request(
            {"type": "conversation.handoff", "conversation_id": cid, "summary": "", "team": "Billing"}
        )
        assert done["status"] == "queued", done
        seen = await b.expect("conversation", conversation__id=cid, conversation__status="queued")
        assert seen["conversation"]["team"] == team["id"]


# within the grace period: this module's 0.5 s (for the hand-off test) is shorter than this test's steps
# on a loaded machine, and a bot away longer has its conversations handed to people, as it should
@pytest.mark.parametrize("server_overrides", [{"bot_grace_s": 30.0}])
async def test_a_bot_connecting_later_gets_the_chat_so_far_or_what_it_missed(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    bot = await make_bot(http, server, seeded)
    _, visitor_url = await _visitor_chat(http, server, seeded)
    async with Client.connect(visitor_url) as v:
        await v.expect("hello")
        cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
        for i in range(3):
            await v.request(
                {"type": "message.send", "conversation_id": cid, "client_id": f"m{i}", "text": f"m{i}"}
            )
    async with Client.connect(f"{server.ws}/ws/adapter?token={bot['token']}", origin=None) as b:
        snap = await b.expect("snapshot")
        assert cid in snap["conversation_ids"]
        got = [await b.expect("message", conversation_id=cid) for _ in range(3)]
        assert [f["message"]["text"] for f in got] == ["m0", "m1", "m2"]
    async with Client.connect(f"{server.ws}/ws/adapter?token={bot['token']}", origin=None) as b:
        await b.send({"type": "resume", "cursors": {cid: 2}})
        await b.expect("resumed")
        assert [f["seq"] for f in b.frames if f.get("type") == "message"] == [3]
