"""A plain smtplib client -> our inbound SMTP server -> a conversation, live on the agent WebSocket."""

from __future__ import annotations

import asyncio
import io
import logging
import smtplib
import ssl
import subprocess
import zipfile
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from chatserver.mail.store import MailStore
from tests.e2e.harness import Client, Seed, Server
from tests.mail.helpers import ADDRESS, mail, mail_services, send, wire


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def messages(
    http: httpx.AsyncClient, server: Server, seeded: Seed, cid: str
) -> list[dict[str, object]]:
    r = await http.get(
        f"{server.url}/api/v1/conversations/{cid}/messages?after=0", headers=auth(seeded.admin_token)
    )
    assert r.status_code == 200, r.text
    items: list[dict[str, object]] = r.json()["items"]
    return items


async def conversations(http: httpx.AsyncClient, server: Server, seeded: Seed) -> list[dict[str, object]]:
    r = await http.get(f"{server.url}/api/v1/conversations?limit=200", headers=auth(seeded.admin_token))
    assert r.status_code == 200, r.text
    return [c for c in r.json()["items"] if c["channel"] == "email"]


async def test_mail_becomes_a_live_conversation_and_replies_join_it(
    server: Server, seeded: Seed, http: httpx.AsyncClient
) -> None:
    async with (
        mail_services(server) as (services, inbox),
        Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent,
    ):
        await agent.expect("hello")
        port = services.smtp.port  # type: ignore[union-attr]
        first = mail("Hi,\nmy order 1001 has not arrived.", message_id="<first@example.org>")
        assert await send(port, first) == {}
        # 250 came after the commit: the conversation and its message are there now
        (conv,) = await conversations(http, server, seeded)
        cid = str(conv["id"])
        (msg,) = await messages(http, server, seeded, cid)
        assert msg["text"] == "Hi,\nmy order 1001 has not arrived."
        assert msg["author"]["kind"] == "contact"  # type: ignore[index]
        live = await agent.expect("conversation", conversation__id=cid)
        assert live["conversation"]["channel"] == "email"
        assert live["conversation"]["contact"]["email"] == "ann@example.org"
        assert live["conversation"]["fields"] == {"subject": "Where is my order?"}

        claim = await agent.request({"type": "conversation.claim", "conversation_id": cid})
        assert claim["type"] == "ack"

        # a reply with real threading headers joins the conversation, live
        reply = mail(
            "Any news?\n\nOn Mon, Support wrote:\n> We are looking into it.\n",
            subject="Re: Where is my order?",
            In_Reply_To="<first@example.org>",
            References="<first@example.org>",
        )
        await send(port, reply)
        got = await agent.expect("message", conversation_id=cid, message__author__kind="contact")
        assert got["message"]["text"] == "Any news?"  # the quoted history is folded away

        # a client that drops In-Reply-To and References: the plus-address token threads it
        token = await MailStore(server.app.state.ctx.store.db).thread_token(cid)
        assert token
        plus = f"support+{token}@shop.example"
        await send(port, mail("Third try", subject="order", to=plus), rcpts=[plus])
        got = await agent.expect("message", conversation_id=cid, message__text="Third try")

        # References alone (no In-Reply-To) thread too
        await send(port, mail("Fourth", subject="x", References="<unknown@x> <first@example.org>"))
        await agent.expect("message", conversation_id=cid, message__text="Fourth")

        # a new subject from the same person, no headers, no token: a new conversation
        await send(port, mail("Another question", subject="Invoice"))
        assert len(await conversations(http, server, seeded)) == 2
        assert [m["text"] for m in await messages(http, server, seeded, cid) if m["kind"] == "text"] == [
            "Hi,\nmy order 1001 has not arrived.",
            "Any news?",
            "Third try",
            "Fourth",
        ]
        # the whole mail stays viewable, quoted history included
        full = await http.get(
            f"{server.url}/api/v1/email/messages/{got['message']['id']}", headers=auth(seeded.agent_token)
        )
        assert full.status_code == 200 and full.json()["thread"] == "token"
        reply_id = next(
            m["id"] for m in await messages(http, server, seeded, cid) if m["text"] == "Any news?"
        )
        full = await http.get(
            f"{server.url}/api/v1/email/messages/{reply_id}", headers=auth(seeded.agent_token)
        )
        assert "We are looking into it." in full.json()["text"] and full.json()["thread"] == "headers"
        assert inbox.channel == "email"


async def test_the_same_message_id_twice_is_one_message(
    server: Server, seeded: Seed, http: httpx.AsyncClient
) -> None:
    async with mail_services(server) as (services, _):
        port = services.smtp.port  # type: ignore[union-attr]
        m = mail(message_id="<again@example.org>")
        await send(port, m)
        await send(port, m)  # a sender that retries after a lost 250
        (conv,) = await conversations(http, server, seeded)
        assert len(await messages(http, server, seeded, str(conv["id"]))) == 1


async def test_rcpt_only_for_configured_addresses(
    server: Server, seeded: Seed, http: httpx.AsyncClient
) -> None:
    async with mail_services(server) as (services, _):
        port = services.smtp.port  # type: ignore[union-attr]
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            await send(port, mail(to="sales@shop.example"), rcpts=["sales@shop.example"])
        assert refused.value.recipients["sales@shop.example"][0] == 550
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            await send(port, mail(), rcpts=["support@elsewhere.example"])
        # a plus-address of the inbox is accepted even with an unknown token: it becomes a new thread
        await send(
            port, mail(to="support+0000000000@shop.example"), rcpts=["support+0000000000@shop.example"]
        )
        assert len(await conversations(http, server, seeded)) == 1


async def test_a_30_mb_message_gets_552_and_changes_nothing(
    server: Server, seeded: Seed, http: httpx.AsyncClient
) -> None:
    async with mail_services(server) as (services, _):
        port = services.smtp.port  # type: ignore[union-attr]
        big = mail("x" * 100)
        big.add_attachment(
            b"\0" * (30 * 1024 * 1024), maintype="application", subtype="octet-stream", filename="big"
        )
        raw = wire(big)
        # a client that declares the size is refused up front
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            await send(port, raw)
        assert refused.value.smtp_code == 552

        # one that does not is cut off while it sends: the bytes past the limit are not kept
        def undeclared() -> tuple[int, bytes]:
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as c:
                c.ehlo()
                c.mail("ann@example.org")
                c.rcpt(ADDRESS)
                return c.data(raw)

        code, _ = await asyncio.to_thread(undeclared)
        assert code == 552
        assert await conversations(http, server, seeded) == []
        await send(port, mail("still here"))  # the server is fine
        assert len(await conversations(http, server, seeded)) == 1


def _zip_bomb() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.bin", b"\0" * (300 * 1024 * 1024))
    return buf.getvalue()


def _bad_inputs(agent_email: str) -> dict[str, bytes]:
    many = mail("five hundred files", subject="many")
    for i in range(500):
        many.add_attachment(b"%d" % i, maintype="text", subtype="plain", filename=f"f{i}.txt")
    bomb = mail("see zip", subject="bomb")
    bomb.add_attachment(_zip_bomb(), maintype="application", subtype="zip", filename="bomb.zip")
    no_text = EmailMessage()
    no_text["From"] = "ann@example.org"
    no_text["To"] = ADDRESS
    no_text["Subject"] = "scan"
    no_text["Message-ID"] = "<notext@example.org>"
    no_text.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="scan.pdf")
    return {
        "malformed": (
            b"From: ann@example.org\r\nTo: support@shop.example\r\nSubject: broken\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="XX"\r\n\r\n--XX\r\nContent-Type: text/plain\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybGQ=!!!\r\n"
        ),
        "lying_charset": (
            b"From: ann@example.org\r\nTo: support@shop.example\r\nSubject: charset\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            + "Grüße aus Köln".encode("cp1252")
            + b"\r\n"
        ),
        "many": wire(many),
        "forged_agent": wire(mail("I am the agent", sender=f"Bob Agent <{agent_email}>", subject="forged")),
        "no_text": wire(no_text),
        "bomb": wire(bomb),
    }


async def test_bad_input_is_stored_without_a_crash_and_logged(
    server: Server, seeded: Seed, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="chatserver.mail")
    async with mail_services(server, mail_max_attachments=50) as (services, _):
        port = services.smtp.port  # type: ignore[union-attr]
        raws = _bad_inputs(seeded.agent_email)
        for raw in raws.values():
            sender = "ann@example.org" if b"forged" not in raw else seeded.agent_email
            assert await send(port, raw, sender=sender) == {}
        by_subject = {}
        for conv in await conversations(http, server, seeded):
            (msg,) = await messages(http, server, seeded, str(conv["id"]))
            by_subject[conv["fields"].get("subject")] = msg  # type: ignore[union-attr]
        assert len(by_subject) == len(raws)
        assert "hello world" in str(by_subject["broken"]["text"])
        assert str(by_subject["charset"]["text"]) == "Grüße aus Köln"
        assert str(by_subject["many"]["text"]).count("[attachment]") == 50
        assert len(by_subject["many"]["attachments"]) == 50  # type: ignore[arg-type]
        (pdf,) = by_subject["scan"]["attachments"]  # type: ignore[misc]
        assert (pdf["name"], pdf["content_type"], pdf["size"]) == ("scan.pdf", "application/pdf", 8)
        content = await http.get(
            f"{server.url}/api/v1/attachments/{pdf['id']}/content", headers=auth(seeded.agent_token)
        )
        assert content.content == b"%PDF-1.4" and content.headers["content-disposition"].startswith(
            "attachment;"
        )
        many = str(by_subject["many"]["text"])
        assert many.count("[not stored: too_many]") == 20 and "[not stored: 430 more attachments]" in many
        forged = by_subject["forged"]
        assert forged["author"]["kind"] == "contact"  # type: ignore[index]
        assert str(by_subject["scan"]["text"]).startswith("(no text)") and "scan.pdf" in str(
            by_subject["scan"]["text"]
        )
        assert "bomb.zip" in str(by_subject["bomb"]["text"])
        view = await http.get(
            f"{server.url}/api/v1/email/messages/{by_subject['bomb']['id']}", headers=auth(seeded.agent_token)
        )
        assert view.json()["attachments"][0]["warning"] == "zip_bomb"
        logged = caplog.text
        assert "text is not 'utf-8'" in logged and "zip_bomb" in logged and "too_many" in logged
        assert "defects:" in logged


async def test_loop_decisions_are_recorded_and_our_own_mail_is_ignored(
    server: Server, seeded: Seed, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    async with mail_services(server) as (services, _):
        port = services.smtp.port  # type: ignore[union-attr]
        await send(
            port, mail("Out of office", subject="auto", Auto_Submitted="auto-replied", Precedence="bulk")
        )
        await send(port, mail("Human", subject="human"))
        await send(port, mail("loop", sender=ADDRESS, subject="ours"), sender=ADDRESS)
        convs = {c["fields"]["subject"]: c for c in await conversations(http, server, seeded)}  # type: ignore[index]
        assert set(convs) == {"auto", "human"}
        assert "from our own address" in caplog.text
        for subject, allowed in (("auto", False), ("human", True)):
            (msg,) = await messages(http, server, seeded, str(convs[subject]["id"]))
            view = (
                await http.get(
                    f"{server.url}/api/v1/email/messages/{msg['id']}", headers=auth(seeded.agent_token)
                )
            ).json()
            assert view["loop"]["auto_reply_allowed"] is allowed
        assert set(view["loop"]["reasons"]) == set()


async def test_the_mail_view_needs_an_agent_and_an_email_message(
    server: Server, seeded: Seed, http: httpx.AsyncClient
) -> None:
    r = await http.get(f"{server.url}/api/v1/email/messages/msg_nope")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = await http.get(f"{server.url}/api/v1/email/messages/msg_nope", headers=auth(seeded.agent_token))
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_starttls_and_auth_when_configured(
    server: Server, seeded: Seed, http: httpx.AsyncClient, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    overrides = {
        "smtp_tls_cert": cert,
        "smtp_tls_key": key,
        "smtp_auth_user": "relay",
        "smtp_auth_password": "relay-secret",
    }
    async with mail_services(server, **overrides) as (services, _):
        port = services.smtp.port  # type: ignore[union-attr]
        raw = wire(mail("over TLS"))

        def session(password: str | None) -> str:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
                c.ehlo()
                assert c.has_extn("starttls")
                if password is None:  # no TLS, no AUTH: refused
                    code, _ = c.mail("ann@example.org")
                    return str(code)
                c.starttls(context=ssl._create_unverified_context())
                c.ehlo()
                try:
                    c.login("relay", password)
                except smtplib.SMTPAuthenticationError as exc:
                    return str(exc.smtp_code)
                c.sendmail("ann@example.org", [ADDRESS], raw)
                return "sent"

        assert await asyncio.to_thread(session, None) == "530"
        assert await asyncio.to_thread(session, "wrong") == "535"
        assert await conversations(http, server, seeded) == []
        assert await asyncio.to_thread(session, "relay-secret") == "sent"
        assert len(await conversations(http, server, seeded)) == 1
