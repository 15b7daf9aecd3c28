"""Bad input gets a clear error, changes nothing, and disturbs no other connection (guarantee 9)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
import pytest

from chatserver.auth.secrets import sign_visitor_token
from tests.e2e.harness import SECRET, Client, Seed, Server, visitor_token


async def _messages(http: httpx.AsyncClient, server: Server, seeded: Seed, cid: str) -> list[dict[str, Any]]:
    r = await http.get(
        f"{server.url}/api/v1/conversations/{cid}/messages",
        headers={"Authorization": f"Bearer {seeded.agent_token}"},
    )
    assert r.status_code == 200
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def _visitor(http: httpx.AsyncClient, server: Server, seeded: Seed) -> tuple[str, str]:
    tok = (await visitor_token(http, server.url, seeded.inbox_key))["token"]
    async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
        ack = await v.request({"type": "conversation.start"})
    return tok, ack["conversation_id"]


SEND = '{"type": "message.send", "ref": "x", "conversation_id": "CID"'


@pytest.mark.parametrize(
    ("raw", "code", "field"),
    [
        ("{not json", "bad_frame", None),
        ("[1, 2, 3]", "bad_frame", None),
        ('"just a string"', "bad_frame", None),
        ('{"ref": "x"}', "invalid", "type"),
        ('{"type": 42, "ref": "x"}', "invalid", "type"),
        ('{"type": "message.explode", "ref": "x"}', "unknown_type", None),
        ('{"type": "message.send", "ref": "x"}', "invalid", "conversation_id"),
        (
            SEND + ', "client_id": "c"}',
            "invalid",
            "text",
        ),
        (
            SEND + ', "client_id": 7, "text": "hi"}',
            "invalid",
            "client_id",
        ),
        (
            SEND + ', "client_id": "c", "text": 5}',
            "invalid",
            "text",
        ),
        (
            SEND + ', "client_id": "c", "text": "   "}',
            "invalid",
            "text",
        ),
        (
            SEND + ', "client_id": "c", "text": "a\\u0000b"}',
            "invalid",
            "text",
        ),
        (
            SEND + ', "client_id": "c", "text": "t", "private": "yes"}',
            "invalid",
            "private",
        ),
        ('{"type": "typing", "ref": "x", "conversation_id": "CID", "state": "dancing"}', "invalid", "state"),
        ('{"type": "read", "ref": "x", "conversation_id": "CID", "seq": -1}', "invalid", "seq"),
        ('{"type": "resume", "ref": "x", "cursors": {"CID": "ten"}}', "invalid", "cursors"),
        ('{"type": "conversation.start", "ref": "x", "skills": {"billing": 9}}', "invalid", "skills.billing"),
        ('{"type": "conversation.claim", "ref": "x", "conversation_id": "CID"}', "forbidden", None),
        ('{"type": "status.set", "ref": "x", "status": "online"}', "forbidden", None),
        (
            SEND.replace("CID", "cv_nope") + ', "client_id": "c", "text": "hi"}',
            "not_found",
            None,
        ),
    ],
)
async def test_bad_visitor_frames_get_errors_and_change_nothing(
    http: httpx.AsyncClient, server: Server, seeded: Seed, raw: str, code: str, field: str | None
) -> None:
    tok, cid = await _visitor(http, server, seeded)
    async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
        await v.expect("hello")
        await v.ws.send(raw.replace("CID", cid))
        err = await v.expect("error")
        assert err["code"] == code, err
        if field is not None:
            assert err["data"]["field"] == field
        if '"ref"' in raw and code != "bad_frame":
            assert err["ref"] == "x"
        # the connection is still usable
        await v.send({"type": "ping", "ref": "still-there"})
        assert (await v.expect("pong"))["ref"] == "still-there"
    assert await _messages(http, server, seeded, cid) == []


async def test_text_over_the_limit_is_too_large_and_not_stored(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    tok, cid = await _visitor(http, server, seeded)
    limit = server.settings.max_text_bytes
    async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
        err = await v.request(
            {
                "type": "message.send",
                "conversation_id": cid,
                "client_id": "big",
                "text": "é" * (limit // 2 + 1),
            }
        )
        assert err["code"] == "too_large" and err["data"]["limit"] == limit
        ok = await v.request(
            {"type": "message.send", "conversation_id": cid, "client_id": "ok", "text": "x" * limit}
        )
        assert ok["type"] == "ack"
    assert [m["client_id"] for m in await _messages(http, server, seeded, cid)] == ["ok"]


async def test_frame_over_the_size_limit_closes_1009(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    tok, cid = await _visitor(http, server, seeded)
    async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
        await v.expect("hello")
        await v.ws.send("x" * (server.settings.max_frame_bytes + 1))
        assert await v.closed_with() == 1009
    assert await _messages(http, server, seeded, cid) == []


@pytest.mark.parametrize("kind", ["missing", "garbage", "forged", "expired"])
async def test_bad_visitor_token_closes_4401(server: Server, seeded: Seed, kind: str) -> None:
    token = {
        "missing": "",
        "garbage": "not-a-token",
        "forged": sign_visitor_token(
            "another-secret", "ct_x", seeded.inbox_id, int(time.time() * 1000) + 60_000
        ),
        "expired": sign_visitor_token(SECRET, "ct_x", seeded.inbox_id, int(time.time() * 1000) - 1),
    }[kind]
    async with Client.connect(f"{server.ws}/ws/visitor?token={token}") as v:
        assert await v.closed_with() == 4401


@pytest.mark.parametrize("kind", ["missing", "wrong"])
async def test_bad_agent_credentials_close_4401(server: Server, kind: str) -> None:
    token = None if kind == "missing" else "cst_wrong"
    async with Client.connect(f"{server.ws}/ws/agent", token=token, origin=None) as a:
        assert await a.closed_with() == 4401


async def test_foreign_origin_closes_4403(http: httpx.AsyncClient, server: Server, seeded: Seed) -> None:
    tok = (await visitor_token(http, server.url, seeded.inbox_key))["token"]
    async with Client.connect(f"{server.ws}/ws/visitor?token={tok}", origin="https://evil.example") as v:
        assert await v.closed_with() == 4403
    async with Client.connect(
        f"{server.ws}/ws/agent", token=seeded.agent_token, origin="https://evil.example"
    ) as a:
        assert await a.closed_with() == 4403
    # the console's own origin is accepted
    async with Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=server.url) as a:
        assert (await a.expect("hello"))["type"] == "hello"


async def test_widget_session_from_foreign_origin_is_refused(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    r = await http.post(
        f"{server.url}/api/v1/widget/sessions",
        json={"inbox_key": seeded.inbox_key},
        headers={"Origin": "https://evil.example"},
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    # the widget on that page can read why (CORS on errors too)
    assert r.headers["access-control-allow-origin"] == "https://evil.example"
    r = await http.post(f"{server.url}/api/v1/widget/sessions", json={"inbox_key": "nope"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await http.post(f"{server.url}/api/v1/widget/sessions", content=b"{oops")
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_frame"


async def test_another_visitors_conversation_is_forbidden(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    _, cid = await _visitor(http, server, seeded)
    other = (await visitor_token(http, server.url, seeded.inbox_key))["token"]
    async with Client.connect(f"{server.ws}/ws/visitor?token={other}") as v:
        for frame in (
            {"type": "message.send", "conversation_id": cid, "client_id": "x", "text": "let me in"},
            {"type": "typing", "conversation_id": cid, "state": "start"},
            {"type": "read", "conversation_id": cid, "seq": 0},
        ):
            err = await v.request(frame)
            assert err["code"] == "forbidden", err
        await v.send({"type": "resume", "cursors": {cid: 0}})
        resumed = await v.expect("resumed")
        assert resumed["cursors"] == {} and resumed["unknown"] == [cid]
        assert not [f for f in v.frames if f.get("type") == "message"]
    assert await _messages(http, server, seeded, cid) == []


async def test_hostile_text_is_stored_and_echoed_verbatim(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    tok, cid = await _visitor(http, server, seeded)
    texts = [
        "<script>alert('x')</script>",
        "'; DROP TABLE messages; --",
        '<img src=x onerror="alert(1)">',
        "{{7*7}}",
    ]
    async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
        for i, text in enumerate(texts):
            ack = await v.request(
                {"type": "message.send", "conversation_id": cid, "client_id": f"h{i}", "text": text}
            )
            echo = await v.expect("message", seq=ack["seq"])
            assert echo["message"]["text"] == text
    assert [m["text"] for m in await _messages(http, server, seeded, cid)] == texts


async def test_binary_frame_is_a_bad_frame(http: httpx.AsyncClient, server: Server, seeded: Seed) -> None:
    tok, _ = await _visitor(http, server, seeded)
    async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
        await v.ws.send(orjson.dumps({"type": "ping"}))  # bytes: a binary frame
        assert (await v.expect("error"))["code"] == "bad_frame"


@pytest.fixture
def server_overrides() -> dict[str, Any]:
    return {"rate_limit_per_s": 5.0, "rate_limit_burst": 10, "rate_limit_strikes": 15}


async def test_flooding_is_rate_limited_then_closed_4429_without_disturbing_others(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    tok, cid = await _visitor(http, server, seeded)
    calm_tok, calm_cid = await _visitor(http, server, seeded)
    async with (
        Client.connect(f"{server.ws}/ws/visitor?token={tok}") as flood,
        Client.connect(f"{server.ws}/ws/visitor?token={calm_tok}") as calm,
    ):
        await flood.expect("hello")
        for i in range(60):
            await flood.ws.send(orjson.dumps({"type": "ping", "ref": f"p{i}"}).decode())
        assert (await flood.expect("error", code="rate_limited"))["code"] == "rate_limited"
        assert await flood.closed_with() == 4429
        pongs = [f for f in flood.frames if f.get("type") == "pong"]
        assert 10 <= len(pongs) < 60
        ack = await calm.request(
            {"type": "message.send", "conversation_id": calm_cid, "client_id": "c", "text": "hi"}
        )
        assert ack["type"] == "ack"
    assert await _messages(http, server, seeded, cid) == []
