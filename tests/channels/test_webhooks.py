"""Channel inboxes and webhooks end to end, through a real server: a customer's message becomes a
message in their conversation, the agent sees it live; every kind of bad input is refused and stores
nothing."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters import meta, twilio
from tests.adapters.test_pure import MESSENGER, TELEGRAM_UPDATE, WHATSAPP
from tests.e2e.harness import Client, Seed, Server

PUBLIC = "https://chat.example"


@pytest.fixture
def server_overrides() -> dict[str, Any]:
    return {"public_url": PUBLIC}


def admin(seeded: Seed) -> dict[str, str]:
    return {"Authorization": f"Bearer {seeded.admin_token}"}


TG = {"bot_token": "123:abc", "secret_token": "tg-secret_1"}
PAGE = {
    "page_id": "PAGE_ID",
    "page_access_token": "EAAGpage",
    "app_secret": "app-s3cret",
    "verify_token": "vt-1",
}
WA = {
    "phone_number_id": "106540352242922",
    "access_token": "EAAGwa",
    "app_secret": "wa-s3cret",
    "verify_token": "vt-2",
}
SMS = {"account_sid": "AC1", "auth_token": "twilio-token", "from_number": "+15550001111"}


async def make_inbox(
    http: httpx.AsyncClient, server: Server, seeded: Seed, channel: str, config: dict[str, str]
) -> dict[str, Any]:
    r = await http.post(
        f"{server.url}/api/v1/inboxes",
        json={"name": channel.title(), "channel": channel, "config": config},
        headers=admin(seeded),
    )
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    return data


async def conversations(http: httpx.AsyncClient, server: Server, seeded: Seed) -> list[dict[str, Any]]:
    r = await http.get(f"{server.url}/api/v1/conversations?limit=200", headers=admin(seeded))
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def messages(http: httpx.AsyncClient, server: Server, seeded: Seed, cid: str) -> list[dict[str, Any]]:
    r = await http.get(f"{server.url}/api/v1/conversations/{cid}/messages?after=0", headers=admin(seeded))
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def tg_post(
    http: httpx.AsyncClient, server: Server, inbox_id: str, update: Any, secret: str = TG["secret_token"]
) -> Any:
    return http.post(
        f"{server.url}/webhooks/telegram/{inbox_id}",
        content=json.dumps(update).encode(),
        headers={"X-Telegram-Bot-Api-Secret-Token": secret, "Content-Type": "application/json"},
    )


def meta_post(
    http: httpx.AsyncClient, server: Server, channel: str, inbox_id: str, body: bytes, secret: str
) -> Any:
    return http.post(
        f"{server.url}/webhooks/{channel}/{inbox_id}",
        content=body,
        headers={"X-Hub-Signature-256": meta.signature(secret, body), "Content-Type": "application/json"},
    )


def sms_post(
    http: httpx.AsyncClient, inbox_id: str, server: Server, params: dict[str, str], path: str = ""
) -> Any:
    url_path = f"/webhooks/sms/{inbox_id}{path}"
    sig = twilio.signature(SMS["auth_token"], PUBLIC + url_path, list(params.items()))
    return http.post(f"{server.url}{url_path}", data=params, headers={"X-Twilio-Signature": sig})


# -- inboxes ----------------------------------------------------------------------------------------------


async def test_channel_inbox_rest_never_returns_secrets(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    created = await make_inbox(http, server, seeded, "whatsapp", WA)
    assert created["channel"] == "whatsapp"
    assert created["webhook_url"] == f"{PUBLIC}/webhooks/whatsapp/{created['id']}"
    assert created["config"] == {
        "phone_number_id": "106540352242922",
        "access_token_set": True,
        "app_secret_set": True,
        "verify_token_set": True,
    }
    for r in (
        await http.get(f"{server.url}/api/v1/inboxes/{created['id']}", headers=admin(seeded)),
        await http.get(f"{server.url}/api/v1/inboxes", headers=admin(seeded)),
    ):
        assert r.status_code == 200
        for secret in ("EAAGwa", "wa-s3cret", "vt-2"):
            assert secret not in r.text
    sms = await make_inbox(http, server, seeded, "sms", SMS)
    assert sms["status_callback_url"] == f"{PUBLIC}/webhooks/sms/{sms['id']}/status"
    tg = await make_inbox(http, server, seeded, "telegram", {"bot_token": "1:a"})
    assert tg["config"] == {"bot_token_set": True, "secret_token_set": True}  # generated


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"channel": "fax", "config": {}}, "channel"),
        ({"channel": "whatsapp", "config": {**WA, "access_token": None}}, "config.access_token"),
        ({"channel": "whatsapp", "config": {**WA, "bot_token": "x"}}, "config.bot_token"),
        ({"channel": "sms", "config": "nope"}, "config"),
        ({"channel": "telegram", "config": {"bot_token": "1:a", "mode": "push"}}, "config.mode"),
        ({"channel": "widget", "config": {"bot_token": "1:a"}}, "config"),
    ],
)
async def test_bad_inbox_config_is_refused(
    http: httpx.AsyncClient, server: Server, seeded: Seed, payload: dict[str, Any], field: str
) -> None:
    before = (await http.get(f"{server.url}/api/v1/inboxes", headers=admin(seeded))).json()["items"]
    r = await http.post(f"{server.url}/api/v1/inboxes", json={"name": "X", **payload}, headers=admin(seeded))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid"
    assert r.json()["error"]["data"]["field"] == field
    after = (await http.get(f"{server.url}/api/v1/inboxes", headers=admin(seeded))).json()["items"]
    assert after == before


# -- Telegram end to end ------------------------------------------------------------------------------------


async def test_telegram_message_reaches_the_agent_once(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    inbox = await make_inbox(http, server, seeded, "telegram", TG)
    async with Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent:
        await agent.expect("hello")
        r = await tg_post(http, server, inbox["id"], TELEGRAM_UPDATE)
        assert r.status_code == 200, r.text
        live = await agent.expect("conversation", conversation__channel="telegram")
        conv = live["conversation"]
        assert conv["contact"]["name"] == "Ann"
        assert conv["contact"]["language"] == "de"
        assert conv["status"] == "queued"

        # the platform retries (twice at once, and later): still one message
        again = await asyncio.gather(*(tg_post(http, server, inbox["id"], TELEGRAM_UPDATE) for _ in range(3)))
        assert [a.status_code for a in again] == [200, 200, 200]
        [stored] = await messages(http, server, seeded, conv["id"])
        assert stored["text"] == "Hallo"
        assert stored["author"]["kind"] == "contact"

        second = json.loads(json.dumps(TELEGRAM_UPDATE))
        second["update_id"] += 1
        second["message"]["message_id"] += 1
        second["message"]["text"] = "Noch da?"
        assert (await tg_post(http, server, inbox["id"], second)).status_code == 200
        assert [m["text"] for m in await messages(http, server, seeded, conv["id"])] == ["Hallo", "Noch da?"]

        # the agent takes it, sees the next message live, resolves it: the next message opens a new one
        claim = await agent.request({"type": "conversation.claim", "conversation_id": conv["id"]})
        assert claim["type"] == "ack"
        third = json.loads(json.dumps(second))
        third["message"]["message_id"] += 1
        third["message"]["text"] = "Danke"
        assert (await tg_post(http, server, inbox["id"], third)).status_code == 200
        seen = await agent.expect("message", conversation_id=conv["id"], message__text="Danke")
        assert seen["message"]["author"]["kind"] == "contact"
        closed = await agent.request({"type": "conversation.close", "conversation_id": conv["id"]})
        assert closed["type"] == "ack"
        # a late retry of an old message after the resolve neither reopens nor starts a conversation
        assert (await tg_post(http, server, inbox["id"], third)).status_code == 200
        assert len([c for c in await conversations(http, server, seeded) if c["channel"] == "telegram"]) == 1
        fourth = json.loads(json.dumps(third))
        fourth["message"]["message_id"] += 1
        fourth["message"]["text"] = "Neue Frage"
        assert (await tg_post(http, server, inbox["id"], fourth)).status_code == 200
    convs = [c for c in await conversations(http, server, seeded) if c["channel"] == "telegram"]
    assert len(convs) == 2
    newest = next(c for c in convs if c["id"] != conv["id"])
    assert newest["contact"]["id"] == conv["contact"]["id"]
    assert [m["text"] for m in await messages(http, server, seeded, newest["id"])] == ["Neue Frage"]


# -- Meta ---------------------------------------------------------------------------------------------------


async def test_meta_verification_handshake(http: httpx.AsyncClient, server: Server, seeded: Seed) -> None:
    inbox = await make_inbox(http, server, seeded, "whatsapp", WA)
    url = f"{server.url}/webhooks/whatsapp/{inbox['id']}"
    ok = await http.get(
        url, params={"hub.mode": "subscribe", "hub.verify_token": "vt-2", "hub.challenge": "1158201444"}
    )
    assert (ok.status_code, ok.text) == (200, "1158201444")
    bad = await http.get(url, params={"hub.mode": "subscribe", "hub.verify_token": "x", "hub.challenge": "1"})
    assert bad.status_code == 403 and "1" not in bad.text.replace("403", "")
    tg = await make_inbox(http, server, seeded, "telegram", TG)
    assert (await http.get(f"{server.url}/webhooks/telegram/{tg['id']}")).status_code == 403


async def test_whatsapp_message_profile_and_status(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    inbox = await make_inbox(http, server, seeded, "whatsapp", WA)
    body = json.dumps(WHATSAPP).encode()
    assert (await meta_post(http, server, "whatsapp", inbox["id"], body, "wa-s3cret")).status_code == 200
    assert (await meta_post(http, server, "whatsapp", inbox["id"], body, "wa-s3cret")).status_code == 200
    [conv] = [c for c in await conversations(http, server, seeded) if c["channel"] == "whatsapp"]
    assert conv["contact"]["name"] == "Sheena Nelson"
    assert conv["contact"]["phone"] == "+16505551234"
    [msg] = await messages(http, server, seeded, conv["id"])
    assert msg["text"] == "Does it come in another color?"

    status = json.loads(body)
    value = status["entry"][0]["changes"][0]["value"]
    del value["messages"], value["contacts"]
    value["statuses"] = [
        {"id": "wamid.OUT", "status": "read", "timestamp": "1749416400", "recipient_id": "16505551234"}
    ]
    r = await meta_post(http, server, "whatsapp", inbox["id"], json.dumps(status).encode(), "wa-s3cret")
    assert r.status_code == 200
    assert len(await messages(http, server, seeded, conv["id"])) == 1


async def test_messenger_echo_and_receipts_store_nothing(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    inbox = await make_inbox(http, server, seeded, "messenger", PAGE)
    echo = json.loads(json.dumps(MESSENGER))
    echo["entry"][0]["messaging"][0]["message"]["is_echo"] = True
    receipt = {
        "object": "page",
        "entry": [
            {
                "id": "PAGE_ID",
                "messaging": [
                    {"sender": {"id": "PSID1"}, "timestamp": 5, "delivery": {"mids": ["m1"], "watermark": 4}}
                ],
            }
        ],
    }
    for payload in (echo, receipt):
        r = await meta_post(
            http, server, "messenger", inbox["id"], json.dumps(payload).encode(), "app-s3cret"
        )
        assert r.status_code == 200
    assert [c for c in await conversations(http, server, seeded) if c["channel"] == "messenger"] == []
    body = json.dumps(MESSENGER).encode()
    assert (await meta_post(http, server, "messenger", inbox["id"], body, "app-s3cret")).status_code == 200
    [conv] = [c for c in await conversations(http, server, seeded) if c["channel"] == "messenger"]
    assert conv["contact"]["name"] == "Messenger user"
    assert [m["text"] for m in await messages(http, server, seeded, conv["id"])] == ["hello, world!"]


# -- Twilio -------------------------------------------------------------------------------------------------


async def test_sms_inbound_twiml_and_status_callback(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    inbox = await make_inbox(http, server, seeded, "sms", SMS)
    params = {
        "MessageSid": "SM1",
        "AccountSid": "AC1",
        "From": "+15551234567",
        "To": "+15550001111",
        "Body": "Hi ✓",
        "NumMedia": "0",
    }
    r = await sms_post(http, inbox["id"], server, params)
    assert (
        r.status_code == 200 and "<Response/>" in r.text and r.headers["content-type"].startswith("text/xml")
    )
    assert (await sms_post(http, inbox["id"], server, params)).status_code == 200
    [conv] = [c for c in await conversations(http, server, seeded) if c["channel"] == "sms"]
    assert conv["contact"]["phone"] == "+15551234567"
    assert [m["text"] for m in await messages(http, server, seeded, conv["id"])] == ["Hi ✓"]
    status = {"MessageSid": "SM9", "AccountSid": "AC1", "MessageStatus": "delivered", "To": "+15551234567"}
    assert (await sms_post(http, inbox["id"], server, status, "/status")).status_code == 200
    forged = await http.post(
        f"{server.url}/webhooks/sms/{inbox['id']}/status", data=status, headers={"X-Twilio-Signature": "AAAA"}
    )
    assert forged.status_code == 403
    assert len(await messages(http, server, seeded, conv["id"])) == 1


# -- bad input: each refused, nothing stored -----------------------------------------------------------------


@pytest.fixture
async def inboxes(http: httpx.AsyncClient, server: Server, seeded: Seed) -> AsyncIterator[dict[str, str]]:
    yield {
        "telegram": (await make_inbox(http, server, seeded, "telegram", TG))["id"],
        "whatsapp": (await make_inbox(http, server, seeded, "whatsapp", WA))["id"],
        "messenger": (await make_inbox(http, server, seeded, "messenger", PAGE))["id"],
        "sms": (await make_inbox(http, server, seeded, "sms", SMS))["id"],
    }


async def test_forged_or_missing_signatures_are_403(
    http: httpx.AsyncClient, server: Server, seeded: Seed, inboxes: dict[str, str]
) -> None:
    tg_body = json.dumps(TELEGRAM_UPDATE).encode()
    wa_body = json.dumps(WHATSAPP).encode()
    sms_params = {"MessageSid": "SM1", "AccountSid": "AC1", "From": "+1555", "Body": "x"}
    attempts = [
        http.post(f"{server.url}/webhooks/telegram/{inboxes['telegram']}", content=tg_body),
        http.post(
            f"{server.url}/webhooks/telegram/{inboxes['telegram']}",
            content=tg_body,
            headers={"X-Telegram-Bot-Api-Secret-Token": "tg-secret_2"},
        ),
        http.post(f"{server.url}/webhooks/whatsapp/{inboxes['whatsapp']}", content=wa_body),
        meta_post(http, server, "whatsapp", inboxes["whatsapp"], wa_body, "wrong-secret"),
        http.post(
            f"{server.url}/webhooks/whatsapp/{inboxes['whatsapp']}",
            content=wa_body + b" ",
            headers={"X-Hub-Signature-256": meta.signature("wa-s3cret", wa_body)},
        ),
        http.post(f"{server.url}/webhooks/sms/{inboxes['sms']}", data=sms_params),
        http.post(  # signed for the server's own address, not the public URL Twilio calls
            f"{server.url}/webhooks/sms/{inboxes['sms']}",
            data=sms_params,
            headers={
                "X-Twilio-Signature": twilio.signature(
                    SMS["auth_token"], f"{server.url}/webhooks/sms/{inboxes['sms']}", list(sms_params.items())
                )
            },
        ),
    ]
    for attempt in attempts:
        r = await attempt
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "forbidden"
    assert await conversations(http, server, seeded) == []


async def test_unknown_deleted_or_mismatched_inbox_is_404(
    http: httpx.AsyncClient, server: Server, seeded: Seed, inboxes: dict[str, str]
) -> None:
    body = json.dumps(TELEGRAM_UPDATE).encode()
    gone = await make_inbox(http, server, seeded, "telegram", TG)
    assert (
        await http.delete(f"{server.url}/api/v1/inboxes/{gone['id']}", headers=admin(seeded))
    ).status_code == 204
    for path in (
        "/webhooks/telegram/ib_nope",
        f"/webhooks/telegram/{gone['id']}",
        f"/webhooks/whatsapp/{inboxes['telegram']}",
        f"/webhooks/fax/{inboxes['telegram']}",
        f"/webhooks/telegram/{seeded.inbox_id}",  # the widget inbox
        f"/webhooks/telegram/{inboxes['telegram']}/status",
    ):
        r = await http.post(
            f"{server.url}{path}",
            content=body,
            headers={"X-Telegram-Bot-Api-Secret-Token": TG["secret_token"]},
        )
        assert r.status_code == 404, path
        assert r.json()["error"]["code"] == "not_found"
    assert await conversations(http, server, seeded) == []


async def test_body_over_one_megabyte_is_413(
    http: httpx.AsyncClient, server: Server, seeded: Seed, inboxes: dict[str, str]
) -> None:
    big = json.dumps({**TELEGRAM_UPDATE, "pad": "x" * (1024 * 1024)}).encode()
    headers = {"X-Telegram-Bot-Api-Secret-Token": TG["secret_token"]}
    r = await http.post(f"{server.url}/webhooks/telegram/{inboxes['telegram']}", content=big, headers=headers)
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: refused while reading
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    r = await http.post(
        f"{server.url}/webhooks/telegram/{inboxes['telegram']}", content=chunks(), headers=headers
    )
    assert r.status_code == 413
    assert await conversations(http, server, seeded) == []


async def test_non_utf8_or_invalid_json_is_400(
    http: httpx.AsyncClient, server: Server, seeded: Seed, inboxes: dict[str, str]
) -> None:
    for body in (b"\xff\xfe{}", b'{"update_id": ', b"not json"):
        r = await http.post(
            f"{server.url}/webhooks/telegram/{inboxes['telegram']}",
            content=body,
            headers={"X-Telegram-Bot-Api-Secret-Token": TG["secret_token"]},
        )
        assert r.status_code == 400, body
        assert r.json()["error"]["code"] == "bad_frame"
        r = await meta_post(http, server, "whatsapp", inboxes["whatsapp"], body, "wa-s3cret")
        assert r.status_code == 400, body
    latin1 = "Body=Caf\xe9&MessageSid=SM1&AccountSid=AC1&From=%2B1".encode("latin-1")
    sig = twilio.signature(SMS["auth_token"], f"{PUBLIC}/webhooks/sms/{inboxes['sms']}", [])
    r = await http.post(
        f"{server.url}/webhooks/sms/{inboxes['sms']}", content=latin1, headers={"X-Twilio-Signature": sig}
    )
    assert r.status_code == 403  # a body that cannot be read cannot carry a valid signature
    assert await conversations(http, server, seeded) == []


async def test_unknown_payloads_are_200_with_one_log_line(
    http: httpx.AsyncClient,
    server: Server,
    seeded: Seed,
    inboxes: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="chatserver.channels.inbound")
    edited = {"update_id": 5, "edited_message": TELEGRAM_UPDATE["message"]}
    for payload in (edited, {"hello": "world"}, [1, 2, 3]):
        caplog.clear()
        r = await tg_post(http, server, inboxes["telegram"], payload)
        assert r.status_code == 200
        lines = [rec for rec in caplog.records if rec.name == "chatserver.channels.inbound"]
        assert len(lines) == 1 and "nothing stored" in lines[0].getMessage()
    other = {"object": "instagram", "entry": []}
    caplog.clear()
    r = await meta_post(
        http, server, "messenger", inboxes["messenger"], json.dumps(other).encode(), "app-s3cret"
    )
    assert r.status_code == 200
    assert len([rec for rec in caplog.records if rec.name == "chatserver.channels.inbound"]) == 1
    assert await conversations(http, server, seeded) == []


async def test_telegram_chat_is_translated_like_a_widget_chat(
    tmp_path: Path, http: httpx.AsyncClient
) -> None:
    from tests.e2e.harness import run_server, seed, settings_for
    from tests.e2e.test_translation import GERMAN, GERMAN_ES
    from tests.translation.fakes import serve
    from tests.translation.helpers import make_fake

    async with serve(make_fake("libretranslate")) as fake:
        url = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
        s = await seed(url)
        settings = settings_for(
            url,
            tmp_path,
            translation_provider="libretranslate",
            translation_url=fake.url,
            translation_retry_s=0.2,
            languages=("de", "es", "en"),
        )
        async with run_server(settings) as server:
            auth = {"Authorization": f"Bearer {s.agent_token}"}
            assert (
                await http.patch(
                    f"{server.url}/api/v1/agents/{s.agent_id}", json={"language": "es"}, headers=auth
                )
            ).status_code == 200
            inbox = await make_inbox(http, server, s, "telegram", TG)
            async with Client.connect(f"{server.ws}/ws/agent", token=s.agent_token, origin=None) as agent:
                first = json.loads(json.dumps(TELEGRAM_UPDATE))
                first["message"]["text"] = GERMAN
                assert (await tg_post(http, server, inbox["id"], first)).status_code == 200
                conv = (await agent.expect("conversation", conversation__channel="telegram"))["conversation"]
                assert conv["language"] == "de"  # Telegram's language_code as the hint
                await agent.request({"type": "conversation.claim", "conversation_id": conv["id"]})
                second = json.loads(json.dumps(first))
                second["message"]["message_id"] += 1
                assert (await tg_post(http, server, inbox["id"], second)).status_code == 200
                original = await agent.expect(
                    "message", conversation_id=conv["id"], message__author__kind="contact"
                )
                assert original["message"]["text"] == GERMAN and original["message"]["lang"] == "de"
                tr = await agent.expect("message.translated", seq=original["seq"])
                assert (tr["lang"], tr["text"]) == ("es", GERMAN_ES)


async def test_a_platform_hanging_up_mid_body_is_no_server_error(
    http: httpx.AsyncClient,
    server: Server,
    seeded: Seed,
    inboxes: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            f"POST /webhooks/telegram/{inboxes['telegram']} HTTP/1.1\r\nHost: x\r\n"
            f"X-Telegram-Bot-Api-Secret-Token: {TG['secret_token']}\r\nContent-Length: 5000\r\n\r\n"
            '{"update_id": 1'
        ).encode()
    )
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.close()
    await writer.wait_closed()
    await asyncio.sleep(0.3)
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert await conversations(http, server, seeded) == []
