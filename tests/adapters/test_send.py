"""The senders against the local wire-compatible platform servers: what goes on the wire, splitting,
and every error shape mapped to retryable or permanent."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import pytest

from adapters import meta, telegram, twilio
from adapters.base import Outbound, OutboundAttachment, Template
from chatserver.errors import PermanentDeliveryError, TemporaryDeliveryError
from tests.adapters import fakes
from tests.adapters.fakes import FakePlatforms


@pytest.fixture
async def fake() -> AsyncIterator[FakePlatforms]:
    async with fakes.running() as f:
        yield f


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as c:
        yield c


def tg(fake: FakePlatforms) -> dict[str, str]:
    return {"bot_token": fakes.BOT_TOKEN, "secret_token": "s", "api_base": fake.url}


def page(fake: FakePlatforms) -> dict[str, str]:
    return {
        "page_id": "PAGE1",
        "page_access_token": fakes.PAGE_TOKEN,
        "app_secret": "a",
        "verify_token": "v",
        "graph_base": fake.url,
    }


def wa(fake: FakePlatforms) -> dict[str, str]:
    return {
        "phone_number_id": "106540352242922",
        "access_token": fakes.WA_TOKEN,
        "app_secret": "a",
        "verify_token": "v",
        "graph_base": fake.url,
    }


def sms(fake: FakePlatforms) -> dict[str, str]:
    return {
        "account_sid": fakes.TWILIO_SID,
        "auth_token": fakes.TWILIO_TOKEN,
        "from_number": "+15550001111",
        "api_base": fake.url,
    }


# -- Telegram ---------------------------------------------------------------------------------------------


async def test_telegram_send_splits_and_replies(fake: FakePlatforms, client: httpx.AsyncClient) -> None:
    text = "a" * 4096 + "b" * 10
    result = await telegram.CHANNEL.send(client, tg(fake), Outbound("1111111", text, reply_to="1111111:1365"))
    calls = fake.sent("telegram")
    assert [c.path for c in calls] == ["sendMessage", "sendMessage"]
    assert calls[0].body == {"chat_id": 1111111, "text": "a" * 4096, "reply_parameters": {"message_id": 1365}}
    assert calls[1].body == {"chat_id": 1111111, "text": "b" * 10}
    assert len(result.external_ids) == 2 and all(i.startswith("1111111:") for i in result.external_ids)


async def test_telegram_photo(fake: FakePlatforms, client: httpx.AsyncClient) -> None:
    out = Outbound("5", "", attachments=(OutboundAttachment("image", "https://files.example/a.png"),))
    await telegram.CHANNEL.send(client, tg(fake), out)
    [call] = fake.sent("telegram")
    assert (call.path, call.body) == ("sendPhoto", {"chat_id": 5, "photo": "https://files.example/a.png"})


async def test_telegram_errors(fake: FakePlatforms, client: httpx.AsyncClient) -> None:
    fake.fail_next("sendMessage", 429, fakes.tg_error_body(429, "Too Many Requests: retry after 7", 7))
    with pytest.raises(TemporaryDeliveryError) as temp:
        await telegram.CHANNEL.send(client, tg(fake), Outbound("1", "hi"))
    assert temp.value.retry_after_s == 7
    assert "Too Many Requests" in temp.value.reason
    fake.fail_next("sendMessage", 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"})
    with pytest.raises(TemporaryDeliveryError):
        await telegram.CHANNEL.send(client, tg(fake), Outbound("1", "hi"))
    with pytest.raises(PermanentDeliveryError, match="chat not found"):
        await telegram.CHANNEL.send(client, tg(fake), Outbound("404", "hi"))
    with pytest.raises(PermanentDeliveryError, match="Unauthorized"):
        await telegram.CHANNEL.send(client, {**tg(fake), "bot_token": "wrong"}, Outbound("1", "hi"))
    assert "wrong" not in str(temp.value)


async def test_telegram_set_webhook_and_get_updates(fake: FakePlatforms, client: httpx.AsyncClient) -> None:
    await telegram.set_webhook(client, tg(fake), "https://chat.example/webhooks/telegram/ib_1")
    assert fake.webhook == {"url": "https://chat.example/webhooks/telegram/ib_1", "secret_token": "s"}
    with pytest.raises(PermanentDeliveryError, match="webhook is active"):
        await telegram.get_updates(client, tg(fake), None, 0)
    fake.webhook = None
    fake.push_update({"update_id": 7, "message": {}})
    fake.push_update({"update_id": 8, "message": {}})
    assert [u["update_id"] for u in await telegram.get_updates(client, tg(fake), None, 0)] == [7, 8]
    assert [u["update_id"] for u in await telegram.get_updates(client, tg(fake), 8, 0)] == [8]


async def test_unreachable_platform_is_temporary(client: httpx.AsyncClient) -> None:
    from tests.e2e.harness import free_port

    config = {"bot_token": "1:a", "api_base": f"http://127.0.0.1:{free_port()}"}
    with pytest.raises(TemporaryDeliveryError, match="could not reach"):
        await telegram.CHANNEL.send(client, config, Outbound("1", "hi"))


# -- Graph API --------------------------------------------------------------------------------------------


async def test_messenger_send(fake: FakePlatforms, client: httpx.AsyncClient) -> None:
    result = await meta.MESSENGER.send(client, page(fake), Outbound("PSID1", "hello"))
    [call] = fake.sent("graph")
    assert call.path == f"/{meta.GRAPH_VERSION}/PAGE1/messages"
    assert call.headers["authorization"] == f"Bearer {fakes.PAGE_TOKEN}"
    assert call.body == {
        "recipient": {"id": "PSID1"},
        "messaging_type": "RESPONSE",
        "message": {"text": "hello"},
    }
    assert result.external_ids[0].startswith("m_FAKE")


async def test_instagram_splits_at_1000_bytes(fake: FakePlatforms, client: httpx.AsyncClient) -> None:
    text = "ü" * 900  # 1800 bytes: two parts the fake accepts (it refuses a part over 1000 bytes)
    result = await meta.INSTAGRAM.send(client, page(fake), Outbound("IGSID", text))
    calls = fake.sent("graph")
    assert [c.path for c in calls] == [f"/{meta.GRAPH_VERSION}/me/messages"] * 2
    assert "".join(c.body["message"]["text"] for c in calls) == text
    assert len(result.external_ids) == 2


async def test_messenger_image(fake: FakePlatforms, client: httpx.AsyncClient) -> None:
    await meta.MESSENGER.send(
        client,
        page(fake),
        Outbound("PSID1", "", attachments=(OutboundAttachment("image", "https://x/y.png"),)),
    )
    [call] = fake.sent("graph")
    assert call.body["message"] == {
        "attachment": {"type": "image", "payload": {"url": "https://x/y.png", "is_reusable": True}}
    }


async def test_graph_errors(fake: FakePlatforms, client: httpx.AsyncClient) -> None:
    with pytest.raises(PermanentDeliveryError, match="551: This person isn't available"):
        await meta.MESSENGER.send(client, page(fake), Outbound("blocked", "hi"))
    with pytest.raises(PermanentDeliveryError, match="190"):
        await meta.MESSENGER.send(client, {**page(fake), "page_access_token": "x"}, Outbound("P", "hi"))
    fake.fail_next(
        "graph", 400, fakes.graph_error_body(613, "Calls to this api have exceeded the rate limit.")
    )
    with pytest.raises(TemporaryDeliveryError, match="613"):
        await meta.MESSENGER.send(client, page(fake), Outbound("P", "hi"))
    fake.fail_next("graph", 429, fakes.graph_error_body(130429, "Rate limit hit"), {"Retry-After": "12"})
    with pytest.raises(TemporaryDeliveryError) as temp:
        await meta.WHATSAPP.send(client, wa(fake), Outbound("16505551234", "hi"))
    assert temp.value.retry_after_s == 12
    fake.fail_next("graph", 500, {"error": {"message": "An unknown error occurred", "code": 1}})
    with pytest.raises(TemporaryDeliveryError):
        await meta.WHATSAPP.send(client, wa(fake), Outbound("16505551234", "hi"))


async def test_whatsapp_text_template_and_document(fake: FakePlatforms, client: httpx.AsyncClient) -> None:
    r1 = await meta.WHATSAPP.send(client, wa(fake), Outbound("16505551234", "x" * 5000, reply_to="wamid.IN"))
    texts = fake.sent("graph")
    assert [c.path for c in texts] == [f"/{meta.GRAPH_VERSION}/106540352242922/messages"] * 2
    assert texts[0].body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "16505551234",
        "type": "text",
        "text": {"preview_url": False, "body": "x" * 4096},
        "context": {"message_id": "wamid.IN"},
    }
    assert texts[1].body["text"]["body"] == "x" * 904 and "context" not in texts[1].body
    assert all(i.startswith("wamid.FAKE") for i in r1.external_ids)
    fake.calls.clear()
    await meta.WHATSAPP.send(
        client, wa(fake), Outbound("16505551234", template=Template("order_update", "de", ("Ann", "42")))
    )
    [call] = fake.sent("graph")
    assert call.body["type"] == "template"
    assert call.body["template"] == {
        "name": "order_update",
        "language": {"code": "de"},
        "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "Ann"}, {"type": "text", "text": "42"}]}
        ],
    }
    fake.calls.clear()
    await meta.WHATSAPP.send(
        client, wa(fake), Outbound("1", attachments=(OutboundAttachment("file", "https://x/a.pdf", "a.pdf"),))
    )
    [call] = fake.sent("graph")
    assert call.body["document"] == {"link": "https://x/a.pdf", "filename": "a.pdf"}


# -- Twilio -----------------------------------------------------------------------------------------------


async def test_twilio_send(fake: FakePlatforms, client: httpx.AsyncClient) -> None:
    text = "s" * 1600 + "t"
    out = Outbound("+15551234567", text, status_callback="https://chat.example/webhooks/sms/ib_1/status")
    result = await twilio.CHANNEL.send(client, sms(fake), out)
    calls = fake.sent("twilio")
    assert [c.path for c in calls] == [f"/2010-04-01/Accounts/{fakes.TWILIO_SID}/Messages.json"] * 2
    expected = "Basic " + base64.b64encode(f"{fakes.TWILIO_SID}:{fakes.TWILIO_TOKEN}".encode()).decode()
    assert calls[0].headers["authorization"] == expected
    assert dict(calls[0].body) == {
        "To": "+15551234567",
        "From": "+15550001111",
        "Body": "s" * 1600,
        "StatusCallback": "https://chat.example/webhooks/sms/ib_1/status",
    }
    assert dict(calls[1].body)["Body"] == "t"
    assert all(i.startswith("SM") for i in result.external_ids)


async def test_twilio_errors(fake: FakePlatforms, client: httpx.AsyncClient) -> None:
    with pytest.raises(PermanentDeliveryError, match="21211"):
        await twilio.CHANNEL.send(client, sms(fake), Outbound("5551234", "hi"))
    with pytest.raises(PermanentDeliveryError, match="20003: Authenticate"):
        await twilio.CHANNEL.send(client, {**sms(fake), "auth_token": "bad"}, Outbound("+1", "hi"))
    fake.fail_next(
        "twilio", 429, fakes.twilio_error_body(429, 20429, "Too Many Requests"), {"Retry-After": "3"}
    )
    with pytest.raises(TemporaryDeliveryError) as temp:
        await twilio.CHANNEL.send(client, sms(fake), Outbound("+1", "hi"))
    assert temp.value.retry_after_s == 3
    fake.fail_next("twilio", 503, fakes.twilio_error_body(503, 20500, "Internal Server Error"))
    with pytest.raises(TemporaryDeliveryError, match="20500"):
        await twilio.CHANNEL.send(client, sms(fake), Outbound("+1", "hi"))


async def test_twilio_mms_media_ride_with_the_last_part(
    fake: FakePlatforms, client: httpx.AsyncClient
) -> None:
    out = Outbound(
        "+15551234567",
        "see attached",
        attachments=(
            OutboundAttachment("image", "https://x/a.png"),
            OutboundAttachment("file", "https://x/b.pdf"),
        ),
    )
    await twilio.CHANNEL.send(client, sms(fake), out)
    [call] = fake.sent("twilio")
    assert call.body == [
        ("To", "+15551234567"),
        ("From", "+15550001111"),
        ("Body", "see attached"),
        ("MediaUrl", "https://x/a.png"),
        ("MediaUrl", "https://x/b.pdf"),
    ]


# -- progress: a retry sends only what the platform has not accepted yet ----------------------------------


@pytest.mark.parametrize("channel", ["telegram", "messenger", "whatsapp", "sms"])
async def test_a_failed_part_is_resumed_without_resending_earlier_parts(
    channel: str, fake: FakePlatforms, client: httpx.AsyncClient
) -> None:
    adapter, config, to, key, limit = {
        "telegram": (telegram.CHANNEL, tg(fake), "42", "sendMessage", 4096),
        "messenger": (meta.MESSENGER, page(fake), "PSID1", "graph", 2000),
        "whatsapp": (meta.WHATSAPP, wa(fake), "16505551234", "graph", 4096),
        "sms": (twilio.CHANNEL, sms(fake), "+15557654321", "twilio", 1600),
    }[channel]
    text = "x" * (limit * 2 + 10)  # three parts
    recorded: list[tuple[int, str]] = []

    async def on_part(i: int, external_id: str) -> None:
        recorded.append((i, external_id))

    fake.pass_next(key)
    fake.fail_next(key, 503, {"error": {"message": "down", "code": 2}, "ok": False, "description": "down"})
    with pytest.raises(TemporaryDeliveryError):
        await adapter.send(client, config, Outbound(to=to, text=text), on_part=on_part)
    assert [i for i, _ in recorded] == [0]
    result = await adapter.send(
        client, config, Outbound(to=to, text=text, sent=(recorded[0][1],)), on_part=on_part
    )
    assert [i for i, _ in recorded] == [0, 1, 2]
    assert result.external_ids == tuple(e for _, e in recorded)
    assert len(set(result.external_ids)) == 3
    assert len(fake.calls) == 4  # part 1, part 2 refused, part 2, part 3: part 1 once


async def test_nothing_is_sent_again_when_every_part_was_accepted(
    fake: FakePlatforms, client: httpx.AsyncClient
) -> None:
    result = await telegram.CHANNEL.send(client, tg(fake), Outbound(to="42", text="hi", sent=("42:7",)))
    assert result.external_ids == ("42:7",)
    assert fake.calls == []
