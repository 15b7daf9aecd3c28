"""Skill-based routing through a running server: offers, decline, timeout (RONA), capacity, escalation,
disconnect grace, transfer, configuration and its bad input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import Client, Seed, Server, run_server, seed, settings_for, visitor_token

FAST = {"routing": "offers", "offer_timeout_s": 1.0, "agent_grace_s": 0.6, "rona_threshold": 1}


@pytest.fixture
async def routed(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[tuple[Server, Seed]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"
    s = await seed(url)
    overrides: dict[str, Any] = {**FAST, **getattr(request, "param", {})}
    async with run_server(settings_for(url, tmp_path, **overrides)) as server:
        yield server, s


async def visitor(http: httpx.AsyncClient, server: Server, s: Seed, **start: Any) -> tuple[str, str]:
    tok = (await visitor_token(http, server.url, s.inbox_key))["token"]
    async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
        cid = (await v.request({"type": "conversation.start", **start}))["conversation_id"]
    return tok, cid


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_offer_then_accept_assigns_and_the_visitor_sees_it(
    routed: tuple[Server, Seed], http: httpx.AsyncClient
) -> None:
    server, s = routed
    async with Client.connect(f"{server.ws}/ws/agent", token=s.agent_token, origin=None) as bob:
        assert (await bob.expect("hello"))["routing"] == "offers"
        await bob.expect("snapshot")
        tok, cid = await visitor(http, server, s)
        async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
            offer = await bob.expect("offer", conversation__id=cid)
            assert offer["expires_at"] and offer["conversation"]["status"] == "offered"
            ack = await bob.request({"type": "offer.accept", "offer_id": offer["offer_id"]})
            assert ack["status"] == "assigned"
            await v.expect(
                "conversation", conversation__status="assigned", conversation__assignee__name="Bob"
            )
            joined = await v.expect("message", message__kind="event")
            assert joined["message"]["text"] == "Bob joined the conversation"
            again = await bob.request({"type": "offer.accept", "offer_id": offer["offer_id"]})
            assert again["code"] == "conflict"  # an answered offer cannot be answered twice
    metrics = (await http.get(f"{server.url}/api/v1/routing/metrics", headers=auth(s.admin_token))).json()
    assert metrics["events"]["offer"] == 1 and metrics["events"]["accept"] == 1
    assert metrics["router"]["leader"] is True and metrics["wait_ms_avg"] is not None


async def test_decline_goes_to_the_next_agent_and_others_cannot_accept(
    routed: tuple[Server, Seed], http: httpx.AsyncClient
) -> None:
    server, s = routed
    async with (
        Client.connect(f"{server.ws}/ws/agent", token=s.agent_token, origin=None) as bob,
        Client.connect(f"{server.ws}/ws/agent", token=s.admin_token, origin=None) as ada,
    ):
        await bob.expect("snapshot")
        await ada.expect("snapshot")
        _, cid = await visitor(http, server, s)
        first, second = (bob, ada), (ada, bob)
        got = await asyncio.wait_for(_first_offer(bob, ada, cid), 5)
        holder, other = first if got[0] is bob else second
        offer = got[1]
        stolen = await other.request({"type": "offer.accept", "offer_id": offer["offer_id"]})
        assert stolen["code"] == "forbidden"
        assert (await other.request({"type": "offer.accept", "offer_id": "of_unknown"}))["code"] == "conflict"
        declined = await holder.request({"type": "offer.decline", "offer_id": offer["offer_id"]})
        assert declined["status"] == "queued"
        nxt = await other.expect("offer", conversation__id=cid)
        assert (await other.request({"type": "offer.accept", "offer_id": nxt["offer_id"]}))[
            "status"
        ] == "assigned"


async def _first_offer(a: Client, b: Client, cid: str) -> tuple[Client, dict[str, Any]]:
    ta = asyncio.create_task(a.expect("offer", conversation__id=cid))
    tb = asyncio.create_task(b.expect("offer", conversation__id=cid))
    done, pending = await asyncio.wait({ta, tb}, return_when=asyncio.FIRST_COMPLETED)
    for t in pending:
        t.cancel()
    winner = done.pop()
    return (a if winner is ta else b), winner.result()


async def test_unanswered_offer_moves_on_and_sets_the_agent_away(
    routed: tuple[Server, Seed], http: httpx.AsyncClient
) -> None:
    server, s = routed
    async with (
        Client.connect(f"{server.ws}/ws/agent", token=s.agent_token, origin=None) as bob,
        Client.connect(f"{server.ws}/ws/agent", token=s.admin_token, origin=None) as ada,
    ):
        await bob.expect("snapshot")
        await ada.expect("snapshot")
        _, cid = await visitor(http, server, s)
        silent, offer = await asyncio.wait_for(_first_offer(bob, ada, cid), 5)
        other = ada if silent is bob else bob
        revoked = await silent.expect("offer.revoked", timeout=5)
        assert revoked == {**revoked, "offer_id": offer["offer_id"], "reason": "expired"}
        notice = await silent.expect("notice", timeout=5)
        assert (
            notice["code"] == "rona" and "set to away because an offer went unanswered" in notice["message"]
        )
        name = "Bob" if silent is bob else "Ada"
        assert (await other.expect("presence", agent__name=name, status="away"))["status"] == "away"
        nxt = await other.expect("offer", conversation__id=cid, timeout=5)
        late = await silent.request({"type": "offer.accept", "offer_id": offer["offer_id"]})
        assert late["code"] == "conflict"  # the expired offer cannot be taken
        assert (await other.request({"type": "offer.accept", "offer_id": nxt["offer_id"]}))["type"] == "ack"


@pytest.mark.parametrize("routed", [{"max_concurrent": 1}], indirect=True)
async def test_capacity_is_never_exceeded_and_the_queue_moves(
    routed: tuple[Server, Seed], http: httpx.AsyncClient
) -> None:
    server, s = routed
    async with Client.connect(f"{server.ws}/ws/agent", token=s.agent_token, origin=None) as bob:
        await bob.expect("snapshot")
        _, first = await visitor(http, server, s)
        offer = await bob.expect("offer", conversation__id=first)
        await bob.request({"type": "offer.accept", "offer_id": offer["offer_id"]})
        tok2, second = await visitor(http, server, s)
        async with Client.connect(f"{server.ws}/ws/visitor?token={tok2}") as v2:
            queued = await v2.expect("conversation", conversation__queue__position=1, timeout=5)
            assert queued["conversation"]["queue"]["estimated_wait_s"] >= 0
            await asyncio.sleep(0.3)
            assert not [f for f in bob.pending if f.get("type") == "offer"]  # full: no second offer
            await bob.request({"type": "conversation.close", "conversation_id": first})
            nxt = await bob.expect("offer", conversation__id=second, timeout=5)
            await bob.request({"type": "offer.accept", "offer_id": nxt["offer_id"]})
            await v2.expect("conversation", conversation__status="assigned")


async def test_nobody_eligible_tells_the_visitor_and_leaves_it_pending(
    routed: tuple[Server, Seed], http: httpx.AsyncClient
) -> None:
    server, s = routed
    tok, cid = await visitor(http, server, s)  # no agent is online
    async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
        await v.send({"type": "resume", "cursors": {cid: 0}})
        pending = await v.expect("conversation", conversation__status="pending", timeout=5)
        assert pending["conversation"]["pending_reason"] == "no_agent_eligible"
        told = await v.expect("message", message__kind="event", timeout=5)
        assert "Leave your message" in told["message"]["text"]
        ack = await v.request(
            {"type": "message.send", "conversation_id": cid, "client_id": "m", "text": "My order?"}
        )
        assert ack["type"] == "ack"  # the visitor can still leave a message


async def test_disconnected_agent_gives_conversations_back_after_grace(
    routed: tuple[Server, Seed], http: httpx.AsyncClient
) -> None:
    server, s = routed
    async with Client.connect(f"{server.ws}/ws/agent", token=s.admin_token, origin=None) as ada:
        await ada.expect("snapshot")
        await ada.request({"type": "status.set", "status": "away"})
        async with Client.connect(f"{server.ws}/ws/agent", token=s.agent_token, origin=None) as bob:
            await bob.expect("snapshot")
            _, cid = await visitor(http, server, s)
            offer = await bob.expect("offer", conversation__id=cid)
            await bob.request({"type": "offer.accept", "offer_id": offer["offer_id"]})
        # Bob's browser is gone; Ada comes back online
        await ada.request({"type": "status.set", "status": "online"})
        requeued = await ada.expect(
            "conversation", conversation__id=cid, conversation__status="queued", timeout=5
        )
        assert requeued["conversation"]["assignee"] is None
        offer = await ada.expect("offer", conversation__id=cid, timeout=5)
        assert (await ada.request({"type": "offer.accept", "offer_id": offer["offer_id"]}))["type"] == "ack"


async def test_transfer_to_an_agent_offers_it_to_them_and_offline_is_refused(
    routed: tuple[Server, Seed], http: httpx.AsyncClient
) -> None:
    server, s = routed
    async with Client.connect(f"{server.ws}/ws/agent", token=s.agent_token, origin=None) as bob:
        await bob.expect("snapshot")
        _, cid = await visitor(http, server, s)
        offer = await bob.expect("offer", conversation__id=cid)
        await bob.request({"type": "offer.accept", "offer_id": offer["offer_id"]})
        refused = await bob.request(
            {"type": "conversation.transfer", "conversation_id": cid, "agent_id": s.admin_id}
        )
        assert refused["code"] == "unavailable"  # Ada is offline: the conversation stays with Bob
        conv = (
            await http.get(f"{server.url}/api/v1/conversations/{cid}", headers=auth(s.agent_token))
        ).json()
        assert conv["status"] == "assigned" and conv["assignee"]["name"] == "Bob"
        bad = await bob.request({"type": "conversation.transfer", "conversation_id": cid})
        assert bad["code"] == "invalid"
        claim = await bob.request({"type": "conversation.claim", "conversation_id": cid})
        assert claim["code"] == "forbidden"  # with routing on, plain agents do not claim
        async with Client.connect(f"{server.ws}/ws/agent", token=s.admin_token, origin=None) as ada:
            await ada.expect("snapshot")
            moved = await bob.request(
                {"type": "conversation.transfer", "conversation_id": cid, "agent_id": s.admin_id}
            )
            assert moved["status"] == "queued"
            offer = await ada.expect("offer", conversation__id=cid, timeout=5)
            assert (await ada.request({"type": "offer.accept", "offer_id": offer["offer_id"]}))[
                "type"
            ] == "ack"


async def test_rules_route_by_pre_chat_answers_to_the_skilled_team(
    routed: tuple[Server, Seed], http: httpx.AsyncClient
) -> None:
    server, s = routed
    admin = auth(s.admin_token)
    team = await http.post(
        f"{server.url}/api/v1/teams",
        json={"name": "Billing", "timezone": "Europe/Berlin", "members": [s.agent_id]},
        headers=admin,
    )
    assert team.status_code == 201 and team.json()["members"] == [s.agent_id]
    await http.patch(
        f"{server.url}/api/v1/agents/{s.agent_id}", json={"skills": {"billing": 4}}, headers=admin
    )
    rule = await http.post(
        f"{server.url}/api/v1/routing/rules",
        json={
            "name": "billing",
            "match": {"fields": {"topic": "billing"}},
            "team_id": team.json()["id"],
            "skills": {"billing": 3},
            "priority": 5,
            "steps": [{"requirement": "billing>=5", "after_s": 0.5}],
        },
        headers=admin,
    )
    assert rule.status_code == 201, rule.text
    async with (
        Client.connect(f"{server.ws}/ws/agent", token=s.agent_token, origin=None) as bob,
        Client.connect(f"{server.ws}/ws/agent", token=s.admin_token, origin=None) as ada,
    ):
        await bob.expect("snapshot")
        await ada.expect("snapshot")
        _, cid = await visitor(http, server, s, fields={"topic": "billing"})
        conv = await ada.expect("conversation", conversation__id=cid)
        assert conv["conversation"]["team"] == team.json()["id"] and conv["conversation"]["priority"] == 5
        # billing>=5 holds for 0.5 s (nobody has it), then only Bob (billing 4, in the team) qualifies
        offer = await bob.expect("offer", conversation__id=cid, timeout=5)
        assert offer["conversation"]["skills"] == {"billing": 3}
        assert not [f for f in ada.pending if f.get("type") == "offer"]


@pytest.mark.parametrize(
    ("path", "payload", "field"),
    [
        ("/api/v1/teams", {"name": "T", "timezone": "Mars/Olympus"}, "timezone"),
        ("/api/v1/teams", {"name": "T", "hours": {"mon": [["18:00", "09:00"]]}}, "hours.mon"),
        ("/api/v1/teams", {"name": "T", "hours": {"someday": []}}, "hours"),
        ("/api/v1/teams", {"name": "T", "holidays": ["2026-13-40"]}, "holidays"),
        ("/api/v1/teams", {"name": "T", "members": ["ag_nobody"]}, "members"),
        ("/api/v1/routing/rules", {"name": "r", "skills": {"billing": 7}}, "skills.billing"),
        ("/api/v1/routing/rules", {"name": "r", "skills": {"bad skill!": 2}}, "skills.bad skill!"),
        (
            "/api/v1/routing/rules",
            {"name": "r", "steps": [{"requirement": "lang de", "after_s": 5}]},
            "steps.0.requirement",
        ),
        (
            "/api/v1/routing/rules",
            {"name": "r", "steps": [{"requirement": "x>=2", "after_s": -1}]},
            "steps.0.after_s",
        ),
        ("/api/v1/routing/rules", {"name": "r", "team_id": "tm_missing"}, "team_id"),
        ("/api/v1/routing/rules", {"name": "r", "offer_timeout_s": 0}, "offer_timeout_s"),
        ("/api/v1/agents", {"email": "q@x.test", "name": "Q", "skills": {"de": 0}}, "skills.de"),
    ],
)
async def test_bad_routing_configuration_is_422_with_the_field(
    routed: tuple[Server, Seed], http: httpx.AsyncClient, path: str, payload: dict[str, Any], field: str
) -> None:
    server, s = routed
    before_teams = (await http.get(f"{server.url}/api/v1/teams", headers=auth(s.admin_token))).json()
    r = await http.post(f"{server.url}{path}", json=payload, headers=auth(s.admin_token))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["data"]["field"] == field
    if field != "members":  # (a team is created before its members are checked: see below)
        assert (
            await http.get(f"{server.url}/api/v1/teams", headers=auth(s.admin_token))
        ).json() == before_teams
    assert (await http.get(f"{server.url}/api/v1/routing/rules", headers=auth(s.admin_token))).json()[
        "items"
    ] == []


async def test_outside_business_hours_escalates(routed: tuple[Server, Seed], http: httpx.AsyncClient) -> None:
    server, s = routed
    admin = auth(s.admin_token)
    closed = await http.post(
        f"{server.url}/api/v1/teams",
        json={"name": "Night", "hours": {}, "members": [s.agent_id]},
        headers=admin,
    )
    await http.post(
        f"{server.url}/api/v1/routing/rules",
        json={"name": "all", "team_id": closed.json()["id"]},
        headers=admin,
    )
    async with Client.connect(f"{server.ws}/ws/agent", token=s.agent_token, origin=None) as bob:
        await bob.expect("snapshot")
        _, cid = await visitor(http, server, s)
        conv = await bob.expect(
            "conversation", conversation__id=cid, conversation__status="pending", timeout=5
        )
        assert conv["conversation"]["pending_reason"] == "outside_business_hours"
        assert not [f for f in bob.pending if f.get("type") == "offer"]
