"""A customer writes (parsed from the platform's sample payload, stored by the real service); the reply is
prepared for the conversation's channel and delivered to the fake platform; WhatsApp's window holds."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from adapters import meta, telegram, twilio
from adapters.base import Template, WebhookRequest
from chatserver.app import build_context, close_context
from chatserver.channels.inbound import Inbound
from chatserver.channels.outbound import deliver, prepare_reply
from chatserver.context import Context
from chatserver.errors import Conflict, Invalid, TemporaryDeliveryError
from chatserver.model.types import Conversation, Inbox
from tests.adapters import fakes
from tests.adapters.fakes import FakePlatforms
from tests.adapters.test_pure import TELEGRAM_UPDATE, WHATSAPP
from tests.e2e.harness import seed, settings_for

WA_SENT_AT = 1749416383  # the sample's timestamp


@pytest.fixture
async def fake() -> AsyncIterator[FakePlatforms]:
    async with fakes.running() as f:
        yield f


@pytest.fixture
async def context(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Context]:
    await seed(sqlite_url)
    c = await build_context(settings_for(sqlite_url, tmp_path))
    try:
        yield c
    finally:
        await close_context(c)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as c:
        yield c


async def receive(c: Context, inbox: Inbox, body: bytes) -> Conversation:
    adapter = {"telegram": telegram.CHANNEL, "whatsapp": meta.WHATSAPP, "sms": twilio.CHANNEL}[inbox.channel]
    outcome = await Inbound(c.service).apply(inbox, adapter.parse(WebhookRequest(body), inbox.config))
    [message] = outcome.stored
    return await c.store.get_conversation(message.conversation_id)


async def test_telegram_reply_goes_to_the_chat(
    context: Context, fake: FakePlatforms, client: httpx.AsyncClient
) -> None:
    inbox = await context.store.create_inbox(
        "Bot", "telegram", (), {"bot_token": fakes.BOT_TOKEN, "secret_token": "s", "api_base": fake.url}
    )
    conv = await receive(context, inbox, json.dumps(TELEGRAM_UPDATE).encode())
    reply = await prepare_reply(
        context.store, conv, text="Hallo Ann", now_s=0, base_url="https://chat.example"
    )
    fake.fail_next("sendMessage", 429, fakes.tg_error_body(429, "Too Many Requests: retry after 3", 3))
    with pytest.raises(TemporaryDeliveryError) as temp:
        await deliver(client, reply)
    assert temp.value.retry_after_s == 3
    result = await deliver(client, reply)  # the retry
    assert [c.body for c in fake.sent("telegram")] == [{"chat_id": 1111111, "text": "Hallo Ann"}] * 2
    assert result.external_ids[0].startswith("1111111:")
    with pytest.raises(Invalid):
        await prepare_reply(
            context.store, conv, template=Template("x", "de"), now_s=0, base_url="https://chat.example"
        )


async def test_whatsapp_window_and_template(
    context: Context, fake: FakePlatforms, client: httpx.AsyncClient
) -> None:
    config = {
        "phone_number_id": "106540352242922",
        "access_token": fakes.WA_TOKEN,
        "app_secret": "a",
        "verify_token": "v",
        "graph_base": fake.url,
    }
    inbox = await context.store.create_inbox("WA", "whatsapp", (), config)
    conv = await receive(context, inbox, json.dumps(WHATSAPP).encode())

    inside = await prepare_reply(
        context.store, conv, text="Yes, in blue", now_s=WA_SENT_AT + 3600, base_url=""
    )
    await deliver(client, inside)
    [sent] = fake.sent("graph")
    assert sent.body["to"] == "16505551234" and sent.body["text"]["body"] == "Yes, in blue"

    with pytest.raises(Conflict, match="24 hours") as refused:
        await prepare_reply(context.store, conv, text="Still there?", now_s=WA_SENT_AT + 86400, base_url="")
    assert refused.value.data == {"reason": "window_closed"}
    assert len(fake.sent("graph")) == 1  # refused before sending

    late = await prepare_reply(
        context.store,
        conv,
        template=Template("follow_up", "en", ("Sheena",)),
        now_s=WA_SENT_AT + 86400,
        base_url="",
    )
    await deliver(client, late)
    assert fake.sent("graph")[-1].body["template"]["name"] == "follow_up"

    # a newer message reopens the window, counted from its platform timestamp
    newer = json.loads(json.dumps(WHATSAPP))
    msg = newer["entry"][0]["changes"][0]["value"]["messages"][0]
    msg["id"], msg["timestamp"] = "wamid.NEWER", str(WA_SENT_AT + 90000)
    await receive(context, inbox, json.dumps(newer).encode())
    assert (
        await prepare_reply(context.store, conv, text="Hi", now_s=WA_SENT_AT + 90060, base_url="")
    ).outbound.to


async def test_sms_reply_asks_for_status_callbacks(
    context: Context, fake: FakePlatforms, client: httpx.AsyncClient
) -> None:
    config = {
        "account_sid": fakes.TWILIO_SID,
        "auth_token": fakes.TWILIO_TOKEN,
        "from_number": "+15550001111",
        "api_base": fake.url,
    }
    inbox = await context.store.create_inbox("SMS", "sms", (), config)
    body = (
        f"MessageSid=SM1&AccountSid={fakes.TWILIO_SID}&From=%2B15551234567&To=%2B15550001111&Body=Hi".encode()
    )
    conv = await receive(context, inbox, body)
    reply = await prepare_reply(context.store, conv, text="Hello!", now_s=0, base_url="https://chat.example")
    await deliver(client, reply)
    [call] = fake.sent("twilio")
    assert dict(call.body) == {
        "To": "+15551234567",
        "From": "+15550001111",
        "Body": "Hello!",
        "StatusCallback": f"https://chat.example/webhooks/sms/{inbox.id}/status",
    }
