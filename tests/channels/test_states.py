"""Delivery states from Messenger (delivery and read watermarks) and Twilio (signed status callbacks),
and merging two contacts, end to end through a real server and the platforms' fake send APIs."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from adapters import twilio
from tests.adapters import fakes
from tests.adapters.fakes import FakePlatforms
from tests.adapters.test_pure import MESSENGER, TELEGRAM_UPDATE
from tests.channels.test_replies import (
    TG_SECRET,
    claimed,
    reply,
    status,
    telegram_inbox,
    whatsapp_message,
    whatsapp_status,
)
from tests.channels.test_webhooks import PUBLIC, admin, conversations, make_inbox, meta_post, tg_post
from tests.e2e.harness import Client, Seed, Server, visitor_token


@pytest.fixture
def server_overrides() -> dict[str, Any]:
    return {"public_url": PUBLIC, "workers_in_serve": True, "outbox_retry_s": 0.2}


@pytest.fixture
async def platforms() -> AsyncIterator[FakePlatforms]:
    async with fakes.running() as fake:
        yield fake


PAGE_SECRET = "app-s3cret"
WA_SECRET = "wa-s3cret"


def page_event(event: dict[str, Any]) -> bytes:
    item = {"sender": {"id": "PSID1"}, "recipient": {"id": "PAGE_ID"}, "timestamp": int(time.time() * 1000)}
    return json.dumps(
        {"object": "page", "entry": [{"id": "PAGE_ID", "time": 1, "messaging": [{**item, **event}]}]}
    ).encode()


async def test_messenger_reply_then_delivery_and_read_receipts(
    http: httpx.AsyncClient, server: Server, seeded: Seed, platforms: FakePlatforms
) -> None:
    config = {
        "page_id": "PAGE_ID",
        "page_access_token": fakes.PAGE_TOKEN,
        "app_secret": PAGE_SECRET,
        "verify_token": "vt-1",
        "graph_base": platforms.url,
    }
    inbox = await make_inbox(http, server, seeded, "messenger", config)
    async with Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent:
        await agent.expect("hello")
        body = json.dumps(MESSENGER).encode()
        assert (await meta_post(http, server, "messenger", inbox["id"], body, PAGE_SECRET)).status_code == 200
        conv = await claimed(agent, "messenger")
        first = await reply(agent, conv["id"], "Hi there!", "m1")
        await status(agent, first["message_id"], "sent")
        second = await reply(agent, conv["id"], "Anything else?", "m2")
        await status(agent, second["message_id"], "sent")
        calls = platforms.sent("graph")
        assert [c.body for c in calls] == [
            {"recipient": {"id": "PSID1"}, "messaging_type": "RESPONSE", "message": {"text": "Hi there!"}},
            {
                "recipient": {"id": "PSID1"},
                "messaging_type": "RESPONSE",
                "message": {"text": "Anything else?"},
            },
        ]
        assert calls[0].path == "/v21.0/PAGE_ID/messages"

        # a delivery receipt names the first message's mid: only it is delivered
        delivered = page_event({"delivery": {"mids": ["m_FAKE1"], "watermark": int(time.time() * 1000)}})
        r = await meta_post(http, server, "messenger", inbox["id"], delivered, PAGE_SECRET)
        assert r.status_code == 200
        await status(agent, first["message_id"], "delivered")
        # a read watermark covers everything sent to that person before it: both are read
        read = page_event({"read": {"watermark": int(time.time() * 1000) + 1000}})
        assert (await meta_post(http, server, "messenger", inbox["id"], read, PAGE_SECRET)).status_code == 200
        await status(agent, first["message_id"], "read")
        await status(agent, second["message_id"], "read")
        # a forged receipt changes nothing
        forged = page_event({"delivery": {"mids": ["m_FAKE2"], "watermark": 1}})
        r = await http.post(
            f"{server.url}/webhooks/messenger/{inbox['id']}",
            content=forged,
            headers={"X-Hub-Signature-256": "sha256=" + "0" * 64, "Content-Type": "application/json"},
        )
        assert r.status_code == 403
        assert [f for f in await agent.drain() if f["type"] == "message.status"] == []


def twilio_post(
    http: httpx.AsyncClient, server: Server, inbox_id: str, params: dict[str, str], path: str = ""
) -> Any:
    url_path = f"/webhooks/sms/{inbox_id}{path}"
    sig = twilio.signature(fakes.TWILIO_TOKEN, PUBLIC + url_path, list(params.items()))
    return http.post(f"{server.url}{url_path}", data=params, headers={"X-Twilio-Signature": sig})


async def test_sms_reply_and_signed_status_callbacks(
    http: httpx.AsyncClient, server: Server, seeded: Seed, platforms: FakePlatforms
) -> None:
    config = {
        "account_sid": fakes.TWILIO_SID,
        "auth_token": fakes.TWILIO_TOKEN,
        "from_number": "+15550001111",
        "api_base": platforms.url,
    }
    inbox = await make_inbox(http, server, seeded, "sms", config)
    inbound = {
        "AccountSid": fakes.TWILIO_SID,
        "MessageSid": "SMinbound1",
        "From": "+15557654321",
        "To": "+15550001111",
        "Body": "Is the shop open today?",
        "NumMedia": "0",
    }
    async with Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent:
        await agent.expect("hello")
        assert (await twilio_post(http, server, inbox["id"], inbound)).status_code == 200
        conv = await claimed(agent, "sms")
        ack = await reply(agent, conv["id"], "Yes, until 6 pm.", "s1")
        await status(agent, ack["message_id"], "sent")
        [call] = platforms.sent("twilio")
        sent = dict(call.body)
        assert sent["To"] == "+15557654321" and sent["From"] == "+15550001111"
        assert sent["Body"] == "Yes, until 6 pm."
        assert sent["StatusCallback"] == f"{PUBLIC}/webhooks/sms/{inbox['id']}/status"
        sid = f"SM{1:032d}"

        callback = {
            "AccountSid": fakes.TWILIO_SID,
            "MessageSid": sid,
            "MessageStatus": "delivered",
            "To": "+15557654321",
            "From": "+15550001111",
        }
        r = await twilio_post(http, server, inbox["id"], callback, "/status")
        assert r.status_code == 200 and "<Response/>" in r.text
        await status(agent, ack["message_id"], "delivered")

        # a forged callback (wrong signature) is refused and changes nothing
        forged = {**callback, "MessageStatus": "undelivered", "ErrorCode": "30003"}
        r = await http.post(
            f"{server.url}/webhooks/sms/{inbox['id']}/status",
            data=forged,
            headers={"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"},
        )
        assert r.status_code == 403
        assert [f for f in await agent.drain() if f["type"] == "message.status"] == []
        # "sent" after "delivered" never moves it back
        r = await twilio_post(http, server, inbox["id"], {**callback, "MessageStatus": "sent"}, "/status")
        assert r.status_code == 200
        assert [f for f in await agent.drain() if f["type"] == "message.status"] == []
        # the carrier gives up after all: failed with Twilio's error code
        r = await twilio_post(http, server, inbox["id"], forged, "/status")
        assert r.status_code == 200
        failed = await status(agent, ack["message_id"], "failed")
        assert failed["reason"] == "Twilio error 30003"


# -- merging contacts ---------------------------------------------------------------------------------------


async def test_merge_two_contacts_and_reply_on_each_conversations_channel(
    http: httpx.AsyncClient, server: Server, seeded: Seed, platforms: FakePlatforms
) -> None:
    tg = await telegram_inbox(http, server, seeded, platforms)
    wa_config = {
        "phone_number_id": "106540352242922",
        "access_token": fakes.WA_TOKEN,
        "app_secret": WA_SECRET,
        "verify_token": "vt-2",
        "graph_base": platforms.url,
    }
    wa = await make_inbox(http, server, seeded, "whatsapp", wa_config)
    async with Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent:
        await agent.expect("hello")
        assert (await tg_post(http, server, tg["id"], TELEGRAM_UPDATE, TG_SECRET)).status_code == 200
        tg_conv = await claimed(agent, "telegram")
        body = json.dumps(whatsapp_message("wamid.M1", "It's me again, Ann", int(time.time()))).encode()
        assert (await meta_post(http, server, "whatsapp", wa["id"], body, WA_SECRET)).status_code == 200
        wa_conv = await claimed(agent, "whatsapp")
        ann, sheena = tg_conv["contact"]["id"], wa_conv["contact"]["id"]
        assert ann != sheena

        url = f"{server.url}/api/v1/contacts/{sheena}/merge"
        before = await conversations(http, server, seeded)
        for target, code in ((sheena, 409), ("ct_unknown", 404)):
            r = await http.post(url, json={"into": target}, headers=admin(seeded))
            assert r.status_code == code, r.text
        r = await http.post(
            f"{server.url}/api/v1/contacts/ct_unknown/merge", json={"into": ann}, headers=admin(seeded)
        )
        assert r.status_code == 404
        for bad in ({}, {"into": 7}, {"into": ann, "extra": 1}):
            r = await http.post(url, json=bad, headers=admin(seeded))
            assert r.status_code == 422, r.text
        assert await conversations(http, server, seeded) == before  # nothing changed

        r = await http.post(
            url, json={"into": ann}, headers={"Authorization": f"Bearer {seeded.agent_token}"}
        )
        assert r.status_code == 200, r.text
        merged = r.json()
        assert merged["contact"]["id"] == ann
        assert merged["contact"]["phone"] == "+16505551234"  # taken from the merged contact
        assert merged["conversations"] == [wa_conv["id"]]
        live = await agent.next(
            lambda f: (
                f["type"] == "conversation"
                and f["conversation"]["id"] == wa_conv["id"]
                and f["conversation"]["contact"]["id"] == ann
            ),
            timeout=10,
        )
        assert live["conversation"]["contact"]["phone"] == "+16505551234"
        gone = await http.get(f"{server.url}/api/v1/contacts/{sheena}", headers=admin(seeded))
        assert gone.json()["merged_into"] == ann
        again = await http.post(url, json={"into": ann}, headers=admin(seeded))
        assert again.status_code == 409
        mine = [c for c in await conversations(http, server, seeded) if c["contact"]["id"] == ann]
        assert {c["id"] for c in mine} == {tg_conv["id"], wa_conv["id"]}

        # each reply leaves on the channel of the conversation it answers
        a = await reply(agent, wa_conv["id"], "On WhatsApp", "w1")
        await status(agent, a["message_id"], "sent")
        b = await reply(agent, tg_conv["id"], "On Telegram", "t1")
        await status(agent, b["message_id"], "sent")
        [wa_call] = platforms.sent("graph")
        assert wa_call.body["to"] == "16505551234" and wa_call.body["text"]["body"] == "On WhatsApp"
        [tg_call] = [c for c in platforms.sent("telegram") if c.path == "sendMessage"]
        assert tg_call.body == {"chat_id": 1111111, "text": "On Telegram"}
        # the customer writes again on WhatsApp: it lands with the survivor
        body = json.dumps(whatsapp_message("wamid.M2", "Thanks", int(time.time()))).encode()
        assert (await meta_post(http, server, "whatsapp", wa["id"], body, WA_SECRET)).status_code == 200
        seen = await agent.expect(
            "message", timeout=10, conversation_id=wa_conv["id"], message__text="Thanks"
        )
        assert seen["message"]["author"]["id"] == ann


async def test_templates_listing_and_template_frames_refused_where_they_do_not_apply(
    http: httpx.AsyncClient, server: Server, seeded: Seed, platforms: FakePlatforms
) -> None:
    base = f"{server.url}/api/v1/inboxes"
    assert (await http.get(f"{base}/ib_unknown/templates", headers=admin(seeded))).status_code == 404
    assert (await http.get(f"{base}/{seeded.inbox_id}/templates")).status_code == 401
    widget = await http.get(
        f"{base}/{seeded.inbox_id}/templates", headers={"Authorization": f"Bearer {seeded.agent_token}"}
    )
    assert widget.status_code == 200 and widget.json()["items"] == []

    tg = await telegram_inbox(http, server, seeded, platforms)
    template = {"name": "hello_world", "language": "en_US", "parameters": []}
    async with Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent:
        await agent.expect("hello")
        assert (await tg_post(http, server, tg["id"], TELEGRAM_UPDATE, TG_SECRET)).status_code == 200
        conv = await claimed(agent, "telegram")
        refused = await agent.request(
            {"type": "message.send", "conversation_id": conv["id"], "client_id": "t", "template": template}
        )
        assert refused["type"] == "error" and refused["code"] == "invalid", refused
    assert platforms.calls == []

    tok = (await visitor_token(http, server.url, seeded.inbox_key))["token"]
    async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as visitor:
        cid = (await visitor.request({"type": "conversation.start"}))["conversation_id"]
        refused = await visitor.request(
            {"type": "message.send", "conversation_id": cid, "client_id": "v", "template": template}
        )
        assert refused["type"] == "error" and refused["code"] == "forbidden", refused


async def test_a_report_that_overtakes_the_worker_is_applied_once_the_delivery_is_sent(
    http: httpx.AsyncClient, server: Server, seeded: Seed, platforms: FakePlatforms
) -> None:
    config = {
        "phone_number_id": "106540352242922",
        "access_token": fakes.WA_TOKEN,
        "app_secret": WA_SECRET,
        "verify_token": "vt-2",
        "graph_base": platforms.url,
    }
    inbox = await make_inbox(http, server, seeded, "whatsapp", config)
    async with Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent:
        await agent.expect("hello")
        body = json.dumps(whatsapp_message("wamid.IN1", "Hello", int(time.time()))).encode()
        assert (await meta_post(http, server, "whatsapp", inbox["id"], body, WA_SECRET)).status_code == 200
        conv = await claimed(agent, "whatsapp")
        release = platforms.hold_call("graph", after=1)  # the second part waits
        ack = await reply(agent, conv["id"], "y" * 5000, "two-parts")
        assert ack["type"] == "ack", ack
        await platforms.wait_for_calls("graph", 2)  # part 1 accepted (and recorded), part 2 held
        report = json.dumps(whatsapp_status("wamid.FAKE1", "delivered")).encode()
        assert (await meta_post(http, server, "whatsapp", inbox["id"], report, WA_SECRET)).status_code == 200
        release.set()
        await status(agent, ack["message_id"], "sent")
        await status(agent, ack["message_id"], "delivered")
