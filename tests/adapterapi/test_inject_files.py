"""Files on a custom channel's injected messages, against a real server: ``attachments: [{name?,
content_type, data (base64)}]`` over REST and ``message.inject``, stored through the shared file store and
shown to agents like a widget file; a file too large, of a type not accepted, not base64, or a body over
the limit is refused (413/422) with nothing stored."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from chatserver.adapterapi.frames import decoded_size, inject_body_limit
from chatserver.client import AdapterClient, ClientError, File
from tests.adapterapi.helpers import admin, create_adapter
from tests.e2e.harness import Client, Seed, Server

MAX_FILE = 4096
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489") + b"\x00" * 40


@pytest.fixture
def server_overrides() -> dict[str, Any]:
    return {"upload_max_bytes": MAX_FILE}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def _count(sqlite_url: str, table: str) -> int:
    engine = create_async_engine(sqlite_url)
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(sa.text(f"SELECT count(*) FROM {table}")) or 0)
    finally:
        await engine.dispose()


async def test_injected_files_are_stored_and_shown_like_widget_files(
    http: httpx.AsyncClient, server: Server, seeded: Seed, sqlite_url: str, tmp_path: Path
) -> None:
    inbox = (
        await http.post(
            f"{server.url}/api/v1/inboxes", json={"name": "Files", "channel": "api"}, headers=admin(seeded)
        )
    ).json()["id"]
    bridge = await create_adapter(http, server, seeded, kind="channel", inboxes=[inbox], name="Files")
    auth = {"Authorization": f"Bearer {bridge['token']}"}
    agent_auth = {"Authorization": f"Bearer {seeded.agent_token}"}
    url = f"{server.url}/api/v1/adapter/messages"
    base = {"inbox_id": inbox, "contact": {"external_id": "u-7", "name": "Sam"}}
    pdf = b"%PDF-1.4\n" + b"x" * 200

    r = await http.post(
        url,
        json={
            **base,
            "external_id": "f-1",
            "text": "my receipt",
            "attachments": [
                {"name": "../../etc/photo.png", "content_type": "image/png", "data": _b64(PNG)},
                {"name": "receipt.pdf", "content_type": "application/pdf", "data": _b64(pdf)},
            ],
        },
        headers=auth,
    )
    assert r.status_code == 201, r.text
    message, cid = r.json()["message"], r.json()["conversation_id"]
    assert message["text"] == "my receipt"
    photo, receipt = message["attachments"]
    assert photo["name"] == "photo.png" and photo["content_type"] == "image/png" and photo["size"] == len(PNG)
    assert receipt["name"] == "receipt.pdf" and receipt["size"] == len(pdf)
    # the agent opens them as it opens a widget visitor's files
    for att, data in ((photo, PNG), (receipt, pdf)):
        got = await http.get(f"{server.url}/api/v1/attachments/{att['id']}/content", headers=agent_auth)
        assert got.status_code == 200 and got.content == data
    history = await http.get(f"{server.url}/api/v1/conversations/{cid}/messages", headers=agent_auth)
    [shown] = [m for m in history.json()["items"] if m["id"] == message["id"]]
    assert [a["id"] for a in shown["attachments"]] == [photo["id"], receipt["id"]]
    # the same platform id again: the stored message, no second copy of the files
    files_before = await _count(sqlite_url, "attachments")
    again = await http.post(
        url,
        json={
            **base,
            "external_id": "f-1",
            "text": "my receipt",
            "attachments": [{"content_type": "image/png", "data": _b64(PNG)}],
        },
        headers=auth,
    )
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["message"]["id"] == message["id"]
    assert await _count(sqlite_url, "attachments") == files_before

    # over the socket: a file alone (no text), seen live by the agent with its files
    async with (
        Client.connect(f"{server.ws}/ws/adapter", token=bridge["token"], origin=None) as ch,
        Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent,
    ):
        await ch.expect("snapshot")
        await agent.expect("hello")
        await agent.request({"type": "conversation.view", "conversation_id": cid})
        ack = await ch.request(
            {
                "type": "message.inject",
                **base,
                "external_id": "f-2",
                "attachments": [{"name": "pic.png", "content_type": "image/png", "data": _b64(PNG)}],
            }
        )
        assert ack["type"] == "ack" and ack["conversation_id"] == cid, ack
        live = await agent.expect("message", conversation_id=cid, seq=ack["seq"])
        assert live["message"]["text"] == "" and live["message"]["attachments"][0]["name"] == "pic.png"
        bad = await ch.request(
            {
                "type": "message.inject",
                **base,
                "external_id": "f-3",
                "attachments": [{"content_type": "text/html", "data": _b64(b"<script>")}],
            }
        )
        assert bad["type"] == "error" and bad["code"] == "invalid", bad
        assert bad["data"]["field"] == "attachments.0"

    # bad files: refused, nothing stored (no message, no file), the id still free afterwards
    messages_before = await _count(sqlite_url, "messages")
    files_before = await _count(sqlite_url, "attachments")
    too_big = b"\x01" * (MAX_FILE + 1)
    cases: list[tuple[Any, int, str]] = [
        ([{"content_type": "image/png", "data": _b64(too_big)}], 413, "too_large"),
        (
            [{"content_type": "image/png", "data": _b64(PNG)}, {"content_type": "text/html", "data": "PGI+"}],
            422,
            "invalid",
        ),
        ([{"content_type": "image/svg+xml", "data": _b64(b"<svg/>")}], 422, "invalid"),
        ([{"content_type": "image/png", "data": "not base64!"}], 422, "invalid"),
        ([{"content_type": "image/png", "data": "aGk=\n"}], 422, "invalid"),
        ([{"content_type": "image/png", "data": ""}], 422, "invalid"),
        ([{"content_type": "image/png"}], 422, "invalid"),
        ([{"data": _b64(PNG)}], 422, "invalid"),
        (
            [{"content_type": "image/png", "data": _b64(PNG), "url": "http://169.254.169.254/"}],
            422,
            "invalid",
        ),
        ([{"content_type": "image/png", "data": _b64(PNG)}] * 11, 422, "invalid"),
        ("a file", 422, "invalid"),
        (["a file"], 422, "invalid"),
    ]
    for attachments, status, code in cases:
        r = await http.post(
            url, json={**base, "external_id": "f-bad", "text": "x", "attachments": attachments}, headers=auth
        )
        assert r.status_code == status and r.json()["error"]["code"] == code, (attachments, r.text)
    r = await http.post(url, json={**base, "external_id": "f-bad", "attachments": []}, headers=auth)
    assert r.status_code == 422  # no files and no text
    # a body over the limit is refused from its Content-Length, before it is read
    limit = inject_body_limit(256 * 1024, MAX_FILE)
    huge = _b64(b"\x02" * limit)
    r = await http.post(
        url,
        json={**base, "external_id": "f-bad", "attachments": [{"content_type": "image/png", "data": huge}]},
        headers=auth,
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    assert await _count(sqlite_url, "messages") == messages_before
    assert await _count(sqlite_url, "attachments") == files_before
    r = await http.post(url, json={**base, "external_id": "f-bad", "text": "fine now"}, headers=auth)
    assert r.status_code == 201 and r.json()["duplicate"] is False

    # the Python client sends files the same way, and raises the server's refusal
    client = AdapterClient(server.url, bridge["token"])
    sent = await client.inject_rest(
        inbox, base["contact"], "f-4", "", files=[File("scan.pdf", "application/pdf", pdf)]
    )
    [att] = sent["message"]["attachments"]
    assert att["name"] == "scan.pdf" and att["size"] == len(pdf)
    with pytest.raises(ClientError) as refused:
        await client.inject_rest(
            inbox, base["contact"], "f-5", "", files=[File("a.svg", "image/svg+xml", b"<svg/>")]
        )
    assert refused.value.code == "invalid"


def test_the_decoded_size_is_known_from_the_base64_length() -> None:
    for n in range(0, 12):
        data = bytes(range(n))
        assert decoded_size(_b64(data)) == n
