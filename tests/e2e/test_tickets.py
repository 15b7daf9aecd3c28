"""Tickets end to end: REST, WebSocket frames, emails received by a real SMTP server, CSAT."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import Client, Seed, Server, run_server, settings_for, visitor_token
from tests.outbox.smtp_server import SmtpServer, smtp_server


@pytest.fixture
def smtp() -> Any:
    with smtp_server() as s:
        yield s


@pytest.fixture
async def mail_server(
    sqlite_url: str, seeded: Seed, tmp_path: Path, smtp: SmtpServer
) -> AsyncIterator[Server]:
    settings = settings_for(
        sqlite_url,
        tmp_path,
        smtp_url=smtp.url,
        mail_from="Shop Help <help@shop.test>",
        workers_in_serve=True,
        outbox_retry_s=0.1,
    )
    async with run_server(settings) as s:
        yield s


def h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def new_contact(http: httpx.AsyncClient, server: Server, seeded: Seed, email: str | None) -> str:
    contact_id: str = (await visitor_token(http, server.url, seeded.inbox_key))["contact_id"]
    if email:
        r = await http.patch(
            f"{server.url}/api/v1/contacts/{contact_id}", json={"email": email}, headers=h(seeded.admin_token)
        )
        assert r.status_code == 200, r.text
    return contact_id


async def mails(smtp: SmtpServer, n: int, timeout: float = 10) -> list[EmailMessage]:
    async with asyncio.timeout(timeout):
        while True:
            if len(smtp.mailbox.received) >= n:
                return list(smtp.mailbox.received)
            await asyncio.sleep(0.05)


async def test_a_ticket_from_open_to_solved_with_threaded_emails_and_a_csat_link(
    mail_server: Server, seeded: Seed, smtp: SmtpServer, http: httpx.AsyncClient
) -> None:
    base, admin = mail_server.url, h(seeded.admin_token)
    contact = await new_contact(http, mail_server, seeded, "ann@example.com")
    r = await http.post(
        f"{base}/api/v1/tickets",
        json={
            "requester_id": contact,
            "subject": "Lamp broken\r\nBcc: everyone@example.com",
            "priority": "high",
            "tags": ["Lamp"],
            "text": "Called: the lamp flickers",
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    t = r.json()
    number = t["number"]
    assert number >= 1001 and t["status"] == "new" and t["priority"] == "high" and t["tags"] == ["lamp"]
    assert t["subject"] == "Lamp broken\r\nBcc: everyone@example.com"  # stored as text
    assert [m["text"] for m in t["thread"]] == ["Called: the lamp flickers"]
    assert t["audit"][0]["field"] == "created" and t["audit"][0]["actor"]["name"] == "Ada"

    (received,) = await mails(smtp, 1)
    assert received["Subject"] == f"[#{number}] Lamp broken Bcc: everyone@example.com"
    assert received["Bcc"] is None and received["X-Envelope-To"] == "ann@example.com"
    assert received["Reply-To"] == f"help+t{number}@shop.test"
    assert received["In-Reply-To"] is None
    first_id = received["Message-ID"]
    assert first_id.endswith(f".t{number}@shop.test>")
    assert f"#{number}" in received.get_content()

    # an agent's public reply: emailed, threaded under the first mail; the ticket opens
    r = await http.post(
        f"{base}/api/v1/tickets/{number}/replies", json={"text": "We send a new one."}, headers=admin
    )
    assert r.status_code == 201, r.text
    assert r.json()["ticket"]["status"] == "open" and r.json()["ticket"]["first_response_at"] is not None
    reply_mail = (await mails(smtp, 2))[1]
    assert reply_mail["Subject"] == f"Re: [#{number}] Lamp broken Bcc: everyone@example.com"
    assert reply_mail["In-Reply-To"] == first_id and reply_mail["References"] == first_id
    assert "We send a new one." in reply_mail.get_content()
    # a private note is not emailed
    r = await http.post(
        f"{base}/api/v1/tickets/{number}/replies",
        json={"text": "warehouse says ok", "private": True},
        headers=admin,
    )
    assert r.status_code == 201 and r.json()["message"]["kind"] == "note"

    version = (await http.get(f"{base}/api/v1/tickets/{number}", headers=admin)).json()["version"]
    # bad input changes nothing
    bad = [
        ({"version": version, "status": "closed"}, 409, "status"),
        ({"version": version, "colour": "red"}, 422, "colour"),
        ({"version": version, "priority": "asap"}, 422, "priority"),
        ({"version": version, "assignee_id": "ag_nobody"}, 422, "assignee_id"),
        ({"version": version, "fields": {"nope": 1}}, 422, "fields.nope"),
        ({"status": "pending"}, 422, "version"),
    ]
    for patch, status, field in bad:
        r = await http.patch(f"{base}/api/v1/tickets/{number}", json=patch, headers=admin)
        assert r.status_code == status, (patch, r.text)
        assert r.json()["error"]["data"]["field"] == field
    closed = (
        await http.patch(
            f"{base}/api/v1/tickets/{number}", json={"version": version, "status": "closed"}, headers=admin
        )
    ).json()
    assert closed["error"]["data"]["allowed"] == ["on_hold", "pending", "solved"]
    stale = await http.patch(
        f"{base}/api/v1/tickets/{number}", json={"version": version - 1, "status": "pending"}, headers=admin
    )
    assert stale.status_code == 409 and stale.json()["error"]["data"]["ticket"]["version"] == version
    assert (await http.get(f"{base}/api/v1/tickets/{number}", headers=admin)).json()["version"] == version

    r = await http.patch(
        f"{base}/api/v1/tickets/{number}",
        json={"version": version, "status": "solved", "assignee_id": seeded.agent_id},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    solved = r.json()
    assert (
        solved["status"] == "solved" and solved["solved_at"] is not None and solved["version"] == version + 1
    )
    fields = [(a["field"], a["from"], a["to"]) for a in solved["audit"]]
    assert ("status", "open", "solved") in fields and ("assignee_id", None, seeded.agent_id) in fields
    solved_mail = (await mails(smtp, 3))[2]
    assert solved_mail["References"] == f"{first_id} {reply_mail['Message-ID']}"
    link = re.search(r"(http://\S+/csat/\S+)", solved_mail.get_content())
    assert link is not None
    assert link.group(1).startswith(mail_server.settings.base_url)  # CHATSERVER_PUBLIC_URL
    url = base + link.group(1)[link.group(1).index("/csat/") :]

    # the rating page: viewing changes nothing; a bad score is refused; one answer; then "used"
    page = await http.get(url)
    assert page.status_code == 200 and f"ticket #{number}" in page.text and "<form" in page.text
    assert (await http.post(url, data={"score": "6"})).status_code == 422
    assert (await http.post(url, data={"score": "0"})).status_code == 422
    thanks = await http.post(url, data={"score": "5", "comment": "<b>great</b>"})
    assert thanks.status_code == 200 and "5 of 5" in thanks.text
    again = await http.post(url, data={"score": "1"})
    assert again.status_code == 409 and "already used" in again.text
    assert (await http.get(url)).status_code == 409
    forged = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    assert (await http.post(forged, data={"score": "2"})).status_code == 400
    assert (await http.get(url.replace("/csat/", "/csat/x"))).status_code == 400
    got = (await http.get(f"{base}/api/v1/tickets/{number}", headers=admin)).json()
    assert (
        got["csat"]["score"] == 5
        and got["csat"]["comment"] == "<b>great</b>"
        and got["csat"]["source"] == "link"
    )
    assert any(m["kind"] == "csat" and m["text"] == "Rated 5/5: <b>great</b>" for m in got["thread"])
    # three emails, each once
    await asyncio.sleep(0.3)
    assert len(smtp.mailbox.received) == 3


async def test_listing_filters_and_cursor_pagination(
    server: Server, seeded: Seed, http: httpx.AsyncClient
) -> None:
    base, admin = server.url, h(seeded.admin_token)
    ann = await new_contact(http, server, seeded, None)
    bob = await new_contact(http, server, seeded, None)
    numbers = []
    for i, (who, tags) in enumerate([(ann, ["a"]), (bob, ["b"]), (ann, ["a", "b"])]):
        r = await http.post(
            f"{base}/api/v1/tickets",
            json={"requester_id": who, "subject": f"T{i}", "tags": tags},
            headers=admin,
        )
        assert r.status_code == 201, r.text
        assert r.json()["email_note"] == "no email is sent: SMTP is not configured (CHATSERVER_SMTP_URL)"
        numbers.append(r.json()["number"])
    assert numbers == sorted(numbers) and len(set(numbers)) == 3

    async def list_(**params: Any) -> dict[str, Any]:
        r = await http.get(f"{base}/api/v1/tickets", params=params, headers=admin)
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    assert [t["number"] for t in (await list_(requester=ann))["items"]] == [numbers[2], numbers[0]]
    assert [t["number"] for t in (await list_(tag="b"))["items"]] == [numbers[2], numbers[1]]
    assert (await list_(status="solved"))["items"] == []
    assert len((await list_(status="new,open"))["items"]) == 3
    assert len((await list_(breached="false"))["items"]) == 3
    seen, cursor = [], None
    while True:
        page = await list_(limit=2, **({"cursor": cursor} if cursor else {}))
        seen += [t["number"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == numbers[::-1]
    due = await list_(sort="due", limit=2)
    assert len(due["items"]) == 2 and due["next_cursor"] is not None
    for params, field in [
        ({"status": "done"}, "status"),
        ({"sort": "random"}, "sort"),
        ({"breached": "maybe"}, "breached"),
        ({"cursor": "!!"}, "cursor"),
        ({"tag": "%"}, "tag"),
        ({"colour": "red"}, "colour"),
        ({"limit": "0"}, "limit"),
    ]:
        r = await http.get(f"{base}/api/v1/tickets", params=params, headers=admin)
        assert r.status_code == 422 and r.json()["error"]["data"]["field"] == field, (params, r.text)
    assert (await http.get(f"{base}/api/v1/tickets/99999", headers=admin)).status_code == 404
    assert (await http.get(f"{base}/api/v1/tickets/abc", headers=admin)).status_code == 404
    assert (await http.get(f"{base}/api/v1/tickets")).status_code == 401


async def test_bad_new_tickets_are_refused(server: Server, seeded: Seed, http: httpx.AsyncClient) -> None:
    base, admin = server.url, h(seeded.admin_token)
    ann = await new_contact(http, server, seeded, None)
    for body, field in [
        ({"subject": "x"}, "requester_id"),
        ({"requester_id": "ct_nobody", "subject": "x"}, "requester_id"),
        ({"requester_id": ann}, "subject"),
        ({"requester_id": ann, "subject": "x", "priority": "asap"}, "priority"),
        ({"requester_id": ann, "subject": "x", "colour": 1}, "colour"),
        ({"requester_id": ann, "subject": "x", "fields": {"nope": 1}}, "fields.nope"),
        ({"requester_id": ann, "subject": "x", "team_id": "tm_nobody"}, "team_id"),
        ({"requester_id": ann, "subject": "x" * 301}, "subject"),
    ]:
        r = await http.post(f"{base}/api/v1/tickets", json=body, headers=admin)
        assert r.status_code == 422 and r.json()["error"]["data"]["field"] == field, (body, r.text)
    assert (await http.get(f"{base}/api/v1/tickets", headers=admin)).json()["items"] == []


async def test_custom_fields(server: Server, seeded: Seed, http: httpx.AsyncClient) -> None:
    base, admin = server.url, h(seeded.admin_token)
    reason = {"key": "reason", "label": "Reason", "type": "dropdown", "options": ["broken", "late"]}
    assert (
        await http.post(f"{base}/api/v1/ticket-fields", json=reason, headers=h(seeded.agent_token))
    ).status_code == 403
    r = await http.post(f"{base}/api/v1/ticket-fields", json=reason, headers=admin)
    assert r.status_code == 201 and r.json()["options"] == ["broken", "late"]
    assert (await http.post(f"{base}/api/v1/ticket-fields", json=reason, headers=admin)).status_code == 409
    bad = await http.post(f"{base}/api/v1/ticket-fields", json={**reason, "type": "color"}, headers=admin)
    assert bad.status_code == 422 and bad.json()["error"]["data"]["field"] == "type"
    order = {"key": "order", "label": "Order", "type": "number", "required": True}
    assert (await http.post(f"{base}/api/v1/ticket-fields", json=order, headers=admin)).status_code == 201
    listed = (await http.get(f"{base}/api/v1/ticket-fields", headers=admin)).json()["items"]
    assert [f["key"] for f in listed] == ["order", "reason"]

    ann = await new_contact(http, server, seeded, None)
    new = {"requester_id": ann, "subject": "Late"}
    for fields, field in [
        ({}, "fields.order"),
        ({"order": "12"}, "fields.order"),
        ({"order": 1, "reason": "x"}, "fields.reason"),
    ]:
        r = await http.post(f"{base}/api/v1/tickets", json={**new, "fields": fields}, headers=admin)
        assert r.status_code == 422 and r.json()["error"]["data"]["field"] == field, r.text
    t = (
        await http.post(
            f"{base}/api/v1/tickets", json={**new, "fields": {"order": 7, "reason": "late"}}, headers=admin
        )
    ).json()
    assert t["fields"] == {"order": 7, "reason": "late"}
    r = await http.patch(
        f"{base}/api/v1/tickets/{t['number']}",
        json={"version": t["version"], "fields": {"reason": "broken"}},
        headers=admin,
    )
    assert r.json()["fields"]["reason"] == "broken"
    assert ("fields.reason", "late", "broken") in [
        (a["field"], a["from"], a["to"]) for a in r.json()["audit"]
    ]
    # an escalation cannot fill a required field: the ticket is made, an agent fills it later
    tok = (await visitor_token(http, base, seeded.inbox_key))["token"]
    async with (
        Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v,
        Client.connect(f"{server.ws}/ws/agent", token=seeded.admin_token, origin=None) as agent,
    ):
        await v.expect("hello")
        await agent.expect("hello")
        cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
        ack = await agent.request(
            {"type": "conversation.escalate", "conversation_id": cid, "subject": "Chat"}
        )
        assert ack["type"] == "ack" and ack["ticket"]["fields"] == {}
    r = await http.put(f"{base}/api/v1/ticket-fields/order", json={**order, "required": False}, headers=admin)
    assert r.status_code == 200 and r.json()["required"] is False
    assert (
        await http.put(f"{base}/api/v1/ticket-fields/order", json={**order, "key": "x"}, headers=admin)
    ).status_code == 422
    assert (await http.delete(f"{base}/api/v1/ticket-fields/reason", headers=admin)).status_code == 204
    assert (await http.delete(f"{base}/api/v1/ticket-fields/reason", headers=admin)).status_code == 404


async def test_two_agents_updating_one_ticket_one_gets_409(
    server: Server, seeded: Seed, http: httpx.AsyncClient
) -> None:
    base = server.url
    ann = await new_contact(http, server, seeded, None)
    t = (
        await http.post(
            f"{base}/api/v1/tickets",
            json={"requester_id": ann, "subject": "x"},
            headers=h(seeded.admin_token),
        )
    ).json()
    results = await asyncio.gather(
        http.patch(
            f"{base}/api/v1/tickets/{t['number']}",
            json={"version": t["version"], "priority": "urgent"},
            headers=h(seeded.admin_token),
        ),
        http.patch(
            f"{base}/api/v1/tickets/{t['number']}",
            json={"version": t["version"], "priority": "low"},
            headers=h(seeded.agent_token),
        ),
    )
    assert sorted(r.status_code for r in results) == [200, 409]
    winner = next(r for r in results if r.status_code == 200).json()
    loser = next(r for r in results if r.status_code == 409).json()
    assert loser["error"]["data"]["ticket"]["priority"] == winner["priority"]
    assert loser["error"]["data"]["ticket"]["version"] == winner["version"]


async def test_merging(server: Server, seeded: Seed, http: httpx.AsyncClient) -> None:
    base, admin = server.url, h(seeded.admin_token)
    ann = await new_contact(http, server, seeded, None)

    async def ticket(text: str) -> dict[str, Any]:
        r = await http.post(
            f"{base}/api/v1/tickets", json={"requester_id": ann, "subject": text, "text": text}, headers=admin
        )
        data: dict[str, Any] = r.json()
        return data

    a, b, c = await ticket("first"), await ticket("second"), await ticket("third")
    r = await http.post(
        f"{base}/api/v1/tickets/{a['number']}/merge", json={"into": a["number"]}, headers=admin
    )
    assert r.status_code == 409 and "itself" in r.json()["error"]["message"]
    assert (
        await http.post(f"{base}/api/v1/tickets/{a['number']}/merge", json={"into": 99999}, headers=admin)
    ).status_code == 404
    assert (
        await http.post(f"{base}/api/v1/tickets/{a['number']}/merge", json={"into": "x"}, headers=admin)
    ).status_code == 422
    r = await http.post(
        f"{base}/api/v1/tickets/{a['number']}/merge", json={"into": b["number"]}, headers=admin
    )
    assert r.status_code == 200, r.text
    assert r.json()["merged"]["status"] == "closed" and r.json()["merged"]["merged_into"] == b["number"]
    survivor = (await http.get(f"{base}/api/v1/tickets/{b['number']}", headers=admin)).json()
    assert [m["text"] for m in survivor["thread"] if m["kind"] == "text"] == ["first", "second"]
    assert ("merged", None, a["number"]) in [(x["field"], x["from"], x["to"]) for x in survivor["audit"]]
    # into a closed one, or the closed one again: 409
    r = await http.post(
        f"{base}/api/v1/tickets/{c['number']}/merge", json={"into": a["number"]}, headers=admin
    )
    assert r.status_code == 409 and "closed" in r.json()["error"]["message"]
    r = await http.post(
        f"{base}/api/v1/tickets/{a['number']}/merge", json={"into": c["number"]}, headers=admin
    )
    assert r.status_code == 409
    r = await http.post(f"{base}/api/v1/tickets/{a['number']}/replies", json={"text": "hi"}, headers=admin)
    assert r.status_code == 409 and r.json()["error"]["data"]["merged_into"] == b["number"]


async def test_escalation_threading_and_csat_from_the_widget(
    server: Server, seeded: Seed, http: httpx.AsyncClient
) -> None:
    base, admin = server.url, h(seeded.admin_token)
    tok = (await visitor_token(http, base, seeded.inbox_key))["token"]
    async with (
        Client.connect(f"{server.ws}/ws/visitor?token={tok}") as visitor,
        Client.connect(f"{server.ws}/ws/agent", token=seeded.admin_token, origin=None) as agent,
    ):
        await visitor.expect("hello")
        await agent.expect("hello")
        cid = (await visitor.request({"type": "conversation.start"}))["conversation_id"]
        await visitor.request(
            {"type": "message.send", "conversation_id": cid, "client_id": "v1", "text": "My invoice is wrong"}
        )
        for frame, code in [
            ({"type": "conversation.escalate", "conversation_id": cid, "priority": "asap"}, "invalid"),
            ({"type": "conversation.escalate", "conversation_id": cid, "subject": "  "}, "invalid"),
            ({"type": "conversation.escalate", "conversation_id": "cv_nobody"}, "not_found"),
            ({"type": "conversation.escalate"}, "invalid"),
        ]:
            err = await agent.request(frame)
            assert err["type"] == "error" and err["code"] == code, err
        denied = await visitor.request({"type": "conversation.escalate", "conversation_id": cid})
        assert denied["type"] == "error" and denied["code"] == "forbidden"

        ack = await agent.request(
            {"type": "conversation.escalate", "conversation_id": cid, "priority": "high"}
        )
        assert ack["type"] == "ack", ack
        ticket = ack["ticket"]
        assert ticket["subject"] == "My invoice is wrong" and ticket["priority"] == "high"
        assert ticket["conversation_id"] == cid
        frame = await agent.expect("ticket", ticket__number=ticket["number"])
        assert frame["ticket"]["status"] == "new"
        again = await agent.request({"type": "conversation.escalate", "conversation_id": cid})
        assert again["ticket"]["number"] == ticket["number"]  # idempotent
        # the waiting conversation left the queue
        conv = (await http.get(f"{base}/api/v1/conversations/{cid}", headers=admin)).json()
        assert conv["status"] == "resolved"
        assert conv["ticket"] == {"number": ticket["number"], "status": "new", "subject": ticket["subject"]}
        live = await agent.expect("conversation", conversation__id=cid, conversation__status="resolved")
        assert live["conversation"]["ticket"]["number"] == ticket["number"]

        n = ticket["number"]
        t = (await http.get(f"{base}/api/v1/tickets/{n}", headers=admin)).json()
        r = await http.patch(
            f"{base}/api/v1/tickets/{n}", json={"version": t["version"], "status": "pending"}, headers=admin
        )
        assert r.json()["status"] == "pending"
        # the visitor writes again: threaded into the ticket, which opens
        await visitor.request(
            {"type": "message.send", "conversation_id": cid, "client_id": "v2", "text": "Any news?"}
        )
        opened = await agent.expect("ticket", ticket__number=n, ticket__status="open")
        assert opened["ticket"]["version"] > r.json()["version"]
        t = (await http.get(f"{base}/api/v1/tickets/{n}", headers=admin)).json()
        assert "Any news?" in [m["text"] for m in t["thread"]]
        assert ("status", "pending", "open") in [(a["field"], a["from"], a["to"]) for a in t["audit"]]
        assert any(a["actor"]["kind"] == "contact" for a in t["audit"])

        # CSAT from the widget once the chat is resolved
        conv = (await http.get(f"{base}/api/v1/conversations/{cid}", headers=admin)).json()
        if conv["status"] != "resolved":
            await agent.request({"type": "conversation.close", "conversation_id": cid})
        for score in (0, 6, "5", None):
            err = await visitor.request({"type": "csat.submit", "conversation_id": cid, "score": score})
            assert err["type"] == "error" and err["code"] == "invalid", err
            assert err["data"]["field"] == "score"
        await agent.request({"type": "conversation.view", "conversation_id": cid})
        ok = await visitor.request(
            {"type": "csat.submit", "conversation_id": cid, "score": 4, "comment": "quick"}
        )
        assert ok["type"] == "ack" and ok["csat"]["score"] == 4 and ok["csat"]["source"] == "widget"
        changed = await visitor.request({"type": "csat.submit", "conversation_id": cid, "score": 5})
        assert changed["csat"]["score"] == 5 and changed["csat"]["created_at"] == ok["csat"]["created_at"]
        rated = await agent.expect("message", message__kind="csat", message__text="Rated 5/5")
        assert rated["conversation_id"] == cid
        forbidden = await agent.request({"type": "csat.submit", "conversation_id": cid, "score": 3})
        assert forbidden["type"] == "error" and forbidden["code"] == "forbidden"


async def test_csat_needs_a_resolved_chat_and_the_visitors_own(
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
        err = await visitor.request({"type": "csat.submit", "conversation_id": cid, "score": 3})
        assert err["type"] == "error" and err["code"] == "conflict"
        err = await stranger.request({"type": "csat.submit", "conversation_id": cid, "score": 3})
        assert err["type"] == "error" and err["code"] == "forbidden"


@pytest.mark.parametrize("reopen_days", [7.0, 0.0])
async def test_a_customer_reply_reopens_a_solved_ticket_within_the_window_else_opens_a_linked_one(
    sqlite_url: str, seeded: Seed, tmp_path: Path, http: httpx.AsyncClient, reopen_days: float
) -> None:
    settings = settings_for(sqlite_url, tmp_path, ticket_reopen_days=reopen_days)
    async with run_server(settings) as server:
        base, admin = server.url, h(seeded.admin_token)
        tok = (await visitor_token(http, base, seeded.inbox_key))["token"]
        async with (
            Client.connect(f"{server.ws}/ws/visitor?token={tok}") as visitor,
            Client.connect(f"{server.ws}/ws/agent", token=seeded.admin_token, origin=None) as agent,
        ):
            await visitor.expect("hello")
            await agent.expect("hello")
            cid = (await visitor.request({"type": "conversation.start"}))["conversation_id"]
            await visitor.request(
                {"type": "message.send", "conversation_id": cid, "client_id": "a", "text": "Help"}
            )
            number = (await agent.request({"type": "conversation.escalate", "conversation_id": cid}))[
                "ticket"
            ]["number"]
            t = (await http.get(f"{base}/api/v1/tickets/{number}", headers=admin)).json()
            r = await http.patch(
                f"{base}/api/v1/tickets/{number}",
                json={"version": t["version"], "status": "solved"},
                headers=admin,
            )
            assert r.json()["status"] == "solved"
            await visitor.request(
                {"type": "message.send", "conversation_id": cid, "client_id": "b", "text": "Still broken"}
            )
            if reopen_days:
                reopened = await agent.expect("ticket", ticket__number=number, ticket__status="open")
                assert reopened["ticket"]["parent_number"] is None
            else:
                follow_up = await agent.expect("ticket", ticket__parent_number=number)
                assert follow_up["ticket"]["number"] != number and follow_up["ticket"]["status"] == "new"
                assert follow_up["ticket"]["subject"] == t["subject"]
                old = (await http.get(f"{base}/api/v1/tickets/{number}", headers=admin)).json()
                assert old["status"] == "solved"
                new = (
                    await http.get(f"{base}/api/v1/tickets/{follow_up['ticket']['number']}", headers=admin)
                ).json()
                assert "Still broken" in [m["text"] for m in new["thread"]]


async def test_a_public_reply_shows_its_email_delivery_to_the_agent(
    mail_server: Server, seeded: Seed, smtp: SmtpServer, http: httpx.AsyncClient
) -> None:
    base, admin = mail_server.url, h(seeded.admin_token)
    contact = await new_contact(http, mail_server, seeded, "ann@example.com")
    t = (
        await http.post(
            f"{base}/api/v1/tickets", json={"requester_id": contact, "subject": "Hi"}, headers=admin
        )
    ).json()
    async with Client.connect(f"{mail_server.ws}/ws/agent", token=seeded.admin_token, origin=None) as agent:
        await agent.expect("hello")
        await agent.request({"type": "conversation.view", "conversation_id": t["conversation_id"]})
        await mails(smtp, 1)  # "ticket received" went out; the next mail is refused
        smtp.mailbox.replies.append("550 5.1.1 no such user")
        r = await http.post(
            f"{base}/api/v1/tickets/{t['number']}/replies", json={"text": "Hello"}, headers=admin
        )
        message_id = r.json()["message"]["id"]
        failed = await agent.expect("message.status", message_id=message_id, state="failed")
        assert failed["reason"] == "SMTP 550 5.1.1 no such user" and failed["kind"] == "email"
    thread = (await http.get(f"{base}/api/v1/tickets/{t['number']}", headers=admin)).json()["thread"]
    reply = next(m for m in thread if m["id"] == message_id)
    assert reply["deliveries"] == [
        {"kind": "email", "state": "failed", "reason": "SMTP 550 5.1.1 no such user"}
    ]


async def test_openapi_documents_real_schemas(server: Server, http: httpx.AsyncClient) -> None:
    spec = (await http.get(f"{server.url}/api/v1/openapi.json")).json()
    paths = spec["paths"]
    create = paths["/api/v1/tickets"]["post"]
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["requester_id", "subject"] and body["additionalProperties"] is False
    assert "thread" in str(create["responses"]["201"]) and "200" not in create["responses"]
    listing = paths["/api/v1/tickets"]["get"]
    assert {p["name"] for p in listing["parameters"] if p["in"] == "query"} >= {
        "status",
        "breached",
        "sort",
        "cursor",
    }
    patch = paths["/api/v1/tickets/{number}"]["patch"]["requestBody"]["content"]["application/json"]["schema"]
    assert patch["required"] == ["version"]
    assert (
        "into"
        in paths["/api/v1/tickets/{number}/merge"]["post"]["requestBody"]["content"]["application/json"][
            "schema"
        ]["properties"]
    )
    policy = paths["/api/v1/sla-policies"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(policy["properties"]["targets"]["properties"]) == {
        "first_response_s",
        "next_response_s",
        "resolution_s",
    }
    field = paths["/api/v1/ticket-fields"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert field["properties"]["type"]["enum"] == ["text", "number", "dropdown", "checkbox", "date"]


async def test_ticket_frames_reach_the_assignee_and_the_team_not_everyone(
    server: Server, seeded: Seed, http: httpx.AsyncClient
) -> None:
    base, admin = server.url, h(seeded.admin_token)
    team = (
        await http.post(
            f"{base}/api/v1/teams", json={"name": "Billing", "members": [seeded.agent_id]}, headers=admin
        )
    ).json()
    ann = await new_contact(http, server, seeded, None)
    async with Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as bob:
        await bob.expect("hello")
        other = (
            await http.post(
                f"{base}/api/v1/tickets", json={"requester_id": ann, "subject": "not Bob's"}, headers=admin
            )
        ).json()
        ours = (
            await http.post(
                f"{base}/api/v1/tickets",
                json={"requester_id": ann, "subject": "team", "team_id": team["id"]},
                headers=admin,
            )
        ).json()
        got = await bob.expect("ticket", ticket__number=ours["number"])
        assert got["ticket"]["team_id"] == team["id"]
        await bob.drain(0.5)
        assert not [
            f for f in bob.frames if f["type"] == "ticket" and f["ticket"]["number"] == other["number"]
        ]
        # assigning the other one to Bob: now he gets it, and it opens
        r = await http.patch(
            f"{base}/api/v1/tickets/{other['number']}",
            json={"version": other["version"], "assignee_id": seeded.agent_id},
            headers=admin,
        )
        assert r.json()["status"] == "open"
        mine = await bob.expect("ticket", ticket__number=other["number"])
        assert mine["ticket"]["assignee_id"] == seeded.agent_id


async def test_a_new_conversation_of_the_requester_threads_into_the_open_ticket(
    server: Server, seeded: Seed, http: httpx.AsyncClient
) -> None:
    base, admin = server.url, h(seeded.admin_token)
    session = await visitor_token(http, base, seeded.inbox_key)
    t = (
        await http.post(
            f"{base}/api/v1/tickets",
            json={"requester_id": session["contact_id"], "subject": "Phone call"},
            headers=admin,
        )
    ).json()
    async with (
        Client.connect(f"{server.ws}/ws/visitor?token={session['token']}") as visitor,
        Client.connect(f"{server.ws}/ws/agent", token=seeded.admin_token, origin=None) as agent,
    ):
        await visitor.expect("hello")
        await agent.expect("hello")
        cid = (await visitor.request({"type": "conversation.start"}))["conversation_id"]
        assert cid != t["conversation_id"]
        await visitor.request(
            {"type": "message.send", "conversation_id": cid, "client_id": "w", "text": "About my call"}
        )
        await agent.expect("ticket", ticket__number=t["number"], timeout=10)
    got = (await http.get(f"{base}/api/v1/tickets/{t['number']}", headers=admin)).json()
    assert "About my call" in [m["text"] for m in got["thread"]]
    assert {m["conversation_id"] for m in got["thread"]} == {cid}
    assert ("conversation", None, cid) in [(a["field"], a["from"], a["to"]) for a in got["audit"]]
    listed = (
        await http.get(f"{base}/api/v1/tickets", params={"requester": session["contact_id"]}, headers=admin)
    ).json()
    assert [x["number"] for x in listed["items"]] == [t["number"]]  # no second ticket
