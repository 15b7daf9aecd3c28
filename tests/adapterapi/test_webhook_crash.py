"""The crash window is gone: a server process killed (SIGKILL) right after its last ack has already
written the webhook events of everything it acked, and a restarted process delivers each of them, once
per event id. The first process runs no outbox worker, so nothing was sent before the crash: what is
delivered afterwards is what the changes' own transactions wrote."""

from __future__ import annotations

import itertools
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from chatserver.store.db import make_engine
from chatserver.store.schema import outbox
from chatserver.webhooks.store import EVENTS, KIND
from tests.adapterapi.receiver import Received, running_receiver
from tests.e2e.harness import Client, ServerProcess, free_port, seed, visitor_token

pytestmark = pytest.mark.slow

SECRET = "s3cret-for-the-crash-0001"


async def stored_events(url: str) -> list[tuple[str, dict[str, Any]]]:
    """(webhook id, event) of every webhook row in the database, read by this test on its own."""
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            found = await conn.execute(sa.select(outbox.c.payload).where(outbox.c.kind == KIND))
            return [(r.payload["webhook_id"], dict(r.payload["event"])) for r in found]
    finally:
        await engine.dispose()


def chain(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The (previous, status) of status changes in version order; each snapshot agrees with its event."""
    ordered = sorted(events, key=lambda e: int(e["data"]["conversation"]["version"]))
    for e in ordered:
        assert e["data"]["conversation"]["status"] == e["data"]["status"]
    return [(e["data"]["previous_status"], e["data"]["status"]) for e in ordered]


async def test_the_events_of_acked_changes_survive_a_sigkill(
    tmp_path: Path, procs: list[ServerProcess]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'crash.db'}"
    s = await seed(url)
    env = {
        "DATABASE_URL": url,
        "CHATSERVER_DATA_DIR": str(tmp_path / "data"),
        "CHATSERVER_SECRET_KEY": "k" * 40,
        "CHATSERVER_ROUTING": "manual",
        "CHATSERVER_WEBHOOK_ALLOW_PRIVATE": "true",
        "CHATSERVER_WORKERS_IN_SERVE": "false",  # (the restarted one sends)
        "CHATSERVER_OUTBOX_RETRY_S": "0.2",
    }
    port = free_port()  # where the receiver will listen
    server = ServerProcess(env=env, log=tmp_path / "server.log")
    procs.append(server)
    server.start()
    admin = {"Authorization": f"Bearer {s.admin_token}"}
    async with httpx.AsyncClient(timeout=30) as http:
        hooks: dict[str, str] = {}
        for path, events in (("/all", list(EVENTS)), ("/tickets", ["ticket.updated"])):
            r = await http.post(
                f"{server.url}/api/v1/webhooks",
                json={"url": f"http://127.0.0.1:{port}{path}", "events": events, "secret": SECRET},
                headers=admin,
            )
            assert r.status_code == 201, r.text
            hooks[path] = r.json()["id"]
        tok = (await visitor_token(http, server.url, s.inbox_key))["token"]
    acked: list[str] = []
    async with (
        Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v,
        Client.connect(f"{server.ws}/ws/agent", token=s.agent_token, origin=None) as agent,
    ):
        await v.expect("hello")
        await agent.expect("hello")
        cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
        refs = [
            await v.send(
                {"type": "message.send", "conversation_id": cid, "client_id": f"c{i}", "text": f"m{i}"}
            )
            for i in range(20)
        ]
        for ref in refs:
            ack = await v.next(lambda f, r=ref: f.get("ref") == r)
            assert ack["type"] == "ack", ack
            acked.append(ack["message_id"])
        assert (await agent.request({"type": "conversation.claim", "conversation_id": cid}))["type"] == "ack"
        escalated = await agent.request({"type": "conversation.escalate", "conversation_id": cid})
        assert escalated["type"] == "ack", escalated
        closed = await agent.request({"type": "conversation.close", "conversation_id": cid})
        assert closed["status"] == "resolved", closed
        rated = await v.request({"type": "csat.submit", "conversation_id": cid, "score": 4, "comment": "ok"})
        assert rated["type"] == "ack", rated
        server.kill(signal.SIGKILL)  # right after the last ack: no graceful shutdown, nothing flushed

    # Already in the database, written by the changes' own transactions:
    stored = await stored_events(url)
    mine = [e for hook, e in stored if hook == hooks["/all"]]
    by_type: dict[str, list[dict[str, Any]]] = {t: [e for e in mine if e["type"] == t] for t in EVENTS}
    created = [e["data"]["message"]["id"] for e in by_type["message.created"]]
    assert sorted(created) == sorted(acked)  # every acked message, once
    assert [e["data"]["conversation"]["id"] for e in by_type["conversation.created"]] == [cid]
    statuses = chain(by_type["conversation.status_changed"])
    assert statuses[0] == ("queued", "assigned") and statuses[-1][1] == "resolved"
    assert all(a[1] == b[0] for a, b in itertools.pairwise(statuses))  # each from the last
    versions = sorted(int(e["data"]["ticket"]["version"]) for e in by_type["ticket.updated"])
    assert versions == list(range(1, len(versions) + 1))  # every version of the ticket, once
    assert by_type["ticket.updated"][0]["data"]["ticket"]["conversation_id"] == cid
    [csat] = by_type["csat.submitted"]
    assert csat["data"]["conversation_id"] == cid and "4/5" in csat["data"]["message"]["text"]
    only_tickets = [e for hook, e in stored if hook == hooks["/tickets"]]
    assert {e["type"] for e in only_tickets} == {"ticket.updated"}
    assert {e["id"] for e in only_tickets} == {e["id"] for e in by_type["ticket.updated"]}

    # ... and delivered by the restarted process, each event id once to each webhook.
    async with running_receiver(port) as rx:
        server.env = {**env, "CHATSERVER_WORKERS_IN_SERVE": "true"}
        server.start()
        wanted = {("/all", str(e["id"])) for e in mine} | {("/tickets", str(e["id"])) for e in only_tickets}

        def arrived(reqs: list[Received]) -> bool:
            return wanted <= {(r.path, str(r.event["id"])) for r in reqs}

        reqs = await rx.wait_for(arrived, timeout=60)
        counts = Counter((r.path, str(r.event["id"])) for r in reqs)
        assert set(counts) == wanted and set(counts.values()) == {1}
        for r in reqs:  # the stored event, byte for byte what the receiver got
            assert r.event == next(e for _, e in stored if e["id"] == r.event["id"])
            assert r.headers["x-chatserver-event-id"] == r.event["id"]
