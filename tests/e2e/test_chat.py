"""A visitor and an agent chat through a real uvicorn server with real WebSocket clients."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import Client, Seed, Server, run_server, seed, settings_for, visitor_token


async def start_chat(http: httpx.AsyncClient, server: Server, seeded: Seed) -> tuple[str, str]:
    """Returns (visitor token, conversation id) of a fresh conversation."""
    tok = (await visitor_token(http, server.url, seeded.inbox_key))["token"]
    async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
        await v.expect("hello")
        ack = await v.request({"type": "conversation.start", "fields": {"topic": "billing"}})
        assert ack["type"] == "ack"
        return tok, ack["conversation_id"]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_visitor_and_agent_chat_both_ways(
    backend: str, http: httpx.AsyncClient, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    s = await seed(url)
    async with run_server(settings_for(url, tmp_path)) as server:
        tok = (await visitor_token(http, server.url, s.inbox_key))["token"]
        async with (
            Client.connect(f"{server.ws}/ws/visitor?token={tok}") as visitor,
            Client.connect(f"{server.ws}/ws/agent", token=s.agent_token, origin=None) as agent,
        ):
            hello = await visitor.expect("hello")
            assert hello["protocol"] == 1 and hello["you"]["kind"] == "contact"
            assert (await agent.expect("hello"))["you"]["name"] == "Bob"

            ack = await visitor.request(
                {"type": "conversation.start", "language": "de", "fields": {"topic": "billing"}}
            )
            cid = ack["conversation_id"]
            conv = await visitor.expect("conversation", conversation__id=cid)
            assert conv["conversation"]["status"] == "queued"
            waiting = await agent.expect("conversation", conversation__id=cid)
            assert waiting["conversation"]["fields"] == {"topic": "billing"}

            sent = await visitor.request(
                {
                    "type": "message.send",
                    "conversation_id": cid,
                    "client_id": "v1",
                    "text": "Hallo, ich habe eine Frage",
                }
            )
            assert sent["type"] == "ack" and sent["seq"] == 1

            claim = await agent.request({"type": "conversation.claim", "conversation_id": cid})
            assert claim == {**claim, "type": "ack", "status": "assigned"}
            assigned = await visitor.expect("conversation", conversation__status="assigned")
            assert assigned["conversation"]["assignee"]["name"] == "Bob"
            joined = await visitor.expect("message", conversation_id=cid, message__kind="event")
            assert joined["message"]["kind"] == "event" and "Bob" in joined["message"]["text"]

            # the agent did not follow the conversation before claiming: history comes by REST
            r = await http.get(
                f"{server.url}/api/v1/conversations/{cid}/messages?after=0",
                headers={"Authorization": f"Bearer {s.agent_token}"},
            )
            assert next(m["text"] for m in r.json()["items"]) == "Hallo, ich habe eine Frage"

            await visitor.send({"type": "typing", "conversation_id": cid, "state": "start"})
            typing = await agent.expect("typing", conversation_id=cid)
            assert typing["author"]["kind"] == "contact" and typing["state"] == "start"

            reply = await agent.request(
                {
                    "type": "message.send",
                    "conversation_id": cid,
                    "client_id": "a1",
                    "text": "Gern, worum geht es?",
                }
            )
            got = await visitor.expect("message", seq=reply["seq"])
            assert got["message"]["text"] == "Gern, worum geht es?"
            assert got["message"]["author"] == {"kind": "agent", "name": "Bob"}  # no agent id for visitors

            note = await agent.request(
                {
                    "type": "message.send",
                    "conversation_id": cid,
                    "client_id": "a2",
                    "text": "customer seems upset",
                    "private": True,
                }
            )
            assert (await agent.expect("message", seq=note["seq"]))["message"]["kind"] == "note"
            after = await visitor.request(
                {"type": "message.send", "conversation_id": cid, "client_id": "v2", "text": "Meine Rechnung"}
            )
            assert after["seq"] == note["seq"] + 1
            agent_sees = await agent.expect("message", seq=after["seq"])
            assert agent_sees["message"]["text"] == "Meine Rechnung"

            read = await agent.request({"type": "read", "conversation_id": cid, "seq": after["seq"]})
            assert read["seq"] == after["seq"]
            receipt = await visitor.expect("read", conversation_id=cid)
            assert receipt["reader"]["kind"] == "agent" and receipt["seq"] == after["seq"]

            closed = await agent.request({"type": "conversation.close", "conversation_id": cid})
            assert closed["status"] == "resolved"
            await visitor.expect("conversation", conversation__status="resolved")
            await visitor.expect("message", message__kind="event")

            # the visitor never received the private note, at any point
            assert not [
                f for f in visitor.frames if f.get("type") == "message" and f["message"]["kind"] == "note"
            ]
            assert "customer seems upset" not in str(visitor.frames)


async def test_resume_after_drop_delivers_exactly_the_missed_messages(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    tok, cid = await start_chat(http, server, seeded)
    async with Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent:
        await agent.expect("hello")
        await agent.request({"type": "conversation.claim", "conversation_id": cid})
        async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as visitor:
            # live from the snapshot on (a message committed before it is history, got by a resume)
            await visitor.expect("snapshot")
            first = await agent.request(
                {"type": "message.send", "conversation_id": cid, "client_id": "a0", "text": "seen"}
            )
            await visitor.expect("message", seq=first["seq"])
        # visitor offline: three messages it misses
        missed = []
        for i in range(3):
            missed.append(
                (
                    await agent.request(
                        {
                            "type": "message.send",
                            "conversation_id": cid,
                            "client_id": f"m{i}",
                            "text": f"missed {i}",
                        }
                    )
                )["seq"]
            )
        async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as visitor:
            await visitor.expect("hello")
            await visitor.drain(0.3)  # the snapshot (conversation frame)
            await visitor.send({"type": "resume", "cursors": {cid: first["seq"]}})
            resumed = await visitor.expect("resumed")
            got = [f for f in visitor.frames if f.get("type") == "message"]
            assert [f["seq"] for f in got] == missed
            assert [f["message"]["text"] for f in got] == ["missed 0", "missed 1", "missed 2"]
            assert resumed["cursors"] == {cid: missed[-1]}
            # and live delivery goes on after the resume, without duplicates
            live = await agent.request(
                {"type": "message.send", "conversation_id": cid, "client_id": "live", "text": "live again"}
            )
            await visitor.expect("message", seq=live["seq"])
            seqs = [f["seq"] for f in visitor.frames if f.get("type") == "message"]
            assert seqs == sorted(set(seqs))


async def test_duplicate_client_id_returns_first_ack_and_stores_nothing(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    tok, cid = await start_chat(http, server, seeded)
    async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
        await v.expect("hello")
        first = await v.request(
            {"type": "message.send", "conversation_id": cid, "client_id": "same", "text": "one"}
        )
        again = await v.request(
            {"type": "message.send", "conversation_id": cid, "client_id": "same", "text": "two"}
        )
        assert again["type"] == "ack"
        assert (again["message_id"], again["seq"]) == (first["message_id"], first["seq"])
    r = await http.get(
        f"{server.url}/api/v1/conversations/{cid}/messages",
        headers={"Authorization": f"Bearer {seeded.agent_token}"},
    )
    assert [m["text"] for m in r.json()["items"]] == ["one"]


async def test_reconnecting_with_the_same_token_keeps_the_contact_and_conversation(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    tok, cid = await start_chat(http, server, seeded)
    refreshed = await visitor_token(http, server.url, seeded.inbox_key, token=tok)
    async with Client.connect(f"{server.ws}/ws/visitor?token={refreshed['token']}") as v:
        await v.expect("hello")
        snap = await v.expect("conversation")
        assert snap["conversation"]["id"] == cid
        again = await v.request({"type": "conversation.start"})
        assert again["conversation_id"] == cid  # one open conversation per visitor and inbox


async def test_visitor_writing_after_close_reopens_into_the_queue(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    tok, cid = await start_chat(http, server, seeded)
    async with (
        Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent,
        Client.connect(f"{server.ws}/ws/visitor?token={tok}") as visitor,
    ):
        await agent.request({"type": "conversation.claim", "conversation_id": cid})
        await agent.request({"type": "conversation.close", "conversation_id": cid})
        await visitor.expect("conversation", conversation__status="resolved")
        ack = await visitor.request(
            {"type": "message.send", "conversation_id": cid, "client_id": "x", "text": "one more thing"}
        )
        assert ack["type"] == "ack"
        reopened = await agent.expect("conversation", conversation__id=cid, conversation__status="queued")
        assert reopened["conversation"]["assignee"] is None


async def test_two_agents_claiming_at_once_one_wins(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    _, cid = await start_chat(http, server, seeded)
    async with (
        Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as a,
        Client.connect(f"{server.ws}/ws/agent", token=seeded.admin_token, origin=None) as b,
    ):
        import asyncio

        ra, rb = await asyncio.gather(
            a.request({"type": "conversation.claim", "conversation_id": cid}),
            b.request({"type": "conversation.claim", "conversation_id": cid}),
        )
        assert sorted([ra["type"], rb["type"]]) == ["ack", "ack"] or sorted([ra["type"], rb["type"]]) == [
            "ack",
            "error",
        ]
        # an admin may take over; a plain agent may not take an assigned conversation
        if ra["type"] == "error":
            assert ra["code"] == "conflict"


async def test_agent_presence_is_shared(server: Server, seeded: Seed) -> None:
    async with Client.connect(f"{server.ws}/ws/agent", token=seeded.admin_token, origin=None) as admin:
        await admin.expect("hello")
        async with Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as bob:
            await bob.expect("hello")
            online = await admin.expect("presence", agent__name="Bob")
            assert online["status"] == "online"
            await bob.request({"type": "status.set", "status": "away"})
            assert (await admin.expect("presence", agent__name="Bob"))["status"] == "away"
            await bob.request({"type": "status.set", "status": "online"})
            assert (await admin.expect("presence", agent__name="Bob"))["status"] == "online"
        assert (await admin.expect("presence", agent__name="Bob"))["status"] == "offline"


async def test_resume_after_the_conversation_closed_meanwhile_brings_its_state(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    tok, cid = await start_chat(http, server, seeded)
    async with Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent:
        await agent.request({"type": "conversation.claim", "conversation_id": cid})
        read = await agent.request({"type": "read", "conversation_id": cid, "seq": 1})
        assert read["type"] == "ack"
        await agent.request({"type": "conversation.close", "conversation_id": cid})
    async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as visitor:
        snapshot = await visitor.expect("snapshot")
        assert snapshot["conversation_ids"] == []  # no open conversation any more
        await visitor.send({"type": "resume", "cursors": {cid: 0}})
        state = await visitor.expect("conversation", conversation__id=cid)
        assert state["conversation"]["status"] == "resolved"
        # the visitor view: how far the agent side read, not which agent (docs/protocol.md)
        assert state["conversation"]["reads"] == [{"reader": {"kind": "agent"}, "seq": 1}]
        await visitor.expect("resumed")
        events = [f["message"]["text"] for f in visitor.frames if f.get("type") == "message"]
        assert events[-1] == "Bob closed the conversation"
