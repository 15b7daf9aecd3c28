"""Outgoing webhooks against a real local receiver: signed events (checked here with the standard
library, not the server's code), retried through the outbox with the same event id, re-sent on demand;
a receiver that hangs or answers 10 MB delays nothing else."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from typing import Any

import httpx
import pytest

from tests.adapterapi.helpers import admin
from tests.adapterapi.receiver import Received, running_receiver
from tests.e2e.harness import Client, Seed, Server, visitor_token


@pytest.fixture
def server_overrides() -> dict[str, Any]:
    return {
        "webhook_allow_private": True,
        "workers_in_serve": True,
        "outbox_retry_s": 0.2,
        "webhook_timeout_s": 1.0,
    }


def signed_by(secret: str, r: Received) -> bool:
    """An independent check of ``X-Chatserver-Signature: t=..,v1=..``."""
    fields = dict(part.split("=", 1) for part in r.headers["x-chatserver-signature"].split(","))
    expected = hmac.new(secret.encode(), fields["t"].encode() + b"." + r.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"]) and abs(int(fields["t"]) - time.time()) < 300


async def _register(
    http: httpx.AsyncClient, server: Server, seeded: Seed, url: str, events: list[str]
) -> dict[str, Any]:
    r = await http.post(
        f"{server.url}/api/v1/webhooks",
        json={"url": url, "events": events, "secret": "s3cret-for-the-test-0001"},
        headers=admin(seeded),
    )
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    return data


async def test_signed_events_retried_with_the_same_id_and_resent(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    async with running_receiver() as rx:
        hook = await _register(
            http,
            server,
            seeded,
            rx.url + "/flaky",
            ["conversation.created", "message.created", "conversation.status_changed"],
        )
        assert hook["secret"] == "s3cret-for-the-test-0001"
        tok = (await visitor_token(http, server.url, seeded.inbox_key))["token"]
        async with (
            Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v,
            Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent,
        ):
            await v.expect("hello")
            await agent.expect("hello")
            cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
            await v.request(
                {"type": "message.send", "conversation_id": cid, "client_id": "v1", "text": "Hello"}
            )
            await agent.request({"type": "conversation.claim", "conversation_id": cid})

        def delivered(types: set[str]) -> Any:
            def check(reqs: list[Received]) -> bool:
                ok = [
                    r
                    for r in reqs
                    if r.path == "/flaky" and len([x for x in reqs if x.event["id"] == r.event["id"]]) >= 3
                ]
                return types <= {str(r.event["type"]) for r in ok}

            return check

        wanted = {"conversation.created", "message.created", "conversation.status_changed"}
        reqs = await rx.wait_for(delivered(wanted), timeout=30)
        assert all(signed_by("s3cret-for-the-test-0001", r) for r in reqs)
        assert not any(signed_by("another-secret-000000001", r) for r in reqs)
        by_id: dict[str, list[Received]] = {}
        for r in reqs:
            by_id.setdefault(str(r.event["id"]), []).append(r)
        for attempts in by_id.values():  # every attempt of one event carries the same event, byte for byte
            assert len({a.body for a in attempts}) == 1
        created = next(r.event for r in reqs if r.event["type"] == "message.created")
        assert created["data"]["message"]["text"] == "Hello"  # type: ignore[index]
        changed = next(r.event for r in reqs if r.event["type"] == "conversation.status_changed")
        assert changed["data"]["status"] == "assigned"  # type: ignore[index]
        assert reqs[0].headers["x-chatserver-event-id"] == reqs[0].event["id"]

        async def settled() -> list[dict[str, Any]]:
            for _ in range(100):
                got = (
                    await http.get(
                        f"{server.url}/api/v1/webhooks/{hook['id']}/deliveries", headers=admin(seeded)
                    )
                ).json()["items"]
                if {d["type"] for d in got if d["state"] == "sent"} >= wanted:
                    return list(got)
                await asyncio.sleep(0.1)
            raise AssertionError(got)

        items = await settled()
        sent = next(d for d in items if d["type"] == "message.created")
        assert sent["state"] == "sent" and sent["attempts"] == 3 and sent["event_id"] == created["id"]

        before = len(rx.requests)
        r = await http.post(
            f"{server.url}/api/v1/webhooks/{hook['id']}/deliveries/{sent['id']}/resend", headers=admin(seeded)
        )
        assert r.status_code == 202 and r.json()["state"] == "queued"
        again = await rx.wait_for(lambda reqs: len(reqs) > before)
        assert again[before].event["id"] == created["id"]  # the same event: the receiver dedupes

        r = await http.get(f"{server.url}/api/v1/webhooks", headers=admin(seeded))
        assert [h["id"] for h in r.json()["items"]] == [hook["id"]] and "secret" not in r.json()["items"][0]
        r = await http.delete(f"{server.url}/api/v1/webhooks/{hook['id']}", headers=admin(seeded))
        assert r.status_code == 204
        r = await http.get(f"{server.url}/api/v1/webhooks/{hook['id']}/deliveries", headers=admin(seeded))
        assert r.status_code == 404


async def test_a_hanging_or_huge_receiver_delays_nothing_else(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    async with running_receiver() as rx:
        hang = await _register(http, server, seeded, rx.url + "/hang", ["conversation.created"])
        await _register(http, server, seeded, rx.url + "/huge", ["conversation.created"])
        await _register(http, server, seeded, rx.url + "/ok", ["conversation.created"])
        tok = (await visitor_token(http, server.url, seeded.inbox_key))["token"]
        async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
            await v.expect("hello")
            await v.request({"type": "conversation.start"})
            await rx.wait_for(lambda reqs: {"/ok", "/huge", "/hang"} <= {r.path for r in reqs})
            # the server keeps serving while the hanging receiver holds its connection
            await v.send({"type": "ping"})
            assert (await v.expect("pong"))["type"] == "pong"

        async def state_of(path_hook: dict[str, Any]) -> dict[str, Any]:
            for _ in range(200):
                got = (
                    await http.get(
                        f"{server.url}/api/v1/webhooks/{path_hook['id']}/deliveries", headers=admin(seeded)
                    )
                ).json()["items"]
                if got and got[0]["attempts"] >= 1:
                    return dict(got[0])
                await asyncio.sleep(0.1)
            raise AssertionError("no attempt recorded")

        hung = await state_of(hang)
        assert hung["state"] == "queued" and "no answer within" in hung["reason"]
        hooks = (await http.get(f"{server.url}/api/v1/webhooks", headers=admin(seeded))).json()["items"]
        for h in hooks:
            if h["url"].endswith(("/huge", "/ok")):
                assert (await state_of(h))["state"] == "sent"


async def test_bad_webhooks_are_refused(http: httpx.AsyncClient, server: Server, seeded: Seed) -> None:
    url = f"{server.url}/api/v1/webhooks"
    for body in (
        {"url": "ftp://example.com/x", "events": ["message.created"]},
        {"url": "http://169.254.169.254/latest/meta-data", "events": ["message.created"]},
        {"url": "http://[fe80::1]/hook", "events": ["message.created"]},
        {"url": "http://user:pw@127.0.0.1/hook", "events": ["message.created"]},
        {"url": "http://127.0.0.1/hook", "events": ["nothing.happened"]},
        {"url": "http://127.0.0.1/hook", "events": []},
        {"url": "http://127.0.0.1/hook", "events": ["message.created"], "secret": "short"},
    ):
        r = await http.post(url, json=body, headers=admin(seeded))
        assert r.status_code == 422, (body, r.text)
    r = await http.post(
        url,
        json={"url": "http://127.0.0.1/x", "events": ["message.created"]},
        headers={"Authorization": f"Bearer {seeded.agent_token}"},
    )
    assert r.status_code == 403
    assert (await http.get(url, headers=admin(seeded))).json()["items"] == []


async def test_ticket_and_csat_events(http: httpx.AsyncClient, server: Server, seeded: Seed) -> None:
    async with running_receiver() as rx:
        await _register(http, server, seeded, rx.url + "/ok", ["ticket.updated", "csat.submitted"])
        tok = (await visitor_token(http, server.url, seeded.inbox_key))["token"]
        async with (
            Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v,
            Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent,
        ):
            await v.expect("hello")
            await agent.expect("hello")
            cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
            await v.request(
                {
                    "type": "message.send",
                    "conversation_id": cid,
                    "client_id": "v1",
                    "text": "My order is late",
                }
            )
            await agent.request({"type": "conversation.claim", "conversation_id": cid})
            escalated = await agent.request({"type": "conversation.escalate", "conversation_id": cid})
            assert escalated["type"] == "ack", escalated
            closed = await agent.request({"type": "conversation.close", "conversation_id": cid})
            assert closed["status"] == "resolved", closed
            rated = await v.request(
                {"type": "csat.submit", "conversation_id": cid, "score": 5, "comment": "quick"}
            )
            assert rated["type"] == "ack", rated
        reqs = await rx.wait_for(
            lambda rs: {"ticket.updated", "csat.submitted"} <= {str(r.event["type"]) for r in rs}
        )
        assert all(signed_by("s3cret-for-the-test-0001", r) for r in reqs)
        ticket: Any = next(r.event for r in reqs if r.event["type"] == "ticket.updated")
        assert ticket["data"]["ticket"]["subject"] == "My order is late"
        csat: Any = next(r.event for r in reqs if r.event["type"] == "csat.submitted")
        assert csat["data"]["conversation_id"] == cid and "5/5" in csat["data"]["message"]["text"]
        assert {str(r.event["type"]) for r in reqs} <= {
            "ticket.updated",
            "csat.submitted",
        }  # only what it asked for
