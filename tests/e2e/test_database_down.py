"""A real server on PostgreSQL whose database becomes unreachable: REST answers 503 `unavailable`,
WebSocket frames get an `unavailable` error and the connections stay open; when the database is back,
everything works again (the same client_id then stores the message once)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import Client, run_server, seed, settings_for, visitor_token
from tests.services import _pg_admin, create_pg_database, drop_pg_database

pytestmark = pytest.mark.postgres


@pytest.fixture
def own_pg_url() -> Iterator[str]:
    url = create_pg_database()
    yield url
    _pg_admin(f'ALTER DATABASE "{url.rsplit("/", 1)[1]}" ALLOW_CONNECTIONS true')
    drop_pg_database(url)


def cut(url: str) -> None:
    """No new connections, and every open one terminated: the database is gone for the server."""
    name = url.rsplit("/", 1)[1]
    _pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    _pg_admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")


def restore(url: str) -> None:
    _pg_admin(f'ALTER DATABASE "{url.rsplit("/", 1)[1]}" ALLOW_CONNECTIONS true')


async def test_unreachable_database_is_unavailable_on_rest_and_websocket_and_recovers(
    own_pg_url: str, tmp_path: Path
) -> None:
    s = await seed(own_pg_url)
    auth = {"Authorization": f"Bearer {s.agent_token}"}
    async with (
        run_server(settings_for(own_pg_url, tmp_path)) as server,
        httpx.AsyncClient(timeout=10) as http,
    ):
        tok = (await visitor_token(http, server.url, s.inbox_key))["token"]
        async with (
            Client.connect(f"{server.ws}/ws/visitor?token={tok}") as visitor,
            Client.connect(f"{server.ws}/ws/agent", token=s.agent_token, origin=None) as agent,
        ):
            await agent.expect("hello")
            cid = (await visitor.request({"type": "conversation.start"}))["conversation_id"]
            first = await visitor.request(
                {"type": "message.send", "conversation_id": cid, "client_id": "m1", "text": "hello"}
            )
            assert first["type"] == "ack"

            cut(own_pg_url)
            try:
                r = await http.get(f"{server.url}/api/v1/conversations", headers=auth)
                assert r.status_code == 503, r.text
                assert r.json()["error"]["code"] == "unavailable"
                r = await http.get(f"{server.url}/api/v1/conversations/{cid}/messages", headers=auth)
                assert (r.status_code, r.json()["error"]["code"]) == (503, "unavailable")

                err = await visitor.request(
                    {
                        "type": "message.send",
                        "conversation_id": cid,
                        "client_id": "m2",
                        "text": "are you there",
                    }
                )
                assert err == {**err, "type": "error", "code": "unavailable"}
                err = await visitor.request({"type": "read", "conversation_id": cid, "seq": 1})
                assert (err["type"], err["code"]) == ("error", "unavailable")
                err = await agent.request({"type": "conversation.claim", "conversation_id": cid})
                assert (err["type"], err["code"]) == ("error", "unavailable")
                # the connections are still open
                for client in (visitor, agent):
                    await client.send({"type": "ping", "ref": "p"})
                    await client.expect("pong", ref="p")
                # a new connection cannot be authenticated now: it is told to come back later
                async with Client.connect(f"{server.ws}/ws/agent", token=s.agent_token, origin=None) as late:
                    assert await late.closed_with() == 1013
            finally:
                restore(own_pg_url)

            again = await visitor.request(
                {"type": "message.send", "conversation_id": cid, "client_id": "m2", "text": "there?"}
            )
            assert again["type"] == "ack" and again["seq"] == first["seq"] + 1
            claim = await agent.request({"type": "conversation.claim", "conversation_id": cid})
            assert claim["type"] == "ack", claim
            r = await http.get(f"{server.url}/api/v1/conversations/{cid}/messages", headers=auth)
            assert r.status_code == 200
            assert [m["text"] for m in r.json()["items"] if m["kind"] == "text"] == ["hello", "there?"]


async def test_a_resume_whose_reads_fail_is_sent_once_the_database_is_back(
    own_pg_url: str, tmp_path: Path
) -> None:
    """The database goes away between a tab's snapshot and its ``resume``: the resume's reads fail (the
    tab is told `unavailable`), and nothing else would ever send the missed messages, since the agent
    has stopped writing. Once the database is back the tab gets every message it missed, once, in order."""
    s = await seed(own_pg_url)
    async with (
        run_server(settings_for(own_pg_url, tmp_path)) as server,
        httpx.AsyncClient(timeout=10) as http,
    ):
        tok = (await visitor_token(http, server.url, s.inbox_key))["token"]
        async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as visitor:
            cid = (await visitor.request({"type": "conversation.start"}))["conversation_id"]
        async with Client.connect(f"{server.ws}/ws/agent", token=s.agent_token, origin=None) as agent:
            await agent.expect("hello")
            claim = await agent.request({"type": "conversation.claim", "conversation_id": cid})
            assert claim["type"] == "ack", claim
            head = 0
            for n in range(5):
                ack = await agent.request(
                    {"type": "message.send", "conversation_id": cid, "client_id": f"a{n}", "text": f"{n}"}
                )
                assert ack["type"] == "ack", ack
                head = ack["seq"]

        async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as tab:
            await tab.expect("snapshot")
            cut(own_pg_url)
            try:
                await tab.send({"type": "resume", "cursors": {cid: 0}})
                err = await tab.expect("error", timeout=15)
                assert err["code"] == "unavailable", err
            finally:
                restore(own_pg_url)
            # a liveness bound, not a timing check: the retry backs off up to 10 s while the pool reconnects
            await tab.expect("message", timeout=60, seq=head)
            await tab.drain(0.5)
            seqs = [
                f["seq"] for f in tab.frames if f.get("type") == "message" and f["conversation_id"] == cid
            ]
            assert seqs == list(range(1, head + 1)), seqs
