"""Files on channel messages, end to end: a real server, the platforms as local wire-compatible servers
(tests/adapters/fakes.py) that serve media the way each platform does. Inbound files are downloaded and
stored so the agent can fetch them; one that is too large or cannot be downloaded leaves a line in the
message and the message is never lost. An agent's files go out as signed links the platform fetches."""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.adapters import fakes
from tests.adapters.fakes import FakePlatforms
from tests.adapters.test_pure import MESSENGER, TELEGRAM_UPDATE
from tests.channels.test_replies import WA_SECRET, claimed, status, telegram_inbox, whatsapp_message
from tests.channels.test_states import twilio_post
from tests.channels.test_webhooks import PUBLIC, admin, make_inbox, messages, meta_post, tg_post
from tests.e2e.harness import Client, Seed, Server, run_server, settings_for

TG_SECRET = "tg-secret_1"
LIMIT = 64 * 1024
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360f8cfc0f01f0005"
    "0001ff5ccc4c6d0000000049454e44ae426082"
)
JPEG = b"\xff\xd8\xff\xe0" + b"photo-bytes" * 100 + b"\xff\xd9"
PDF = b"%PDF-1.4\n" + b"invoice " * 200 + b"\n%%EOF"


@pytest.fixture
def server_overrides() -> dict[str, Any]:
    return {"public_url": PUBLIC, "workers_in_serve": True, "outbox_retry_s": 0.2, "upload_max_bytes": LIMIT}


@pytest.fixture
async def platforms() -> AsyncIterator[FakePlatforms]:
    async with fakes.running() as fake:
        yield fake


def photo_update(update_id: int, message_id: int, file_id: str, caption: str | None = None) -> dict[str, Any]:
    update = copy.deepcopy(TELEGRAM_UPDATE)
    update["update_id"] = update_id
    message = update["message"]
    del message["text"]
    message["message_id"] = message_id
    message["photo"] = [
        {"file_id": "thumb", "file_unique_id": "t", "width": 90, "height": 90, "file_size": 100},
        {"file_id": file_id, "file_unique_id": "p", "width": 800, "height": 600},
    ]
    if caption is not None:
        message["caption"] = caption
    return update


def document_update(update_id: int, message_id: int, file_id: str, name: str, size: int) -> dict[str, Any]:
    update = copy.deepcopy(TELEGRAM_UPDATE)
    update["update_id"] = update_id
    message = update["message"]
    del message["text"]
    message["message_id"] = message_id
    message["document"] = {
        "file_id": file_id,
        "file_name": name,
        "mime_type": "application/zip",
        "file_size": size,
    }
    return update


def whatsapp_document(wamid: str, media_id: str, timestamp: int = 1749416383) -> dict[str, Any]:
    body = whatsapp_message(wamid, "x", timestamp)
    [m] = body["entry"][0]["changes"][0]["value"]["messages"]
    del m["text"]
    m["type"] = "document"
    m["document"] = {"id": media_id, "mime_type": "application/pdf", "filename": "invoice.pdf", "sha256": "x"}
    return body


async def whatsapp_inbox(http: httpx.AsyncClient, server: Server, seeded: Seed, fake: FakePlatforms) -> Any:
    config = {
        "phone_number_id": "106540352242922",
        "access_token": fakes.WA_TOKEN,
        "app_secret": WA_SECRET,
        "verify_token": "vt-2",
        "graph_base": fake.url,
    }
    return await make_inbox(http, server, seeded, "whatsapp", config)


async def sms_inbox(http: httpx.AsyncClient, server: Server, seeded: Seed, fake: FakePlatforms) -> Any:
    config = {
        "account_sid": fakes.TWILIO_SID,
        "auth_token": fakes.TWILIO_TOKEN,
        "from_number": "+15550001111",
        "api_base": fake.url,
    }
    return await make_inbox(http, server, seeded, "sms", config)


async def only_conversation(http: httpx.AsyncClient, server: Server, seeded: Seed, channel: str) -> str:
    r = await http.get(f"{server.url}/api/v1/conversations?limit=200", headers=admin(seeded))
    [conv] = [c for c in r.json()["items"] if c["channel"] == channel]
    cid: str = conv["id"]
    return cid


async def contact_messages(http: httpx.AsyncClient, server: Server, seeded: Seed, cid: str) -> list[Any]:
    return [m for m in await messages(http, server, seeded, cid) if m["author"]["kind"] == "contact"]


async def content(http: httpx.AsyncClient, server: Server, seeded: Seed, att_id: str) -> httpx.Response:
    return await http.get(f"{server.url}/api/v1/attachments/{att_id}/content", headers=admin(seeded))


# -- inbound ----------------------------------------------------------------------------------------------


async def test_a_telegram_photo_arrives_as_a_file_the_agent_can_fetch(
    http: httpx.AsyncClient, server: Server, seeded: Seed, platforms: FakePlatforms
) -> None:
    inbox = await telegram_inbox(http, server, seeded, platforms)
    platforms.add_media("AgADphoto", JPEG, "image/jpeg")
    update = photo_update(20001, 1400, "AgADphoto", "My receipt")
    r = await tg_post(http, server, inbox["id"], update, TG_SECRET)
    assert r.status_code == 200, r.text
    cid = await only_conversation(http, server, seeded, "telegram")
    [msg] = await contact_messages(http, server, seeded, cid)
    assert msg["text"] == "My receipt"
    [att] = msg["attachments"]
    assert att["content_type"] == "image/jpeg" and att["size"] == len(JPEG)
    assert att["name"] == "AgADphoto.jpg"  # the name of Telegram's file path
    got = await content(http, server, seeded, att["id"])
    assert got.status_code == 200 and got.content == JPEG
    # the largest size was fetched through getFile, never the thumbnail
    assert [c.body for c in platforms.sent("telegram") if c.path == "getFile"] == [{"file_id": "AgADphoto"}]
    assert [c.path for c in platforms.downloads()] == [f"/file/bot{fakes.BOT_TOKEN}/photos/AgADphoto.jpg"]

    # the platform retries the webhook: one message, nothing downloaded again
    r = await tg_post(
        http, server, inbox["id"], photo_update(20001, 1400, "AgADphoto", "My receipt"), TG_SECRET
    )
    assert r.status_code == 200
    assert len(await contact_messages(http, server, seeded, cid)) == 1
    assert len(platforms.downloads()) == 1


async def test_a_whatsapp_document_arrives_through_the_media_id(
    http: httpx.AsyncClient, server: Server, seeded: Seed, platforms: FakePlatforms
) -> None:
    inbox = await whatsapp_inbox(http, server, seeded, platforms)
    platforms.add_media("1037543291543636", PDF, "application/pdf")
    body = whatsapp_document("wamid.DOC1", "1037543291543636")
    r = await meta_post(http, server, "whatsapp", inbox["id"], _json(body), WA_SECRET)
    assert r.status_code == 200, r.text
    cid = await only_conversation(http, server, seeded, "whatsapp")
    [msg] = await contact_messages(http, server, seeded, cid)
    assert msg["text"] == ""  # a file without a caption: the file is the message
    [att] = msg["attachments"]
    assert (
        att["name"] == "invoice.pdf" and att["content_type"] == "application/pdf" and att["size"] == len(PDF)
    )
    got = await content(http, server, seeded, att["id"])
    assert got.status_code == 200 and got.content == PDF
    [lookup] = platforms.sent("graph_media")
    assert lookup.path == "/v21.0/1037543291543636"
    assert lookup.headers["authorization"] == f"Bearer {fakes.WA_TOKEN}"
    [download] = platforms.downloads()
    assert download.headers["authorization"] == f"Bearer {fakes.WA_TOKEN}"


async def test_a_too_large_file_is_not_stored_and_the_message_says_so(
    http: httpx.AsyncClient, server: Server, seeded: Seed, platforms: FakePlatforms
) -> None:
    inbox = await telegram_inbox(http, server, seeded, platforms)
    # Telegram states the size: over CHATSERVER_UPLOAD_MAX_BYTES, it is not even fetched
    update = document_update(20002, 1401, "BQADbig", "backup.zip", LIMIT + 1)
    assert (await tg_post(http, server, inbox["id"], update, TG_SECRET)).status_code == 200
    cid = await only_conversation(http, server, seeded, "telegram")
    [msg] = await contact_messages(http, server, seeded, cid)
    assert msg["text"] == "[file not stored: too large] backup.zip"
    assert msg["attachments"] == []
    assert (
        platforms.downloads() == [] and [c for c in platforms.sent("telegram") if c.path == "getFile"] == []
    )

    # a size stated by nobody but the download itself (Twilio): cut off at the limit, not stored
    sms = await sms_inbox(http, server, seeded, platforms)
    platforms.add_media("MEbig", b"v" * (LIMIT + 10), "video/mp4")
    params = {
        "AccountSid": fakes.TWILIO_SID,
        "MessageSid": "SMbig1",
        "From": "+15557654321",
        "To": "+15550001111",
        "Body": "my video",
        "NumMedia": "1",
        "MediaUrl0": platforms.twilio_media_url("SMbig1", "MEbig"),
        "MediaContentType0": "video/mp4",
    }
    assert (await twilio_post(http, server, sms["id"], params)).status_code == 200
    cid = await only_conversation(http, server, seeded, "sms")
    [msg] = await contact_messages(http, server, seeded, cid)
    assert msg["text"] == "my video\n[file not stored: too large] file.mp4"
    assert msg["attachments"] == []
    [download] = platforms.downloads()
    assert download.headers["authorization"].startswith("Basic ")  # Twilio's media need the account's auth


async def test_a_failing_download_keeps_the_message_with_the_placeholder(
    http: httpx.AsyncClient,
    server: Server,
    seeded: Seed,
    platforms: FakePlatforms,
    caplog: pytest.LogCaptureFixture,
) -> None:
    inbox = await telegram_inbox(http, server, seeded, platforms)
    platforms.add_media("AgADbroken", JPEG, "image/jpeg")
    platforms.fail_next("download", 502, {"error": "bad gateway"})
    caplog.set_level(logging.INFO)
    update = photo_update(20003, 1402, "AgADbroken", "see photo")
    assert (await tg_post(http, server, inbox["id"], update, TG_SECRET)).status_code == 200
    cid = await only_conversation(http, server, seeded, "telegram")
    [msg] = await contact_messages(http, server, seeded, cid)
    assert msg["text"] == "see photo\n[file not stored: download failed] AgADbroken.jpg"
    assert msg["attachments"] == []
    lines = [r.getMessage() for r in caplog.records if "not stored" in r.getMessage()]
    assert len(lines) == 1 and "HTTP 502" in lines[0]
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("chatserver"))
    assert fakes.BOT_TOKEN not in ours  # the download URL carries the token: never in our log lines

    # an unknown WhatsApp media id (the Graph API refuses it): the message is kept, with the line
    wa = await whatsapp_inbox(http, server, seeded, platforms)
    body = whatsapp_document("wamid.DOC2", "999")
    assert (await meta_post(http, server, "whatsapp", wa["id"], _json(body), WA_SECRET)).status_code == 200
    cid = await only_conversation(http, server, seeded, "whatsapp")
    [msg] = await contact_messages(http, server, seeded, cid)
    assert msg["text"] == "[file not stored: download failed] invoice.pdf"
    assert msg["attachments"] == []


# -- outbound ---------------------------------------------------------------------------------------------


async def agent_upload(
    http: httpx.AsyncClient, server: Server, seeded: Seed, cid: str, data: bytes, ctype: str, name: str
) -> dict[str, Any]:
    r = await http.post(
        f"{server.url}/api/v1/uploads",
        params={"conversation_id": cid},
        content=data,
        headers={"Authorization": f"Bearer {seeded.agent_token}", "Content-Type": ctype, "X-Filename": name},
    )
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def fetch_link(http: httpx.AsyncClient, server: Server, url: str) -> httpx.Response:
    assert url.startswith(f"{PUBLIC}/files/att_")
    return await http.get(server.url + url[len(PUBLIC) :])


async def test_an_agent_sends_a_png_to_telegram_text_first_then_the_photo(
    http: httpx.AsyncClient, server: Server, seeded: Seed, platforms: FakePlatforms
) -> None:
    inbox = await telegram_inbox(http, server, seeded, platforms)
    async with Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent:
        await agent.expect("hello")
        assert (await tg_post(http, server, inbox["id"], TELEGRAM_UPDATE, TG_SECRET)).status_code == 200
        conv = await claimed(agent, "telegram")
        att = await agent_upload(http, server, seeded, conv["id"], PNG, "image/png", "map.png")
        ack = await agent.request(
            {
                "type": "message.send",
                "conversation_id": conv["id"],
                "client_id": "f1",
                "text": "Here is the map",
                "attachments": [att["id"]],
            },
            timeout=10,
        )
        assert ack["type"] == "ack", ack
        await status(agent, ack["message_id"], "sent")
    sends = [c for c in platforms.sent("telegram") if c.path.startswith("send")]
    assert [c.path for c in sends] == ["sendMessage", "sendPhoto"]
    assert sends[0].body == {"chat_id": 1111111, "text": "Here is the map"}
    assert sends[1].body["chat_id"] == 1111111
    got = await fetch_link(http, server, sends[1].body["photo"])
    assert got.status_code == 200 and got.content == PNG
    stored = [m for m in await messages(http, server, seeded, conv["id"]) if m["author"]["kind"] == "agent"]
    assert [(m["text"], m["attachments"]) for m in stored] == [("Here is the map", [att])]
    assert [d["state"] for d in stored[0]["deliveries"]] == ["sent"]


async def test_an_agent_sends_a_png_by_sms_as_media_url(
    http: httpx.AsyncClient, server: Server, seeded: Seed, platforms: FakePlatforms
) -> None:
    inbox = await sms_inbox(http, server, seeded, platforms)
    inbound = {
        "AccountSid": fakes.TWILIO_SID,
        "MessageSid": "SMin1",
        "From": "+15557654321",
        "To": "+15550001111",
        "Body": "Where are you?",
        "NumMedia": "0",
    }
    async with Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent:
        await agent.expect("hello")
        assert (await twilio_post(http, server, inbox["id"], inbound)).status_code == 200
        conv = await claimed(agent, "sms")
        att = await agent_upload(http, server, seeded, conv["id"], PNG, "image/png", "map.png")
        ack = await agent.request(
            {
                "type": "message.send",
                "conversation_id": conv["id"],
                "client_id": "m1",
                "attachments": [att["id"]],
            },
            timeout=10,
        )
        assert ack["type"] == "ack", ack
        await status(agent, ack["message_id"], "sent")
    [call] = platforms.sent("twilio")
    sent = dict(call.body)
    assert "Body" not in sent and sent["To"] == "+15557654321"
    got = await fetch_link(http, server, sent["MediaUrl"])
    assert got.status_code == 200 and got.content == PNG

    # a file already sent cannot be sent again; nothing more goes out
    again = await _send_files(server, seeded, conv["id"], [att["id"]], "m2")
    assert again["type"] == "error" and again["code"] == "invalid", again
    assert len(platforms.sent("twilio")) == 1


async def _send_files(
    server: Server, seeded: Seed, cid: str, ids: list[str], client_id: str
) -> dict[str, Any]:
    async with Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent:
        await agent.expect("hello")
        return await agent.request(
            {"type": "message.send", "conversation_id": cid, "client_id": client_id, "attachments": ids},
            timeout=10,
        )


async def test_without_a_public_url_files_are_refused_and_nothing_is_stored(
    http: httpx.AsyncClient, sqlite_url: str, seeded: Seed, tmp_path: Path, platforms: FakePlatforms
) -> None:
    settings = settings_for(sqlite_url, tmp_path, workers_in_serve=True, upload_max_bytes=LIMIT)
    async with run_server(settings) as server:
        inbox = await telegram_inbox(http, server, seeded, platforms)
        assert (await tg_post(http, server, inbox["id"], TELEGRAM_UPDATE, TG_SECRET)).status_code == 200
        async with Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent:
            await agent.expect("hello")
            conv = await claimed(agent, "telegram")
            att = await agent_upload(http, server, seeded, conv["id"], PNG, "image/png", "map.png")
            refused = await agent.request(
                {
                    "type": "message.send",
                    "conversation_id": conv["id"],
                    "client_id": "x1",
                    "text": "map",
                    "attachments": [att["id"]],
                },
                timeout=10,
            )
            assert refused["type"] == "error" and refused["code"] == "invalid", refused
            assert "CHATSERVER_PUBLIC_URL" in refused["message"]
        stored = await messages(http, server, seeded, conv["id"])
        assert [m for m in stored if m["author"]["kind"] == "agent"] == []
        assert [c for c in platforms.sent("telegram") if c.path.startswith("send")] == []


def _json(body: Any) -> bytes:
    return json.dumps(body).encode()


async def test_a_messenger_image_and_a_whatsapp_document_reply(
    http: httpx.AsyncClient, server: Server, seeded: Seed, platforms: FakePlatforms
) -> None:
    # Messenger: the attachment's payload.url is a CDN link, fetched without credentials
    page = {
        "page_id": "PAGE_ID",
        "page_access_token": fakes.PAGE_TOKEN,
        "app_secret": "app-s3cret",
        "verify_token": "vt-1",
        "graph_base": platforms.url,
    }
    inbox = await make_inbox(http, server, seeded, "messenger", page)
    platforms.add_media("scontent/photo1.png", PNG, "image/png")
    event = copy.deepcopy(MESSENGER)
    event["entry"][0]["messaging"][0]["message"] = {
        "mid": "m_IMG1",
        "attachments": [{"type": "image", "payload": {"url": platforms.media_url("scontent/photo1.png")}}],
    }
    assert (
        await meta_post(http, server, "messenger", inbox["id"], _json(event), "app-s3cret")
    ).status_code == 200
    cid = await only_conversation(http, server, seeded, "messenger")
    [msg] = await contact_messages(http, server, seeded, cid)
    [att] = msg["attachments"]
    assert msg["text"] == "" and att["content_type"] == "image/png" and att["name"] == "image.png"
    assert (await content(http, server, seeded, att["id"])).content == PNG
    assert "authorization" not in platforms.downloads()[0].headers

    # WhatsApp: an agent's PDF goes out as a document with its name, after the text
    wa = await whatsapp_inbox(http, server, seeded, platforms)
    async with Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent:
        await agent.expect("hello")
        body = whatsapp_message("wamid.HI", "Send me the invoice", int(time.time()))
        assert (
            await meta_post(http, server, "whatsapp", wa["id"], _json(body), WA_SECRET)
        ).status_code == 200
        conv = await claimed(agent, "whatsapp")
        doc = await agent_upload(http, server, seeded, conv["id"], PDF, "application/pdf", "invoice.pdf")
        ack = await agent.request(
            {
                "type": "message.send",
                "conversation_id": conv["id"],
                "client_id": "w1",
                "text": "Here it is",
                "attachments": [doc["id"]],
            },
            timeout=10,
        )
        assert ack["type"] == "ack", ack
        await status(agent, ack["message_id"], "sent")
    text, document = [c.body for c in platforms.sent("graph") if c.body.get("messaging_product")]
    assert text["type"] == "text" and text["text"]["body"] == "Here it is"
    assert document["type"] == "document" and document["document"]["filename"] == "invoice.pdf"
    got = await fetch_link(http, server, document["document"]["link"])
    assert got.status_code == 200 and got.content == PDF


async def test_a_refused_photo_is_retried_alone_after_the_accepted_text(
    http: httpx.AsyncClient, server: Server, seeded: Seed, platforms: FakePlatforms
) -> None:
    inbox = await telegram_inbox(http, server, seeded, platforms)
    async with Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent:
        await agent.expect("hello")
        assert (await tg_post(http, server, inbox["id"], TELEGRAM_UPDATE, TG_SECRET)).status_code == 200
        conv = await claimed(agent, "telegram")
        att = await agent_upload(http, server, seeded, conv["id"], PNG, "image/png", "map.png")
        platforms.fail_next("sendPhoto", 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"})
        ack = await agent.request(
            {
                "type": "message.send",
                "conversation_id": conv["id"],
                "client_id": "r1",
                "text": "The map:",
                "attachments": [att["id"]],
            },
            timeout=10,
        )
        assert ack["type"] == "ack", ack
        queued = await status(agent, ack["message_id"], "queued")
        assert "Bad Gateway" in queued["reason"]
        await status(agent, ack["message_id"], "sent")
    sends = [c.path for c in platforms.sent("telegram") if c.path.startswith("send")]
    assert sends == ["sendMessage", "sendPhoto", "sendPhoto"]  # the accepted text never twice


async def test_files_over_the_platforms_limit_are_refused_before_anything_is_stored(
    http: httpx.AsyncClient, sqlite_url: str, seeded: Seed, tmp_path: Path, platforms: FakePlatforms
) -> None:
    mb = 1024 * 1024
    settings = settings_for(sqlite_url, tmp_path, public_url=PUBLIC, upload_max_bytes=8 * mb)
    async with run_server(settings) as server:
        inbox = await sms_inbox(http, server, seeded, platforms)
        inbound = {
            "AccountSid": fakes.TWILIO_SID,
            "MessageSid": "SMin9",
            "From": "+15557654321",
            "To": "+15550001111",
            "Body": "Photos please",
            "NumMedia": "0",
        }
        async with Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent:
            await agent.expect("hello")
            assert (await twilio_post(http, server, inbox["id"], inbound)).status_code == 200
            conv = await claimed(agent, "sms")
            ids = [
                (
                    await agent_upload(
                        http, server, seeded, conv["id"], PNG + bytes([i]) * (3 * mb), "image/png", "p.png"
                    )
                )["id"]
                for i in range(2)
            ]
            refused = await agent.request(
                {
                    "type": "message.send",
                    "conversation_id": conv["id"],
                    "client_id": "big",
                    "attachments": ids,
                },
                timeout=10,
            )
            assert refused["type"] == "error" and refused["code"] == "invalid", refused
            assert "together" in refused["message"]
            # one of them fits: it goes out
            ack = await agent.request(
                {
                    "type": "message.send",
                    "conversation_id": conv["id"],
                    "client_id": "one",
                    "attachments": ids[:1],
                },
                timeout=10,
            )
            assert ack["type"] == "ack", ack
        agent_messages = [
            m for m in await messages(http, server, seeded, conv["id"]) if m["author"]["kind"] == "agent"
        ]
        assert [[a["id"] for a in m["attachments"]] for m in agent_messages] == [ids[:1]]
