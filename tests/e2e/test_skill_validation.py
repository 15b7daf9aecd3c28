"""One skill validator: the WebSocket frame decoder (visitor ``conversation.start``, agent
``conversation.transfer``), the REST API (agents, routing rules) and the pure validator accept and refuse
the same table of inputs, with the same field in the error, and a refusal changes nothing."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from chatserver.errors import Invalid
from chatserver.model import frames
from chatserver.model.levels import parse_levels
from tests.e2e.harness import Client, Seed, Server, visitor_token

# (skills, the error's field or None when accepted)
TABLE: list[tuple[Any, str | None]] = [
    ({"billing": 3}, None),
    ({"tier.2-x_y": 5, "de": 1}, None),
    ({"a" * 64: 1}, None),
    ({}, None),
    ({"billing support": 3, "<b>": 2}, "skills.billing support"),
    ({"<b>": 2}, "skills.<b>"),
    ({"": 1}, "skills."),
    ({"a" * 65: 1}, "skills." + "a" * 65),
    ({"billing": 0}, "skills.billing"),
    ({"billing": 6}, "skills.billing"),
    ({"billing": True}, "skills.billing"),
    ({"billing": "3"}, "skills.billing"),
    ({"billing": 2.5}, "skills.billing"),
    ({f"s{i}": 1 for i in range(101)}, "skills"),
    ("billing", "skills"),
    ([["billing", 3]], "skills"),
]


def _field(exc: Invalid) -> str:
    field: str = exc.data["field"]
    return field


@pytest.mark.parametrize(("skills", "field"), TABLE)
def test_the_validator_and_the_frame_decoder_agree(skills: Any, field: str | None) -> None:
    start = orjson.dumps({"type": "conversation.start", "ref": "r", "skills": skills}).decode()
    transfer = orjson.dumps(
        {"type": "conversation.transfer", "ref": "r", "conversation_id": "cv_1", "skills": skills}
    ).decode()
    if field is None:
        assert parse_levels(skills, "skills") == skills
        decoded = frames.decode(start, allowed=frames.VISITOR_TYPES, max_text_bytes=4096)
        assert isinstance(decoded, frames.ConversationStart) and decoded.skills == skills
        return
    with pytest.raises(Invalid) as direct:
        parse_levels(skills, "skills")
    with pytest.raises(Invalid) as ws:
        frames.decode(start, allowed=frames.VISITOR_TYPES, max_text_bytes=4096)
    with pytest.raises(Invalid) as ws_agent:
        frames.decode(transfer, allowed=frames.AGENT_TYPES, max_text_bytes=4096)
    assert _field(direct.value) == _field(ws.value) == _field(ws_agent.value) == field


async def test_websocket_and_rest_accept_and_refuse_the_same_skills(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    admin = {"Authorization": f"Bearer {seeded.admin_token}"}
    agent_url = f"{server.url}/api/v1/agents/{seeded.agent_id}"
    for skills, field in TABLE:
        before = (await http.get(agent_url, headers=admin)).json()
        rest = await http.patch(agent_url, json={"skills": skills}, headers=admin)
        rule = await http.post(
            f"{server.url}/api/v1/routing/rules", json={"name": "r", "skills": skills}, headers=admin
        )
        tok = (await visitor_token(http, server.url, seeded.inbox_key))["token"]
        async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
            started = await v.request({"type": "conversation.start", "skills": skills})
            snapshot_ids = []
            if field is not None:  # nothing was created: a new connection sees no conversation
                async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as again:
                    snapshot_ids = (await again.expect("snapshot"))["conversation_ids"]
        if field is None:
            assert rest.status_code == 200, (skills, rest.text)
            assert rest.json()["skills"] == skills
            assert rule.status_code == 201, (skills, rule.text)
            assert started["type"] == "ack", (skills, started)
            await http.delete(f"{server.url}/api/v1/routing/rules/{rule.json()['id']}", headers=admin)
            continue
        assert rest.status_code == 422 and rest.json()["error"]["data"]["field"] == field, (skills, rest.text)
        assert rule.status_code == 422 and rule.json()["error"]["data"]["field"] == field, (skills, rule.text)
        assert started["type"] == "error" and started["code"] == "invalid", (skills, started)
        assert started["data"]["field"] == field, (skills, started)
        assert (await http.get(agent_url, headers=admin)).json()["skills"] == before["skills"]
        assert snapshot_ids == []
    rules = (await http.get(f"{server.url}/api/v1/routing/rules", headers=admin)).json()["items"]
    assert rules == []
