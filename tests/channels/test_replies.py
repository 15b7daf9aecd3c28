"""Agent replies out to the platforms, end to end: a real server (with its outbox worker), a real agent
WebSocket, and the platforms' send APIs as local wire-compatible servers (tests/adapters/fakes.py).
Retries honour the platform's hint and never resend an accepted part; a platform's refusal reaches the
agent as ``message.status`` failed with the platform's reason; delivery states from the platforms move
the delivery forward only."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.adapters import fakes
from tests.adapters.fakes import FakePlatforms, tg_error_body
from tests.adapters.test_pure import TELEGRAM_UPDATE
from tests.channels.test_webhooks import PUBLIC, admin, make_inbox, messages, tg_post
from tests.e2e.harness import Client, Seed, Server, run_server, settings_for
from tests.translation.fakes import LibreTranslateFake, serve

TG_SECRET = "tg-secret_1"


@pytest.fixture
def server_overrides() -> dict[str, Any]:
    return {"public_url": PUBLIC, "workers_in_serve": True, "outbox_retry_s": 0.2}


@pytest.fixture
async def platforms() -> AsyncIterator[FakePlatforms]:
    async with fakes.running() as fake:
        yield fake


async def telegram_inbox(
    http: httpx.AsyncClient, server: Server, seeded: Seed, fake: FakePlatforms
) -> dict[str, Any]:
    config = {"bot_token": fakes.BOT_TOKEN, "secret_token": TG_SECRET, "api_base": fake.url}
    return await make_inbox(http, server, seeded, "telegram", config)


async def claimed(agent: Client, channel: str) -> dict[str, Any]:
    """Wait for the channel's new conversation and take it."""
    live = await agent.expect("conversation", timeout=10, conversation__channel=channel)
    conv: dict[str, Any] = live["conversation"]
    ack = await agent.request({"type": "conversation.claim", "conversation_id": conv["id"]})
    assert ack["type"] == "ack", ack
    return conv


async def reply(agent: Client, conversation_id: str, text: str, client_id: str) -> dict[str, Any]:
    ack = await agent.request(
        {"type": "message.send", "conversation_id": conversation_id, "client_id": client_id, "text": text},
        timeout=10,
    )
    return ack


async def status(agent: Client, message_id: str, state: str, timeout: float = 15) -> dict[str, Any]:
    return await agent.expect("message.status", timeout=timeout, message_id=message_id, state=state)


async def said(http: httpx.AsyncClient, server: Server, seeded: Seed, cid: str) -> list[str]:
    """The texts of the contact and the agents, without system events."""
    return [m["text"] for m in await messages(http, server, seeded, cid) if m["author"]["kind"] != "system"]


def sent_texts(fake: FakePlatforms) -> list[str]:
    return [c.body["text"] for c in fake.sent("telegram") if c.path == "sendMessage"]


# -- Telegram -------------------------------------------------------------------------------------------


async def test_telegram_reply_reaches_the_bot_api_and_a_429_is_retried_once(
    http: httpx.AsyncClient, server: Server, seeded: Seed, platforms: FakePlatforms
) -> None:
    inbox = await telegram_inbox(http, server, seeded, platforms)
    async with Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent:
        await agent.expect("hello")
        assert (await tg_post(http, server, inbox["id"], TELEGRAM_UPDATE, TG_SECRET)).status_code == 200
        conv = await claimed(agent, "telegram")

        ack = await reply(agent, conv["id"], "Guten Tag, wie kann ich helfen?", "r1")
        assert ack["type"] == "ack", ack
        sent = await status(agent, ack["message_id"], "sent")
        assert sent["kind"] == "channel" and "reason" not in sent
        [call] = [c for c in platforms.sent("telegram") if c.path == "sendMessage"]
        assert call.body == {"chat_id": 1111111, "text": "Guten Tag, wie kann ich helfen?"}

        # Telegram says 429 with retry_after: the agent sees it queued with the reason, then sent, once
        platforms.fail_next("sendMessage", 429, tg_error_body(429, "Too Many Requests: retry after 1", 1))
        ack = await reply(agent, conv["id"], "Einen Moment bitte", "r2")
        queued = await status(agent, ack["message_id"], "queued")
        assert "Too Many Requests" in queued["reason"]
        await status(agent, ack["message_id"], "sent")
        assert sent_texts(platforms).count("Einen Moment bitte") == 2  # the refused call and the retry
        r = await http.get(
            f"{server.url}/api/v1/conversations/{conv['id']}/messages?after=0", headers=admin(seeded)
        )
        texts = [m["text"] for m in r.json()["items"] if m["author"]["kind"] == "agent"]
        assert texts == ["Guten Tag, wie kann ich helfen?", "Einen Moment bitte"]


async def test_a_long_reply_is_split_and_a_retry_sends_only_the_parts_not_yet_accepted(
    http: httpx.AsyncClient, server: Server, seeded: Seed, platforms: FakePlatforms
) -> None:
    inbox = await telegram_inbox(http, server, seeded, platforms)
    async with Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent:
        await agent.expect("hello")
        assert (await tg_post(http, server, inbox["id"], TELEGRAM_UPDATE, TG_SECRET)).status_code == 200
        conv = await claimed(agent, "telegram")
        long_text = " ".join(f"word{i:04d}" for i in range(1000))  # 8999 chars: three parts
        platforms.pass_next("sendMessage")
        platforms.fail_next(
            "sendMessage", 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}
        )
        ack = await reply(agent, conv["id"], long_text, "long")
        assert ack["type"] == "ack", ack
        await status(agent, ack["message_id"], "queued")
        await status(agent, ack["message_id"], "sent")
        texts = sent_texts(platforms)
        assert len(texts) == 4  # part 1, part 2 refused, part 2 again, part 3: part 1 never twice
        assert texts[1] == texts[2]
        assert texts[0] + texts[2] + texts[3] == long_text
        assert all(len(t) <= 4096 for t in texts)


@pytest.mark.parametrize(
    ("code", "description"),
    [(400, "Bad Request: chat not found"), (403, "Forbidden: bot was blocked by the user")],
)
async def test_a_4xx_fails_the_reply_with_the_platforms_reason(
    http: httpx.AsyncClient,
    server: Server,
    seeded: Seed,
    platforms: FakePlatforms,
    code: int,
    description: str,
) -> None:
    inbox = await telegram_inbox(http, server, seeded, platforms)
    async with Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent:
        await agent.expect("hello")
        assert (await tg_post(http, server, inbox["id"], TELEGRAM_UPDATE, TG_SECRET)).status_code == 200
        conv = await claimed(agent, "telegram")
        platforms.fail_next("sendMessage", code, tg_error_body(code, description))
        ack = await reply(agent, conv["id"], "Hallo?", "blocked")
        failed = await status(agent, ack["message_id"], "failed")
        assert failed["reason"] == f"Telegram sendMessage: {description}"
        assert sent_texts(platforms) == ["Hallo?"]  # never retried
    # the message itself stays in the conversation (nothing is lost), its delivery failed
    stored = [m for m in await messages(http, server, seeded, conv["id"]) if m["author"]["kind"] == "agent"]
    assert [m["text"] for m in stored] == ["Hallo?"]
    [delivery] = stored[0]["deliveries"]
    assert delivery["kind"] == "channel" and delivery["state"] == "failed"
    assert delivery["reason"] == f"Telegram sendMessage: {description}"


async def test_private_notes_never_leave(
    http: httpx.AsyncClient, server: Server, seeded: Seed, platforms: FakePlatforms
) -> None:
    inbox = await telegram_inbox(http, server, seeded, platforms)
    async with Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent:
        await agent.expect("hello")
        assert (await tg_post(http, server, inbox["id"], TELEGRAM_UPDATE, TG_SECRET)).status_code == 200
        conv = await claimed(agent, "telegram")
        note = await agent.request(
            {
                "type": "message.send",
                "conversation_id": conv["id"],
                "client_id": "n1",
                "text": "internal",
                "private": True,
            }
        )
        assert note["type"] == "ack"
        ack = await reply(agent, conv["id"], "public", "p1")
        await status(agent, ack["message_id"], "sent")
        assert sent_texts(platforms) == ["public"]


# -- WhatsApp ---------------------------------------------------------------------------------------------


WA_SECRET = "wa-s3cret"
TEMPLATES = [
    {"name": "order_update", "language": "en_US", "body": "Hello {{1}}, your order {{2}} has shipped."},
    {"name": "hello_world", "language": "en_US"},
]


def whatsapp_message(wamid: str, text: str, timestamp: int) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": "106540352242922",
                            },
                            "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
                            "messages": [
                                {
                                    "from": "16505551234",
                                    "id": wamid,
                                    "timestamp": str(timestamp),
                                    "type": "text",
                                    "text": {"body": text},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }


def whatsapp_status(wamid: str, state: str, **extra: Any) -> dict[str, Any]:
    body = whatsapp_message("x", "x", 0)
    value = body["entry"][0]["changes"][0]["value"]
    del value["messages"], value["contacts"]
    value["statuses"] = [
        {
            "id": wamid,
            "status": state,
            "timestamp": str(int(time.time())),
            "recipient_id": "16505551234",
            **extra,
        }
    ]
    return body


async def meta_send(
    http: httpx.AsyncClient, server: Server, channel: str, inbox_id: str, data: dict[str, Any], secret: str
) -> None:
    from tests.channels.test_webhooks import meta_post

    r = await meta_post(http, server, channel, inbox_id, json.dumps(data).encode(), secret)
    assert r.status_code == 200, r.text


async def test_whatsapp_window_template_reply_and_status_callbacks(
    http: httpx.AsyncClient, server: Server, seeded: Seed, platforms: FakePlatforms
) -> None:
    config = {
        "phone_number_id": "106540352242922",
        "access_token": fakes.WA_TOKEN,
        "app_secret": WA_SECRET,
        "verify_token": "vt-2",
        "graph_base": platforms.url,
        "templates": TEMPLATES,
    }
    inbox = await make_inbox(http, server, seeded, "whatsapp", config)
    listed = await http.get(f"{server.url}/api/v1/inboxes/{inbox['id']}/templates", headers=admin(seeded))
    assert listed.status_code == 200
    assert [t["name"] for t in listed.json()["items"]] == ["order_update", "hello_world"]
    assert listed.json()["items"][0]["parameters"] == 2
    async with Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent:
        await agent.expect("hello")
        two_days_ago = int(time.time()) - 2 * 86400
        await meta_send(
            http,
            server,
            "whatsapp",
            inbox["id"],
            whatsapp_message("wamid.OLD", "Hi", two_days_ago),
            WA_SECRET,
        )
        conv = await claimed(agent, "whatsapp")

        # outside the 24-hour window a free-form reply is refused before anything is stored or sent
        refused = await reply(agent, conv["id"], "Sorry for the wait", "late")
        assert refused["type"] == "error" and refused["code"] == "conflict", refused
        assert "24 hours" in refused["message"]
        # a template the inbox does not list, or with the wrong parameters: invalid
        for template, field in (
            ({"name": "nope", "language": "en_US", "parameters": []}, "template.name"),
            ({"name": "order_update", "language": "en_US", "parameters": ["Sheena"]}, "template.parameters"),
        ):
            bad = await agent.request(
                {
                    "type": "message.send",
                    "conversation_id": conv["id"],
                    "client_id": field,
                    "template": template,
                }
            )
            assert bad["type"] == "error" and bad["code"] == "invalid", bad
        assert await said(http, server, seeded, conv["id"]) == ["Hi"]
        assert platforms.sent("graph") == []

        # an approved template goes out outside the window
        ack = await agent.request(
            {
                "type": "message.send",
                "conversation_id": conv["id"],
                "client_id": "t1",
                "template": {"name": "order_update", "language": "en_US", "parameters": ["Sheena", "A-17"]},
            },
            timeout=10,
        )
        assert ack["type"] == "ack", ack
        await status(agent, ack["message_id"], "sent")
        [call] = platforms.sent("graph")
        assert call.body["type"] == "template"
        assert call.body["template"] == {
            "name": "order_update",
            "language": {"code": "en_US"},
            "components": [
                {
                    "type": "body",
                    "parameters": [{"type": "text", "text": "Sheena"}, {"type": "text", "text": "A-17"}],
                }
            ],
        }
        assert await said(http, server, seeded, conv["id"]) == [
            "Hi",
            "Hello Sheena, your order A-17 has shipped.",
        ]

        # the contact answers: inside the window now, a free-form reply goes out
        await meta_send(
            http,
            server,
            "whatsapp",
            inbox["id"],
            whatsapp_message("wamid.NEW", "Thanks!", int(time.time())),
            WA_SECRET,
        )
        ack = await reply(agent, conv["id"], "You're welcome", "r1")
        assert ack["type"] == "ack", ack
        await status(agent, ack["message_id"], "sent")
        last = platforms.sent("graph")[-1]
        assert last.body["text"]["body"] == "You're welcome" and last.body["to"] == "16505551234"
        assert len(platforms.sent("graph")) == 2
        wamid = "wamid.FAKE2"  # the fake numbers its ids in order: the template was 1

        # delivered, then read; a late "delivered" never moves it back; an unknown id changes nothing
        await meta_send(http, server, "whatsapp", inbox["id"], whatsapp_status(wamid, "delivered"), WA_SECRET)
        await status(agent, ack["message_id"], "delivered")
        await meta_send(http, server, "whatsapp", inbox["id"], whatsapp_status(wamid, "read"), WA_SECRET)
        await status(agent, ack["message_id"], "read")
        await meta_send(http, server, "whatsapp", inbox["id"], whatsapp_status(wamid, "delivered"), WA_SECRET)
        await meta_send(
            http, server, "whatsapp", inbox["id"], whatsapp_status("wamid.UNKNOWN", "read"), WA_SECRET
        )
        late = [f for f in await agent.drain() if f["type"] == "message.status"]
        assert late == []
        history = {m["id"]: m for m in await messages(http, server, seeded, conv["id"])}
        assert [d["state"] for d in history[ack["message_id"]]["deliveries"]] == ["read"]

        # the template was accepted, then failed on the platform's side: failed with its reason
        failure = whatsapp_status(
            "wamid.FAKE1",
            "failed",
            errors=[
                {
                    "code": 131026,
                    "title": "Message undeliverable",
                    "error_data": {"details": "Receiver is incapable"},
                }
            ],
        )
        await meta_send(http, server, "whatsapp", inbox["id"], failure, WA_SECRET)
        failed = await agent.expect("message.status", timeout=10, state="failed")
        assert failed["reason"] == "131026: Receiver is incapable"


# -- translation at send time -----------------------------------------------------------------------------


async def test_replies_leave_in_the_contacts_language_and_untranslated_when_translation_fails(
    http: httpx.AsyncClient, sqlite_url: str, seeded: Seed, tmp_path: Path, platforms: FakePlatforms
) -> None:
    async with serve(LibreTranslateFake()) as translator:
        settings = settings_for(
            sqlite_url,
            tmp_path,
            public_url=PUBLIC,
            workers_in_serve=True,
            outbox_retry_s=0.2,
            translation_provider="libretranslate",
            translation_url=translator.url,
            translation_retry_s=0.2,
            languages=("de", "en"),
        )
        async with run_server(settings) as server:
            inbox = await telegram_inbox(http, server, seeded, platforms)
            async with Client.connect(
                f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None
            ) as agent:
                await agent.expect("hello")
                r = await tg_post(http, server, inbox["id"], TELEGRAM_UPDATE, TG_SECRET)
                assert r.status_code == 200
                conv = await claimed(agent, "telegram")
                assert conv["language"] == "de"  # Telegram's language_code
                ack = await reply(agent, conv["id"], "Thank you for waiting", "en1")
                await status(agent, ack["message_id"], "sent")
                assert sent_texts(platforms) == ["[de] Thank you for waiting"]

                translator.mode = "server_error"  # the provider is down: the original goes out
                ack = await reply(agent, conv["id"], "One more thing", "en2")
                await status(agent, ack["message_id"], "sent")
                assert sent_texts(platforms)[-1] == "One more thing"
            stored = await messages(http, server, seeded, conv["id"])
            assert [m["text"] for m in stored if m["author"]["kind"] == "agent"] == [
                "Thank you for waiting",
                "One more thing",
            ]
