"""A custom channel's ``message.status`` reports against a real server: stored as the reply's delivery
state (the outbox row the built-in channels use), forward only, published to agents live and listed in
message history after a reload; over the socket and over ``POST /api/v1/adapter/statuses``; bad reports
refused and changing nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from chatserver.client import AdapterClient, ClientError
from tests.adapterapi.helpers import admin, create_adapter
from tests.adapterapi.receiver import Received, running_receiver
from tests.e2e.harness import Client, Seed, Server


@pytest.fixture
def server_overrides() -> dict[str, Any]:
    return {"webhook_allow_private": True, "workers_in_serve": True, "outbox_retry_s": 0.2}


async def _api_inbox(http: httpx.AsyncClient, server: Server, seeded: Seed, name: str) -> str:
    r = await http.post(
        f"{server.url}/api/v1/inboxes", json={"name": name, "channel": "api"}, headers=admin(seeded)
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _inject(
    http: httpx.AsyncClient, server: Server, token: str, inbox_id: str, external_id: str
) -> dict[str, Any]:
    r = await http.post(
        f"{server.url}/api/v1/adapter/messages",
        json={
            "inbox_id": inbox_id,
            "contact": {"external_id": "u-1", "name": "Pat"},
            "external_id": external_id,
            "text": "Hello",
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code in (200, 201), r.text
    data: dict[str, Any] = r.json()
    return data


async def _history(http: httpx.AsyncClient, server: Server, seeded: Seed, cid: str) -> dict[str, Any]:
    r = await http.get(
        f"{server.url}/api/v1/conversations/{cid}/messages",
        headers={"Authorization": f"Bearer {seeded.agent_token}"},
    )
    assert r.status_code == 200, r.text
    return {m["id"]: m for m in r.json()["items"]}


async def test_reported_states_are_stored_shown_live_and_after_a_reload(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    inbox = await _api_inbox(http, server, seeded, "Bridge inbox")
    other_inbox = await _api_inbox(http, server, seeded, "Someone else's")
    bridge = await create_adapter(http, server, seeded, kind="channel", inboxes=[inbox], name="Bridge")
    other = await create_adapter(http, server, seeded, kind="channel", inboxes=[other_inbox], name="Other")
    bot = await create_adapter(http, server, seeded, kind="bot", inboxes=[inbox], name="A bot")
    injected = await _inject(http, server, bridge["token"], inbox, "pm-1")
    cid = injected["conversation_id"]
    rest = f"{server.url}/api/v1/adapter/statuses"
    auth = {"Authorization": f"Bearer {bridge['token']}"}

    async with (
        Client.connect(f"{server.ws}/ws/adapter", token=bridge["token"], origin=None) as ch,
        Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent,
    ):
        await ch.expect("snapshot")
        await agent.expect("hello")
        assert (await agent.request({"type": "conversation.claim", "conversation_id": cid}))["type"] == "ack"
        first = await agent.request(
            {"type": "message.send", "conversation_id": cid, "client_id": "a1", "text": "Hi Pat"}
        )
        second = await agent.request(
            {"type": "message.send", "conversation_id": cid, "client_id": "a2", "text": "Still there?"}
        )
        await ch.expect("delivery", message__id=first["message_id"])
        await ch.expect("delivery", message__id=second["message_id"])

        # forward: sent -> delivered -> read, each one stored and published as message.status
        for state in ("sent", "delivered", "read"):
            ack = await ch.request(
                {"type": "message.status", "message_id": first["message_id"], "state": state}
            )
            assert ack["type"] == "ack" and ack["state"] == state and ack["changed"] is True, ack
            seen = await agent.expect("message.status", message_id=first["message_id"], state=state)
            assert seen["kind"] == "adapter" and seen["delivery_id"] == ack["delivery_id"]
        delivery_id = ack["delivery_id"]

        # backwards and failed-after-read change nothing: the ack says what is stored
        for state in ("delivered", "sent", "failed"):
            ack = await ch.request(
                {"type": "message.status", "message_id": first["message_id"], "state": state}
            )
            assert ack["type"] == "ack" and ack["state"] == "read" and ack["changed"] is False, ack
            assert ack["delivery_id"] == delivery_id
        # failed, with the platform's reason, over REST
        r = await http.post(
            rest,
            json={"message_id": second["message_id"], "state": "failed", "reason": "user blocked the bot"},
            headers=auth,
        )
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "failed" and r.json()["reason"] == "user blocked the bot"
        # the next status the agent sees is that one: the ignored reports published nothing
        nxt = await agent.next(lambda f: f.get("type") == "message.status")
        assert nxt["message_id"] == second["message_id"] and nxt["state"] == "failed"
        assert nxt["reason"] == "user blocked the bot"
        # the Python client's REST form says what is stored
        client = AdapterClient(server.url, bridge["token"])
        stored = await client.report_status_rest(second["message_id"], "delivered")
        assert stored["state"] == "failed" and stored["changed"] is False
        with pytest.raises(ClientError) as refused:
            await client.report_status_rest(second["message_id"], "lost")
        assert refused.value.code == "invalid"

        # bad reports: each refused, nothing changes
        bad = [
            ({"message_id": "msg_missing", "state": "read"}, "not_found"),
            ({"message_id": first["message_id"], "state": "queued"}, "invalid"),
            ({"message_id": first["message_id"], "state": "seen"}, "invalid"),
            ({"message_id": first["message_id"]}, "invalid"),
            ({"state": "read"}, "invalid"),
            ({"message_id": first["message_id"], "state": "failed", "reason": "x" * 501}, "invalid"),
            ({"message_id": injected["message"]["id"], "state": "read"}, "invalid"),  # the contact's own
        ]
        for fields, code in bad:
            err = await ch.request({"type": "message.status", **fields})
            assert err["type"] == "error" and err["code"] == code, (fields, err)
            r = await http.post(rest, json=fields, headers=auth)
            status = {"not_found": 404, "invalid": 422}[code]
            assert r.status_code == status and r.json()["error"]["code"] == code, (fields, r.text)
        # another adapter's inbox; a bot; a bad token
        async with Client.connect(f"{server.ws}/ws/adapter", token=other["token"], origin=None) as o:
            err = await o.request(
                {"type": "message.status", "message_id": second["message_id"], "state": "read"}
            )
            assert err["type"] == "error" and err["code"] == "forbidden", err
        for token, status in ((other["token"], 403), (bot["token"], 403), ("cst_nope", 401)):
            r = await http.post(
                rest,
                json={"message_id": second["message_id"], "state": "read"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == status, r.text
        r = await http.post(rest, content=b"not json", headers=auth)
        assert r.status_code == 400

    # a reload of the console: message history lists the stored states
    history = await _history(http, server, seeded, cid)
    assert history[first["message_id"]]["deliveries"] == [
        {"id": delivery_id, "kind": "adapter", "state": "read", "reason": None}
    ]
    [failed] = history[second["message_id"]]["deliveries"]
    assert failed["kind"] == "adapter" and failed["state"] == "failed"
    assert failed["reason"] == "user blocked the bot"
    assert history[injected["message"]["id"]].get("deliveries", []) == []


async def test_a_report_on_a_reply_posted_to_the_adapter_url_moves_that_delivery(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    """A reply sent while the channel had no socket is the signed POST's outbox row; the channel's
    report (here made while that POST is still being answered, so before the worker recorded ``sent``)
    is applied to the same row once the worker has recorded it."""
    inbox = await _api_inbox(http, server, seeded, "Hooked")
    async with running_receiver() as rx:
        bridge = await create_adapter(
            http, server, seeded, kind="channel", inboxes=[inbox], name="Hooked", url=rx.url + "/ok"
        )
        reports: list[httpx.Response] = []

        async def report_while_posting(got: Received) -> None:
            data: Any = got.event["data"]
            reports.append(
                await http.post(
                    f"{server.url}/api/v1/adapter/statuses",
                    json={"message_id": data["message"]["id"], "state": "delivered"},
                    headers={"Authorization": f"Bearer {bridge['token']}"},
                )
            )

        rx.before = report_while_posting
        cid = (await _inject(http, server, bridge["token"], inbox, "pm-1"))["conversation_id"]
        async with Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent:
            await agent.expect("hello")
            await agent.request({"type": "conversation.claim", "conversation_id": cid})
            reply = await agent.request(
                {"type": "message.send", "conversation_id": cid, "client_id": "h1", "text": "Over the hook"}
            )
            await agent.expect("message.status", message_id=reply["message_id"], state="sent", timeout=20)
            done = await agent.expect(
                "message.status", message_id=reply["message_id"], state="delivered", timeout=20
            )
        [early] = reports
        assert early.status_code == 200 and early.json()["state"] == "queued", early.text
        assert early.json()["changed"] is False and early.json()["delivery_id"] == done["delivery_id"]
    [row] = (await _history(http, server, seeded, cid))[reply["message_id"]]["deliveries"]
    assert row == {"id": done["delivery_id"], "kind": "adapter", "state": "delivered", "reason": None}
