"""Replies in email conversations leave as mail through the outbox: an aiosmtpd sink receives them with
their threading headers, and the customer's answer (smtplib to our inbound server) joins the thread."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from chatserver.mail.config import parse_email_config
from chatserver.mail.runner import MailServices
from chatserver.mail.store import MailStore
from chatserver.model.types import Inbox
from tests.e2e.harness import Client, Seed, Server, free_port, run_server, settings_for, visitor_token
from tests.mail.helpers import ADDRESS, mail, mail_services, send
from tests.outbox.smtp_server import SmtpServer, smtp_server


@pytest.fixture
def sink() -> Iterator[SmtpServer]:
    with smtp_server() as s:
        yield s


@pytest.fixture
async def mailing(sqlite_url: str, seeded: Seed, tmp_path: Path, sink: SmtpServer) -> AsyncIterator[Server]:
    settings = settings_for(
        sqlite_url,
        tmp_path,
        smtp_url=sink.url,
        mail_from="Shop Help <help@shop.test>",
        workers_in_serve=True,
        outbox_retry_s=0.1,
    )
    async with run_server(settings) as s:
        yield s


def h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def received(sink: SmtpServer, n: int, timeout: float = 20) -> list[EmailMessage]:
    async with asyncio.timeout(timeout):
        while True:
            if len(sink.mailbox.received) >= n:
                return list(sink.mailbox.received)
            await asyncio.sleep(0.05)


async def email_conversation(http: httpx.AsyncClient, server: Server, seeded: Seed) -> dict[str, object]:
    r = await http.get(f"{server.url}/api/v1/conversations?limit=200", headers=h(seeded.admin_token))
    (conv,) = [c for c in r.json()["items"] if c["channel"] == "email"]
    return dict(conv)


async def texts(http: httpx.AsyncClient, server: Server, seeded: Seed, cid: str) -> list[str]:
    r = await http.get(
        f"{server.url}/api/v1/conversations/{cid}/messages?after=0", headers=h(seeded.admin_token)
    )
    return [m["text"] for m in r.json()["items"] if m["kind"] == "text"]


async def thread_token(server: Server, cid: str) -> str:
    token = await MailStore(server.app.state.ctx.store.db).thread_token(cid)
    assert token
    return token


async def test_an_agent_reply_is_one_threaded_mail_and_the_answer_joins_the_conversation(
    mailing: Server, seeded: Seed, sink: SmtpServer, http: httpx.AsyncClient
) -> None:
    services: MailServices
    async with (
        mail_services(mailing) as (services, _),
        Client.connect(f"{mailing.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent,
    ):
        await agent.expect("hello")
        port = services.smtp.port  # type: ignore[union-attr]
        await send(port, mail("My order has not arrived.", message_id="<first@example.org>"))
        cid = str((await email_conversation(http, mailing, seeded))["id"])
        assert (await agent.request({"type": "conversation.claim", "conversation_id": cid}))["type"] == "ack"
        ack = await agent.request(
            {"type": "message.send", "conversation_id": cid, "client_id": "r1", "text": "We are on it."}
        )
        assert ack["type"] == "ack", ack
        sent = await agent.expect("message.status", timeout=20, message_id=ack["message_id"], state="sent")
        assert sent["kind"] == "email"

        (out,) = await received(sink, 1)
        token = await thread_token(mailing, cid)
        assert parseaddr(out["From"]) == ("Bob - Support", ADDRESS)  # the agent's name, the inbox address
        assert out["To"] == "Ann Customer <ann@example.org>" and out["X-Envelope-To"] == "ann@example.org"
        assert out["Subject"] == "Re: Where is my order?"
        assert out["In-Reply-To"] == "<first@example.org>" and out["References"] == "<first@example.org>"
        assert out["Reply-To"] == f"support+{token}@shop.example"
        ours = out["Message-ID"]
        assert ours.startswith("<chat.") and ours.endswith("@shop.example>")
        assert out["Auto-Submitted"] is None  # an agent's reply is not automatic
        assert out.get_content().strip() == "We are on it."

        # the customer's client answers with real threading headers (and its own subject): same thread
        answer = mail(
            "Thanks!\n\nOn Mon, Support wrote:\n> We are on it.\n",
            subject="Re: Where is my order? (urgent)",
            message_id="<answer@example.org>",
            In_Reply_To=ours,
            References=f"<first@example.org> {ours}",
        )
        await send(port, answer)
        got = await agent.expect("message", conversation_id=cid, message__author__kind="contact")
        assert got["message"]["text"] == "Thanks!"
        view = await http.get(
            f"{mailing.url}/api/v1/email/messages/{got['message']['id']}", headers=h(seeded.agent_token)
        )
        assert view.json()["thread"] == "headers"

        # the next reply threads under the answer, the chain in order
        ack = await agent.request(
            {"type": "message.send", "conversation_id": cid, "client_id": "r2", "text": "You are welcome."}
        )
        await agent.expect("message.status", timeout=20, message_id=ack["message_id"], state="sent")
        second = (await received(sink, 2))[1]
        assert second["In-Reply-To"] == "<answer@example.org>"
        assert second["References"] == f"<first@example.org> {ours} <answer@example.org>"
        assert second["Message-ID"] != ours
        # a private note is not mailed
        note = await agent.request(
            {
                "type": "message.send",
                "conversation_id": cid,
                "client_id": "n1",
                "text": "vip",
                "private": True,
            }
        )
        assert note["type"] == "ack"
        assert await texts(http, mailing, seeded, cid) == [
            "My order has not arrived.",
            "We are on it.",
            "Thanks!",
            "You are welcome.",
        ]
    await asyncio.sleep(0.5)
    assert len(sink.mailbox.received) == 2


async def test_cr_lf_in_a_subject_or_name_never_reaches_an_outgoing_header(
    mailing: Server, seeded: Seed, sink: SmtpServer, http: httpx.AsyncClient
) -> None:
    raw = (
        b"From: =?utf-8?q?Ann=0D=0ABcc=3A_victim=40evil=2Eexample?= <ann@example.org>\r\n"
        b"To: support@shop.example\r\n"
        b"Subject: =?utf-8?q?Help=0D=0ABcc=3A_victim=40evil=2Eexample?=\r\n"
        b"Message-ID: <crlf@example.org>\r\n\r\nHello\r\n"
    )
    async with (
        mail_services(mailing) as (services, _),
        Client.connect(f"{mailing.ws}/ws/agent", token=seeded.admin_token, origin=None) as agent,
    ):
        await agent.expect("hello")
        await send(services.smtp.port, raw)  # type: ignore[union-attr]
        cid = str((await email_conversation(http, mailing, seeded))["id"])
        await agent.request({"type": "conversation.claim", "conversation_id": cid})
        ack = await agent.request(
            {"type": "message.send", "conversation_id": cid, "client_id": "x", "text": "Hi\r\nBcc: x@y"}
        )
        await agent.expect("message.status", timeout=20, message_id=ack["message_id"], state="sent")
    (out,) = await received(sink, 1)
    assert out["Bcc"] is None and out["X-Envelope-To"] == "ann@example.org"
    assert out["Subject"] == "Re: Help Bcc: victim@evil.example"
    assert "\n" not in str(out["To"]) and out["To"].addresses[0].addr_spec == "ann@example.org"
    assert "Bcc: x@y" in out.get_content()  # the body is the body


async def test_a_temporary_failure_is_retried_and_sent_once_a_permanent_one_shows_failed(
    mailing: Server, seeded: Seed, sink: SmtpServer, http: httpx.AsyncClient
) -> None:
    sink.mailbox.replies.extend(["451 4.7.1 greylisted, try again", "250 OK", "554 5.7.1 rejected as spam"])
    async with (
        mail_services(mailing) as (services, _),
        Client.connect(f"{mailing.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent,
    ):
        await agent.expect("hello")
        await send(services.smtp.port, mail("Where?"))  # type: ignore[union-attr]
        cid = str((await email_conversation(http, mailing, seeded))["id"])
        await agent.request({"type": "conversation.claim", "conversation_id": cid})
        first = await agent.request(
            {"type": "message.send", "conversation_id": cid, "client_id": "a", "text": "Here."}
        )
        retry = await agent.expect(
            "message.status", timeout=20, message_id=first["message_id"], state="queued"
        )
        assert retry["reason"] == "SMTP 451 4.7.1 greylisted, try again"
        await agent.expect("message.status", timeout=20, message_id=first["message_id"], state="sent")
        second = await agent.request(
            {"type": "message.send", "conversation_id": cid, "client_id": "b", "text": "And here."}
        )
        failed = await agent.expect(
            "message.status", timeout=20, message_id=second["message_id"], state="failed"
        )
        assert failed["reason"] == "SMTP 554 5.7.1 rejected as spam"
    assert len(sink.mailbox.received) == 1 and sink.mailbox.attempts == 3
    assert sink.mailbox.received[0].get_content().strip() == "Here."


async def ticket_of(http: httpx.AsyncClient, server: Server, seeded: Seed, cid: str) -> dict[str, object]:
    async with asyncio.timeout(20):
        while True:
            r = await http.get(f"{server.url}/api/v1/tickets", headers=h(seeded.admin_token))
            found = [t for t in r.json()["items"] if t["conversation_id"] == cid]
            if found:
                full = await http.get(
                    f"{server.url}/api/v1/tickets/{found[0]['number']}", headers=h(seeded.admin_token)
                )
                return dict(full.json())
            await asyncio.sleep(0.05)


async def test_tickets_always_acknowledges_and_ticket_replies_are_the_same_threaded_mail(
    mailing: Server, seeded: Seed, sink: SmtpServer, http: httpx.AsyncClient
) -> None:
    admin = h(seeded.admin_token)
    inbox: Inbox
    async with mail_services(mailing, tickets="always") as (services, inbox):
        port = services.smtp.port  # type: ignore[union-attr]
        await send(port, mail("The lamp flickers.", subject="Lamp broken", message_id="<lamp@example.org>"))
        conv = await email_conversation(http, mailing, seeded)
        cid = str(conv["id"])
        assert conv["status"] == "resolved"  # a ticket at once: it left the live queue
        ticket = await ticket_of(http, mailing, seeded, cid)
        number = ticket["number"]
        assert ticket["subject"] == "Lamp broken" and ticket["status"] == "new"
        token = await thread_token(mailing, cid)

        (ack,) = await received(sink, 1)
        assert ack["Auto-Submitted"] == "auto-replied" and ack["X-Auto-Response-Suppress"] == "All"
        assert ack["Subject"] == f"Re: [#{number}] Lamp broken"
        assert ack["In-Reply-To"] == "<lamp@example.org>" and ack["References"] == "<lamp@example.org>"
        assert ack["Reply-To"] == f"support+{token}@shop.example"
        assert parseaddr(ack["From"])[1] == ADDRESS and f"#{number}" in ack.get_content()

        # the ticket REST reply: one mail, in the same thread (not a separate ticket mail)
        r = await http.post(
            f"{mailing.url}/api/v1/tickets/{number}/replies",
            json={"text": "A new lamp is on its way."},
            headers=admin,
        )
        assert r.status_code == 201, r.text
        reply = (await received(sink, 2))[1]
        assert reply["Auto-Submitted"] is None and parseaddr(reply["From"]) == ("Ada - Support", ADDRESS)
        assert reply["Subject"] == f"Re: [#{number}] Lamp broken"
        assert reply["In-Reply-To"] == ack["Message-ID"]
        assert reply["References"] == f"<lamp@example.org> {ack['Message-ID']}"
        assert reply.get_content().strip() == "A new lamp is on its way."
        await asyncio.sleep(0.3)
        assert len(sink.mailbox.received) == 2

        # the customer answers the reply (its headers): the same conversation and ticket
        await send(
            port, mail("Thanks", subject=f"Re: [#{number}] Lamp broken", In_Reply_To=reply["Message-ID"])
        )
        # subject-only threading: no headers, no token, the ticket number and the same sender
        await send(port, mail("One more thing", subject=f"[#{number}] still"))
        # the same number from someone else is a new conversation (and its own ticket)
        await send(port, mail("Me too", sender="eve@example.net", subject=f"[#{number}] Lamp broken"))
        assert (await texts(http, mailing, seeded, cid)) == [
            "The lamp flickers.",
            "A new lamp is on its way.",
            "Thanks",
            "One more thing",
        ]
        thread = (await http.get(f"{mailing.url}/api/v1/tickets/{number}", headers=admin)).json()["thread"]
        assert "One more thing" in [m["text"] for m in thread]
        mails = MailStore(mailing.app.state.ctx.store.db)
        assert await mails.count_emails(inbox.id) == 4

        # solved: the CSAT mail goes in the thread too, marked automatic (generated, not a reply)
        t = (await http.get(f"{mailing.url}/api/v1/tickets/{number}", headers=admin)).json()
        r = await http.patch(
            f"{mailing.url}/api/v1/tickets/{number}",
            json={"version": t["version"], "status": "solved"},
            headers=admin,
        )
        assert r.status_code == 200, r.text
        everything = await received(sink, 4)
        solved = next(m for m in everything if "is solved" in m.get_content())
        assert (
            solved["Auto-Submitted"] == "auto-generated"
            and solved["Reply-To"] == f"support+{token}@shop.example"
        )
        assert solved["Subject"] == f"Re: [#{number}] Lamp broken"
        eve = [m for m in everything if m["X-Envelope-To"] == "eve@example.net"]
        assert len(eve) == 1 and eve[0]["Subject"] != ack["Subject"]  # eve's own ticket's acknowledgement


async def test_a_ticket_mail_outside_an_email_thread_threads_back_by_its_plus_tag(
    mailing: Server, seeded: Seed, sink: SmtpServer, http: httpx.AsyncClient
) -> None:
    """A ticket an agent opened for a contact (a phone call) mails from CHATSERVER_MAIL_FROM with
    Reply-To help+t<number>@; when that address is an email inbox, the answer joins the ticket."""
    admin = h(seeded.admin_token)
    contact = (await visitor_token(http, mailing.url, seeded.inbox_key))["contact_id"]
    r = await http.patch(
        f"{mailing.url}/api/v1/contacts/{contact}", json={"email": "ann@example.org"}, headers=admin
    )
    assert r.status_code == 200, r.text
    help_inbox = parse_email_config(address="help@shop.test")
    await MailStore(mailing.app.state.ctx.store.db).create_email_inbox("Help", help_inbox)
    async with mail_services(mailing) as (services, _):
        r = await http.post(
            f"{mailing.url}/api/v1/tickets", json={"requester_id": contact, "subject": "Call"}, headers=admin
        )
        number, ticket_cid = r.json()["number"], r.json()["conversation_id"]
        (first,) = await received(sink, 1)
        assert first["Reply-To"] == f"help+t{number}@shop.test"
        answer = mail("Answering by mail", to=first["Reply-To"], subject="Re: the call")
        await send(services.smtp.port, answer, rcpts=[first["Reply-To"]])  # type: ignore[union-attr]
        assert "Answering by mail" in await texts(http, mailing, seeded, ticket_cid)


class Autoresponder:
    """An SMTP peer (our outbound SMTP server) that answers every mail it receives with an automatic
    reply into our inbound server: ``rfc`` marks it (RFC 3834) and threads it, ``naive`` only quotes
    the subject, ``hostile`` hides every trace (no headers, a new subject each time)."""

    def __init__(self, kind: str, inbound_port: int, loop: asyncio.AbstractEventLoop) -> None:
        self.kind = kind
        self.inbound_port = inbound_port
        self.loop = loop
        self.received: list[EmailMessage] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.received.append(msg)
        headers: dict[str, str] = {}
        subject = f"Automatic reply: {msg['Subject']}"
        if self.kind == "rfc":
            headers = {"Auto_Submitted": "auto-replied", "In_Reply_To": str(msg["Message-ID"])}
        elif self.kind == "hostile":
            subject = f"Out of office {os.urandom(3).hex()}"
        reply = mail("I am away.", subject=subject, **headers)
        asyncio.run_coroutine_threadsafe(send(self.inbound_port, reply), self.loop)
        return "250 OK"


@pytest.mark.parametrize("kind", ["rfc", "naive", "hostile"])
async def test_an_auto_reply_storm_stops_after_one_mail_from_us(
    sqlite_url: str, seeded: Seed, tmp_path: Path, kind: str
) -> None:
    inbound = free_port()
    responder = Autoresponder(kind, inbound, asyncio.get_running_loop())
    peer = Controller(responder, hostname="127.0.0.1", port=free_port())
    peer.start()
    settings = settings_for(
        sqlite_url,
        tmp_path,
        smtp_url=f"smtp://127.0.0.1:{peer.port}",
        workers_in_serve=True,
        outbox_retry_s=0.1,
        # the per-sender limit is what stops the hostile one; headers and threading stop the others
        mail_auto_reply_limit=1 if kind == "hostile" else 3,
    )
    try:
        async with (
            run_server(settings) as server,
            mail_services(server, tickets="always", smtp_listen=f"127.0.0.1:{inbound}") as (_, inbox),
        ):
            await send(inbound, mail("Hello, anyone?", subject="Question"))
            mails = MailStore(server.app.state.ctx.store.db)
            async with asyncio.timeout(20):  # our acknowledgement went, and its auto-reply came in
                while True:
                    if responder.received and await mails.count_emails(inbox.id) >= 2:
                        break
                    await asyncio.sleep(0.05)
            await asyncio.sleep(2)  # every chance for a storm to start
            assert len(responder.received) == 1, [m["Subject"] for m in responder.received]
            assert responder.received[0]["Auto-Submitted"] == "auto-replied"
            assert await mails.count_emails(inbox.id) == 2
    finally:
        peer.stop()


async def test_bad_input_into_a_ticket_inbox_opens_tickets_and_mails_only_what_it_should(
    mailing: Server, seeded: Seed, sink: SmtpServer, http: httpx.AsyncClient
) -> None:
    from tests.mail.test_smtp import _bad_inputs

    raws = _bad_inputs(seeded.agent_email)
    raws["no_subject"] = (
        b"From: ann@example.org\r\nTo: support@shop.example\r\nMessage-ID: <ns@x>\r\n\r\nhi\r\n"
    )
    raws["bulk"] = (
        b"From: news@example.org\r\nTo: support@shop.example\r\nPrecedence: bulk\r\n"
        b"Subject: news\r\n\r\nx\r\n"
    )
    async with mail_services(mailing, tickets="always", mail_max_attachments=50) as (services, _):
        for name, raw in raws.items():
            sender = seeded.agent_email if name == "forged_agent" else "ann@example.org"
            assert await send(services.smtp.port, raw, sender=sender) == {}, name  # type: ignore[union-attr]
        r = await http.get(f"{mailing.url}/api/v1/tickets?limit=100", headers=h(seeded.admin_token))
        tickets = r.json()["items"]
        assert len(tickets) == len(raws)
        assert "(no subject)" in {t["subject"] for t in tickets}
        bulk = next(t for t in tickets if t["subject"] == "news")
        assert bulk["email_note"] == "no acknowledgement is sent: the mail was automatic: precedence"
        # acknowledgements to each From, none to the bulk sender, ann's capped by the per-sender limit
        from_ann = len(raws) - 2
        limit = mailing.settings.mail_auto_reply_limit
        assert from_ann > limit
        acks = await received(sink, limit + 1)
        await asyncio.sleep(0.5)
        assert len(sink.mailbox.received) == limit + 1
        to = sorted(str(m["X-Envelope-To"]) for m in acks)
        assert to.count("ann@example.org") == limit and seeded.agent_email in to
        assert all(m["Auto-Submitted"] == "auto-replied" and m["Bcc"] is None for m in acks)
        capped = [t for t in tickets if (t["email_note"] or "").startswith("no automatic email")]
        assert len(capped) == from_ann - limit


async def test_escalating_an_email_conversation_acknowledges_in_its_thread(
    mailing: Server, seeded: Seed, sink: SmtpServer, http: httpx.AsyncClient
) -> None:
    async with (
        mail_services(mailing) as (services, _),
        Client.connect(f"{mailing.ws}/ws/agent", token=seeded.admin_token, origin=None) as agent,
    ):
        await agent.expect("hello")
        await send(services.smtp.port, mail("Broken", subject="Kettle", message_id="<k@example.org>"))  # type: ignore[union-attr]
        cid = str((await email_conversation(http, mailing, seeded))["id"])
        assert sink.mailbox.received == []  # on-escalation: no ticket, no acknowledgement yet
        ack = await agent.request({"type": "conversation.escalate", "conversation_id": cid})
        assert ack["type"] == "ack", ack
        number = ack["ticket"]["number"]
    (mailed,) = await received(sink, 1)
    assert mailed["Subject"] == f"Re: [#{number}] Kettle" and mailed["In-Reply-To"] == "<k@example.org>"
    assert mailed["Reply-To"] == f"support+{await thread_token(mailing, cid)}@shop.example"
