"""examples/faq_bot.py, through ``chatserver.client``, against a real server with routing by offers:
it greets with buttons, answers, hands off with a summary, and the agent who accepts the offer sees it.
And the client itself: it reconnects and resumes without losing or repeating a message."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from chatserver.client import AdapterClient, ClientError, MessageEvent
from tests.adapterapi.helpers import make_bot
from tests.e2e.harness import Client, Seed, Server, visitor_token

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def server_overrides() -> dict[str, Any]:
    return {"routing": "offers", "offer_timeout_s": 30.0}


@pytest.fixture
async def running_bot(http: httpx.AsyncClient, server: Server, seeded: Seed) -> AsyncIterator[AdapterClient]:
    faq = load_example("faq_bot")
    bot = await make_bot(http, server, seeded, name="FAQ Bot")
    async with AdapterClient(server.url, bot["token"]) as client:
        task = asyncio.create_task(faq.run_bot(client))
        try:
            yield client
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


async def test_the_example_bot_answers_offers_buttons_and_hands_off(
    http: httpx.AsyncClient, server: Server, seeded: Seed, running_bot: AdapterClient
) -> None:
    tok = (await visitor_token(http, server.url, seeded.inbox_key))["token"]
    async with (
        Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent,
        Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v,
    ):
        await agent.expect("hello")
        await agent.request({"type": "status.set", "status": "online"})
        await v.expect("hello")
        cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
        greeting = await v.expect("message", conversation_id=cid, message__author__kind="bot", timeout=10)
        assert greeting["message"]["author"]["name"] == "FAQ Bot"
        assert [a["id"] for a in greeting["message"]["actions"]] == ["hours", "shipping", "agent"]

        await v.request(
            {
                "type": "action",
                "conversation_id": cid,
                "message_id": greeting["message"]["id"],
                "action_id": "hours",
            }
        )
        answer = await v.expect("message", conversation_id=cid, message__author__kind="bot", timeout=10)
        assert "Monday to Friday" in answer["message"]["text"]

        await v.request(
            {
                "type": "message.send",
                "conversation_id": cid,
                "client_id": "q2",
                "text": "What about shipping?",
            }
        )
        answer = await v.expect("message", conversation_id=cid, message__author__kind="bot", timeout=10)
        assert "Shipping is free" in answer["message"]["text"]

        await v.request(
            {
                "type": "action",
                "conversation_id": cid,
                "message_id": answer["message"]["id"],
                "action_id": "agent",
            }
        )
        offer = await agent.expect("offer", conversation__id=cid, timeout=15)
        summary = offer["conversation"]["handoff"]["summary"]
        assert "What about shipping?" in summary and "Opening hours" in summary
        accepted = await agent.request({"type": "offer.accept", "offer_id": offer["offer_id"]})
        assert accepted["status"] == "assigned", accepted
        r = await http.get(
            f"{server.url}/api/v1/conversations/{cid}/messages?after=0",
            headers={"Authorization": f"Bearer {seeded.agent_token}"},
        )
        notes = [m for m in r.json()["items"] if m["kind"] == "note"]
        assert len(notes) == 1 and summary in notes[0]["text"]
        assert (await v.expect("conversation", conversation__status="assigned"))["conversation"]["assignee"][
            "name"
        ] == "Bob"


async def test_the_client_resumes_after_a_drop(http: httpx.AsyncClient, server: Server, seeded: Seed) -> None:
    bot = await make_bot(http, server, seeded)
    tok = (await visitor_token(http, server.url, seeded.inbox_key))["token"]
    async with (
        AdapterClient(server.url, bot["token"], reconnect_min_s=0.05) as client,
        Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v,
    ):
        await v.expect("hello")
        cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
        await v.request({"type": "message.send", "conversation_id": cid, "client_id": "m1", "text": "one"})

        async def contact_text() -> str:
            while True:
                event = await client.next_event(timeout_s=10)
                if isinstance(event, MessageEvent) and event.author_kind == "contact":
                    return event.text

        assert await contact_text() == "one"
        sent = await client.send(cid, "Hello", client_id="fixed-1")
        assert client._ws is not None
        await client._ws.close()  # the network drops; the visitor keeps writing
        await v.request({"type": "message.send", "conversation_id": cid, "client_id": "m2", "text": "two"})
        await v.request({"type": "message.send", "conversation_id": cid, "client_id": "m3", "text": "three"})
        assert [await contact_text(), await contact_text()] == ["two", "three"]
        assert client.connections == 2
        again = await client.send(cid, "Hello", client_id="fixed-1")  # the same client_id: stored once
        assert again["message_id"] == sent["message_id"]
        with pytest.raises(ClientError) as info:
            await client.handoff("cv_nope", "x")
        assert info.value.code in ("not_found", "forbidden")


async def test_the_client_stops_on_a_revoked_token(http: httpx.AsyncClient, server: Server) -> None:
    with pytest.raises(ClientError) as info:
        async with AdapterClient(server.url, "cst_not-a-token", reconnect_min_s=0.05):
            pass
    assert info.value.code == "unauthorized"
