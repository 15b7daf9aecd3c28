"""A visitor asks for their conversation by email: what they saw (never a private note, never an agent's
id) reaches an aiosmtpd sink; every bad request is refused and sends nothing."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.e2e.harness import ORIGIN, Client, Seed, run_server, seed, settings_for, visitor_token
from tests.mail.test_outbound import received
from tests.outbox.smtp_server import smtp_server


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Origin": ORIGIN}


async def test_the_transcript_reaches_the_visitor_by_email(tmp_path: Path, http: httpx.AsyncClient) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 't.db'}"
    s: Seed = await seed(url)
    with smtp_server() as smtp:
        settings = settings_for(url, tmp_path, smtp_url=smtp.url, workers_in_serve=True, outbox_retry_s=1.0)
        async with run_server(settings) as server:
            tok = (await visitor_token(http, server.url, s.inbox_key))["token"]
            other = (await visitor_token(http, server.url, s.inbox_key))["token"]
            async with (
                Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v,
                Client.connect(f"{server.ws}/ws/agent", token=s.admin_token, origin=None) as agent,
            ):
                await v.expect("hello")
                await agent.expect("hello")
                cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
                await v.request(
                    {
                        "type": "message.send",
                        "conversation_id": cid,
                        "client_id": "v1",
                        "text": "Where is my parcel?",
                    }
                )
                await agent.request({"type": "conversation.claim", "conversation_id": cid})
                for client_id, text, private in (
                    ("a1", "It ships today.", False),
                    ("a2", "VIP, be nice", True),
                ):
                    await agent.request(
                        {
                            "type": "message.send",
                            "conversation_id": cid,
                            "client_id": client_id,
                            "text": text,
                            "private": private,
                        }
                    )
                await agent.request({"type": "conversation.close", "conversation_id": cid})

            ask = f"{server.url}/api/v1/widget/transcript"
            # no email known yet: 409 saying so; no token, a forged one, someone else's conversation
            r = await http.post(ask, json={"conversation_id": cid}, headers=bearer(tok))
            assert r.status_code == 409 and r.json()["error"]["data"]["reason"] == "no_email", r.text
            assert (await http.post(ask, json={"conversation_id": cid})).status_code == 401
            assert (
                await http.post(ask, json={"conversation_id": cid}, headers=bearer(tok + "x"))
            ).status_code == 401
            assert (
                await http.post(ask, json={"conversation_id": cid}, headers=bearer(other))
            ).status_code == 403
            assert (await http.post(ask, json={}, headers=bearer(tok))).status_code == 422
            contact = await http.post(
                f"{server.url}/api/v1/widget/contact", json={"email": "tess@example.com"}, headers=bearer(tok)
            )
            assert contact.status_code == 200, contact.text
            r = await http.post(ask, json={"conversation_id": cid}, headers=bearer(tok))
            assert r.status_code == 202 and r.json()["to"] == "tess@example.com", r.text
            again = await http.post(ask, json={"conversation_id": cid}, headers=bearer(tok))
            assert again.status_code == 429 and again.json()["error"]["data"]["retry_after_s"] > 0
            await received(smtp, 1)
    (mail,) = smtp.mailbox.received  # one mail, whatever was asked
    assert mail["To"].endswith("<tess@example.com>") or mail["To"] == "tess@example.com"
    assert mail["Subject"] == "Your conversation with Web"
    assert mail["Auto-Submitted"] == "auto-generated"
    body = mail.get_content()
    assert "Where is my parcel?" in body and "It ships today." in body and "Ada:" in body
    assert "VIP" not in body and s.admin_id not in body


async def test_without_email_configured_the_server_says_so(tmp_path: Path, http: httpx.AsyncClient) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'n.db'}"
    s = await seed(url)
    async with run_server(settings_for(url, tmp_path)) as server:
        session = await visitor_token(http, server.url, s.inbox_key)
        async with Client.connect(f"{server.ws}/ws/visitor?token={session['token']}") as v:
            await v.expect("hello")
            cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
        await http.post(
            f"{server.url}/api/v1/widget/contact",
            json={"email": "a@example.com"},
            headers=bearer(session["token"]),
        )
        r = await http.post(
            f"{server.url}/api/v1/widget/transcript",
            json={"conversation_id": cid},
            headers=bearer(session["token"]),
        )
        assert r.status_code == 503 and "not configured" in r.json()["error"]["message"]
