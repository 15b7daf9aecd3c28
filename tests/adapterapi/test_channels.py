"""A custom channel through the adapter API against a real server: it injects a platform's messages (REST
and /ws/adapter, deduped on the platform id), gets agents' replies as ``delivery`` frames while connected
and as signed POSTs to its URL through the outbox while not, and reports delivery states to the agent."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.adapterapi.helpers import admin, create_adapter
from tests.adapterapi.receiver import running_receiver
from tests.e2e.harness import Client, Seed, Server


@pytest.fixture
def server_overrides() -> dict[str, Any]:
    return {"webhook_allow_private": True, "workers_in_serve": True, "outbox_retry_s": 0.2}


async def test_custom_channel_round_trip(http: httpx.AsyncClient, server: Server, seeded: Seed) -> None:
    inbox = (
        await http.post(
            f"{server.url}/api/v1/inboxes",
            json={"name": "Chatterbox", "channel": "api"},
            headers=admin(seeded),
        )
    ).json()
    async with running_receiver() as rx:
        bridge = await create_adapter(
            http, server, seeded, kind="channel", inboxes=[inbox["id"]], name="Bridge", url=rx.url + "/ok"
        )
        auth = {"Authorization": f"Bearer {bridge['token']}"}
        body = {
            "inbox_id": inbox["id"],
            "contact": {"external_id": "u-42", "name": "Pat", "email": "pat@x.test", "language": "en"},
            "external_id": "pm-1",
            "text": "Hello from the platform",
        }
        r = await http.post(f"{server.url}/api/v1/adapter/messages", json=body, headers=auth)
        assert r.status_code == 201, r.text
        cid, first = r.json()["conversation_id"], r.json()["message"]["id"]
        r = await http.post(f"{server.url}/api/v1/adapter/messages", json=body, headers=auth)
        assert r.status_code == 200 and r.json()["duplicate"] and r.json()["message"]["id"] == first

        # bad input changes nothing
        r = await http.post(
            f"{server.url}/api/v1/adapter/messages",
            json={**body, "inbox_id": seeded.inbox_id, "external_id": "pm-x"},
            headers=auth,
        )
        assert r.status_code == 403
        r = await http.post(
            f"{server.url}/api/v1/adapter/messages", json={**body, "contact": {}}, headers=auth
        )
        assert r.status_code == 422
        bot = await create_adapter(
            http, server, seeded, kind="bot", inboxes=[inbox["id"]], name="Not a channel"
        )
        r = await http.post(
            f"{server.url}/api/v1/adapter/messages",
            json={**body, "external_id": "pm-y"},
            headers={"Authorization": f"Bearer {bot['token']}"},
        )
        assert r.status_code == 403

        async with (
            Client.connect(f"{server.ws}/ws/adapter", token=bridge["token"], origin=None) as ch,
            Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent,
        ):
            snap = await ch.expect("snapshot")
            assert cid in snap["conversation_ids"]
            await agent.expect("hello")
            claim = await agent.request({"type": "conversation.claim", "conversation_id": cid})
            assert claim["status"] == "assigned", claim
            reply = await agent.request(
                {
                    "type": "message.send",
                    "conversation_id": cid,
                    "client_id": "a1",
                    "text": "Hi Pat, how can I help?",
                }
            )
            delivery = await ch.expect("delivery", conversation_id=cid)
            assert delivery["message"]["id"] == reply["message_id"]
            assert delivery["contact"] == {"external_id": "u-42"} and delivery["inbox_id"] == inbox["id"]
            assert delivery["message"]["text"] == "Hi Pat, how can I help?"

            status = await ch.request(
                {"type": "message.status", "message_id": reply["message_id"], "state": "delivered"}
            )
            assert status["type"] == "ack"
            seen = await agent.expect("message.status", message_id=reply["message_id"])
            assert seen["state"] == "delivered"

            injected = await ch.request(
                {
                    "type": "message.inject",
                    "inbox_id": inbox["id"],
                    "contact": {"external_id": "u-42"},
                    "external_id": "pm-2",
                    "text": "Thanks!",
                }
            )
            assert (
                injected["type"] == "ack"
                and injected["conversation_id"] == cid
                and injected["seq"] > reply["seq"]
            )
            got = await agent.expect("message", conversation_id=cid, seq=injected["seq"])
            assert got["message"]["text"] == "Thanks!"
            bad = await ch.request({"type": "message.status", "message_id": "msg_missing", "state": "read"})
            assert bad["type"] == "error" and bad["code"] == "not_found"

        assert rx.requests == []  # it was connected: nothing went to its URL
        async with Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent:
            await agent.expect("hello")
            reply = await agent.request(
                {"type": "message.send", "conversation_id": cid, "client_id": "a2", "text": "Anything else?"}
            )
            assert reply["type"] == "ack", reply
        posted = (await rx.wait_for(lambda reqs: len(reqs) >= 1))[0]
        fields = dict(p.split("=", 1) for p in posted.headers["x-chatserver-signature"].split(","))
        mac = hmac.new(bridge["secret"].encode(), fields["t"].encode() + b"." + posted.body, hashlib.sha256)
        assert hmac.compare_digest(mac.hexdigest(), fields["v1"])
        event: Any = posted.event
        assert event["type"] == "delivery" and event["data"]["message"]["id"] == reply["message_id"]
        assert event["data"]["contact"] == {"external_id": "u-42"}


async def test_the_example_echo_channel_bridges_both_ways(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    from chatserver.client import AdapterClient
    from tests.adapterapi.test_example_bot import load_example

    echo = load_example("echo_channel")
    inbox = (
        await http.post(
            f"{server.url}/api/v1/inboxes", json={"name": "Echo", "channel": "api"}, headers=admin(seeded)
        )
    ).json()
    bridge = await create_adapter(http, server, seeded, kind="channel", inboxes=[inbox["id"]], name="Echo")
    platform: list[tuple[str | None, str]] = []

    async def lines() -> AsyncIterator[str]:
        yield "Is anyone there?"

    async with (
        AdapterClient(server.url, bridge["token"]) as client,
        Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent,
    ):
        await agent.expect("hello")
        replies = asyncio.create_task(
            echo.bridge_replies(client, lambda user, text: platform.append((user, text)))
        )
        await echo.bridge_inbound(client, inbox["id"], lines())
        waiting = await agent.expect("conversation", conversation__inbox_id=inbox["id"], timeout=10)
        cid = waiting["conversation"]["id"]
        await agent.request({"type": "conversation.claim", "conversation_id": cid})
        reply = await agent.request(
            {"type": "message.send", "conversation_id": cid, "client_id": "e1", "text": "Yes, hello!"}
        )
        status = await agent.expect("message.status", message_id=reply["message_id"], timeout=10)
        assert status["state"] == "delivered"
        assert platform == [("platform-user-1", "Yes, hello!")]
        replies.cancel()
        with pytest.raises(asyncio.CancelledError):
            await replies
