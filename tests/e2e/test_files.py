"""Files in conversations: a visitor uploads a photo and sends it, the agent sees it and fetches it, the
visitor gets a signed link; every bad upload is refused and changes nothing."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from chatserver.files.model import sign_link
from tests.e2e.harness import ORIGIN, SECRET, Client, Seed, Server, visitor_token

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360f8cfc0f01f0005"
    "0001ff5ccc4c6d0000000049454e44ae426082"
)


@pytest.fixture
def server_overrides() -> dict[str, Any]:
    return {"upload_max_bytes": 64 * 1024}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def upload(
    http: httpx.AsyncClient, server: Server, token: str, cid: str, data: bytes, ctype: str, name: str
) -> httpx.Response:
    return await http.post(
        f"{server.url}/api/v1/widget/uploads",
        params={"conversation_id": cid},
        content=data,
        headers={**bearer(token), "Content-Type": ctype, "X-Filename": name, "Origin": ORIGIN},
    )


async def test_a_visitor_sends_a_photo_the_agent_sees_and_fetches_it(
    server: Server, seeded: Seed, http: httpx.AsyncClient
) -> None:
    tok = (await visitor_token(http, server.url, seeded.inbox_key))["token"]
    async with (
        Client.connect(f"{server.ws}/ws/visitor?token={tok}") as visitor,
        Client.connect(f"{server.ws}/ws/agent", token=seeded.admin_token, origin=None) as agent,
    ):
        await visitor.expect("hello")
        await agent.expect("hello")
        cid = (await visitor.request({"type": "conversation.start"}))["conversation_id"]
        await agent.request({"type": "conversation.view", "conversation_id": cid})
        r = await upload(http, server, tok, cid, PNG, "image/png", "R%C3%A9sum%C3%A9%20photo.png")
        assert r.status_code == 201, r.text
        assert r.headers["access-control-allow-origin"] == ORIGIN
        att = r.json()
        assert att["name"] == "Résumé photo.png" and att["content_type"] == "image/png"
        assert att["size"] == len(PNG) and att["id"].startswith("att_")

        ack = await visitor.request(
            {"type": "message.send", "conversation_id": cid, "client_id": "p1", "attachments": [att["id"]]}
        )
        assert ack["type"] == "ack", ack
        got = await agent.expect("message", conversation_id=cid, message__client_id="p1", timeout=10)
        assert got["message"]["attachments"] == [att] and got["message"]["text"] == ""

        # the agent fetches it with their credentials; shown inline, never sniffed
        content = await http.get(
            f"{server.url}/api/v1/attachments/{att['id']}/content", headers=bearer(seeded.admin_token)
        )
        assert content.status_code == 200 and content.content == PNG
        assert content.headers["content-type"] == "image/png"
        assert content.headers["x-content-type-options"] == "nosniff"
        assert content.headers["content-disposition"].startswith("inline;")
        assert "sandbox" in content.headers["content-security-policy"]
        assert (await http.get(f"{server.url}/api/v1/attachments/{att['id']}/content")).status_code == 401

        # the visitor gets a short-lived signed link; a tampered or expired one is refused
        link = await http.get(f"{server.url}/api/v1/widget/attachments/{att['id']}/link", headers=bearer(tok))
        assert link.status_code == 200, link.text
        url = link.json()["url"]
        assert link.json()["expires_at"] > time.time()
        fetched = await http.get(server.url + url)
        assert fetched.status_code == 200 and fetched.content == PNG
        assert (await http.get(server.url + url[:-1] + ("0" if url[-1] != "0" else "1"))).status_code == 403
        expired = f"/files/{att['id']}?{sign_link(SECRET, att['id'], int(time.time()) - 1)}"
        assert (await http.get(server.url + expired)).status_code == 403
        assert (await http.get(f"{server.url}/files/{att['id']}")).status_code == 403

        # history carries the file too
        history = await http.get(
            f"{server.url}/api/v1/conversations/{cid}/messages", headers=bearer(seeded.admin_token)
        )
        assert [m["attachments"] for m in history.json()["items"] if m["client_id"] == "p1"] == [[att]]

        # sent once: the same upload cannot go out on a second message
        again = await visitor.request(
            {"type": "message.send", "conversation_id": cid, "client_id": "p2", "attachments": [att["id"]]}
        )
        assert again["type"] == "error" and again["code"] == "invalid"
        assert again["data"]["field"] == "attachments.0"

        # an agent sends a file back
        ar = await http.post(
            f"{server.url}/api/v1/uploads",
            params={"conversation_id": cid},
            content=b"%PDF-1.4 invoice",
            headers={
                **bearer(seeded.admin_token),
                "Content-Type": "application/pdf",
                "X-Filename": "inv.pdf",
            },
        )
        assert ar.status_code == 201, ar.text
        await agent.request({"type": "conversation.claim", "conversation_id": cid})
        sent = await agent.request(
            {
                "type": "message.send",
                "conversation_id": cid,
                "client_id": "a1",
                "text": "Your invoice",
                "attachments": [ar.json()["id"]],
            }
        )
        assert sent["type"] == "ack", sent
        seen = await visitor.expect("message", message__client_id="a1", timeout=10)
        assert seen["message"]["attachments"] == [ar.json()]
        pdf_link = await http.get(
            f"{server.url}/api/v1/widget/attachments/{ar.json()['id']}/link", headers=bearer(tok)
        )
        pdf = await http.get(server.url + pdf_link.json()["url"])
        assert pdf.content == b"%PDF-1.4 invoice"
        assert pdf.headers["content-type"] == "application/pdf"
        assert pdf.headers["content-disposition"].startswith("attachment;")


async def test_bad_uploads_are_refused_and_change_nothing(
    server: Server, seeded: Seed, http: httpx.AsyncClient
) -> None:
    tok = (await visitor_token(http, server.url, seeded.inbox_key))["token"]
    other = (await visitor_token(http, server.url, seeded.inbox_key))["token"]
    async with (
        Client.connect(f"{server.ws}/ws/visitor?token={tok}") as visitor,
        Client.connect(f"{server.ws}/ws/visitor?token={other}") as stranger,
    ):
        await visitor.expect("hello")
        await stranger.expect("hello")
        cid = (await visitor.request({"type": "conversation.start"}))["conversation_id"]
        other_cid = (await stranger.request({"type": "conversation.start"}))["conversation_id"]

        # no token, a forged token, someone else's conversation, an unknown one
        r = await http.post(
            f"{server.url}/api/v1/widget/uploads", params={"conversation_id": cid}, content=PNG
        )
        assert r.status_code == 401
        assert (await upload(http, server, tok + "x", cid, PNG, "image/png", "a.png")).status_code == 401
        assert (await upload(http, server, other, cid, PNG, "image/png", "a.png")).status_code == 403
        assert (await upload(http, server, tok, "cv_nope", PNG, "image/png", "a.png")).status_code == 404
        # a type that is not accepted (a page, a script), none, a malformed one
        for ctype in ("text/html", "image/svg+xml", "application/x-msdownload", "", "not a type"):
            r = await upload(http, server, tok, cid, b"<script>alert(1)</script>", ctype, "x.html")
            assert r.status_code == 422, (ctype, r.text)
            assert r.json()["error"]["data"]["field"] == "content_type"
        # empty, and over the limit (refused before it is read)
        assert (await upload(http, server, tok, cid, b"", "image/png", "e.png")).status_code == 422
        big = await upload(http, server, tok, cid, b"\0" * (64 * 1024 + 1), "image/png", "big.png")
        assert big.status_code == 413
        # a path in the name is flattened
        ok = await upload(http, server, tok, cid, PNG, "image/png", "..%2F..%2Fetc%2Fpasswd")
        assert ok.status_code == 201 and "/" not in ok.json()["name"]

        # frames: someone else's upload, an unknown id, a bad list
        theirs = (await upload(http, server, other, other_cid, PNG, "image/png", "t.png")).json()
        for attachments, field in (
            ([theirs["id"]], "attachments.0"),
            (["att_unknown"], "attachments.0"),
            ("att_x", "attachments"),
            ([ok.json()["id"], ok.json()["id"]], "attachments"),
            ([f"att_{i}" for i in range(11)], "attachments"),
        ):
            err = await visitor.request(
                {"type": "message.send", "conversation_id": cid, "client_id": "b", "attachments": attachments}
            )
            assert err["type"] == "error" and err["code"] == "invalid", err
            assert err["data"]["field"] == field
        # a visitor cannot get a link to someone else's file, nor learn that it exists
        denied = await http.get(
            f"{server.url}/api/v1/widget/attachments/{theirs['id']}/link", headers=bearer(tok)
        )
        assert denied.status_code == 404
        # nothing was sent by any of it
        history = await http.get(
            f"{server.url}/api/v1/conversations/{cid}/messages", headers=bearer(seeded.admin_token)
        )
        assert [m for m in history.json()["items"] if m["author"]["kind"] == "contact"] == []
