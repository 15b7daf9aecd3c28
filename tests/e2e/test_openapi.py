"""The served OpenAPI document: every /api/v1 operation documents its answer (a schema, a file, or no
body), and real answers of a running server match what the document says, status and shape."""

from __future__ import annotations

import base64
import re
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from tests.adapterapi.helpers import admin, create_adapter
from tests.e2e.harness import Client, Seed, Server, visitor_token

PLACEHOLDER = {"type": "object"}


@pytest.fixture
def server_overrides() -> dict[str, Any]:
    return {"smtp_url": "smtp://127.0.0.1:9"}  # a transcript is queued, never sent (no worker here)


def _errors(schema: dict[str, Any], value: Any, where: str = "$") -> list[str]:
    """The places where ``value`` breaks ``schema`` (the subset of JSON Schema the document uses)."""
    out: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} not in {schema['enum']}"]
    kinds = schema.get("type")
    if kinds is not None:
        names = [kinds] if isinstance(kinds, str) else kinds
        checks = {
            "string": lambda v: isinstance(v, str),
            "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
            "boolean": lambda v: isinstance(v, bool),
            "object": lambda v: isinstance(v, dict),
            "array": lambda v: isinstance(v, list),
            "null": lambda v: v is None,
        }
        if not any(checks[n](value) for n in names):
            return [f"{where}: {value!r} is not {names}"]
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                out.append(f"{where}: {name} is missing")
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                out += _errors(sub, value[name], f"{where}.{name}")
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name, v in value.items():
                if name not in schema.get("properties", {}):
                    out += _errors(extra, v, f"{where}.{name}")
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(value):
            out += _errors(schema["items"], v, f"{where}[{i}]")
    return out


class Checked:
    """Every answer of the scenario checked against the document."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.seen: set[tuple[str, str]] = set()

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]]:
        for template, ops in self.doc["paths"].items():
            pattern = "^" + re.sub(r"{\w+}", "[^/]+", template) + "$"
            if re.match(pattern, path) and method.lower() in ops:
                return template, ops[method.lower()]
        raise AssertionError(f"{method} {path} is not in the document")

    def __call__(self, r: httpx.Response) -> httpx.Response:
        method, path = r.request.method, r.request.url.path
        template, op = self.operation(method, path)
        self.seen.add((method, template))
        documented = op["responses"].get(str(r.status_code))
        if r.status_code >= 400:
            schema = op["responses"]["default"]["content"]["application/json"]["schema"]
            assert not _errors(schema, r.json()), (method, path, r.text)
            return r
        assert documented is not None, f"{method} {path}: {r.status_code} is not documented ({r.text[:200]})"
        content = documented.get("content")
        if content is None:
            assert r.content == b"", (method, path)
        elif "application/json" in content:
            errors = _errors(content["application/json"]["schema"], r.json())
            assert not errors, (method, path, errors)
        return r


async def test_every_api_route_documents_its_answer(server: Server, http: httpx.AsyncClient) -> None:
    doc = (await http.get(f"{server.url}/api/v1/openapi.json")).json()
    missing = []
    for route in server.app.routes:
        if not isinstance(route, Route) or not route.path.startswith("/api/v1"):
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            op = doc["paths"][route.path][method.lower()]
            answers = {k: v for k, v in op["responses"].items() if k.startswith("2")}
            documented = [
                v
                for v in answers.values()
                if "content" not in v
                or any(c.get("schema") not in (None, PLACEHOLDER) for c in v["content"].values())
            ]
            if not documented:
                missing.append(f"{method} {route.path}")
    assert missing == [], "operations without a documented answer: " + ", ".join(missing)


async def test_real_answers_match_the_document(server: Server, http: httpx.AsyncClient, seeded: Seed) -> None:
    doc = (await http.get(f"{server.url}/api/v1/openapi.json")).json()
    check = Checked(doc)
    check(await http.get(f"{server.url}/api/v1/openapi.json"))
    u, A = server.url, admin(seeded)
    agent = {"Authorization": f"Bearer {seeded.agent_token}"}

    # the widget's endpoints
    check(await http.get(f"{u}/api/v1/widget/config", params={"inbox_key": seeded.inbox_key}))
    session = check(await http.post(f"{u}/api/v1/widget/sessions", json={"inbox_key": seeded.inbox_key}))
    visitor = {"Authorization": f"Bearer {session.json()['token']}"}
    check(await http.options(f"{u}/api/v1/widget/sessions"))
    check(await http.post(f"{u}/api/v1/widget/contact", json={"name": "Vera"}, headers=visitor))
    tok = await visitor_token(http, u, seeded.inbox_key)
    async with Client.connect(f"{server.ws}/ws/visitor?token={tok['token']}") as v:
        await v.expect("hello")
        cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
        await v.request({"type": "message.send", "conversation_id": cid, "client_id": "c1", "text": "hello"})
    vis = {"Authorization": f"Bearer {tok['token']}"}
    png = bytes.fromhex("89504e470d0a1a0a") + b"\x00" * 32
    up = check(
        await http.post(
            f"{u}/api/v1/widget/uploads",
            params={"conversation_id": cid},
            content=png,
            headers={**vis, "Content-Type": "image/png", "X-Filename": "a.png"},
        )
    )
    check(await http.get(f"{u}/api/v1/widget/attachments/{up.json()['id']}/link", headers=vis))
    check(await http.post(f"{u}/api/v1/widget/contact", json={"email": "vera@x.test"}, headers=vis))
    sent = check(await http.post(f"{u}/api/v1/widget/transcript", json={"conversation_id": cid}, headers=vis))
    assert sent.status_code == 202, sent.text

    # the console's
    check(await http.get(f"{u}/api/v1/auth/me", headers=agent))
    check(await http.get(f"{u}/api/v1/conversations", headers=agent))
    check(await http.get(f"{u}/api/v1/conversations/{cid}", headers=agent))
    check(await http.get(f"{u}/api/v1/conversations/{cid}/messages", headers=agent))
    check(await http.patch(f"{u}/api/v1/conversations/{cid}", json={"language": "en"}, headers=A))
    check(await http.get(f"{u}/api/v1/attachments/{up.json()['id']}/content", headers=agent))
    for path in ("agents", f"agents/{seeded.agent_id}", "inboxes", f"inboxes/{seeded.inbox_id}", "contacts"):
        check(await http.get(f"{u}/api/v1/{path}", headers=A))
    check(await http.get(f"{u}/api/v1/inboxes/{seeded.inbox_id}/templates", headers=A))
    canned = check(
        await http.post(f"{u}/api/v1/canned-responses", json={"shortcut": "hi", "text": "Hi!"}, headers=A)
    )
    check(await http.get(f"{u}/api/v1/canned-responses", headers=A))
    check(
        await http.post(
            f"{u}/api/v1/canned-responses/{canned.json()['id']}/render",
            json={"conversation_id": cid},
            headers=A,
        )
    )
    check(await http.delete(f"{u}/api/v1/canned-responses/{canned.json()['id']}", headers=A))
    team = check(await http.post(f"{u}/api/v1/teams", json={"name": "Support"}, headers=A))
    check(await http.get(f"{u}/api/v1/teams", headers=A))
    check(
        await http.post(f"{u}/api/v1/routing/rules", json={"name": "r", "match": {}, "skills": {}}, headers=A)
    )
    check(await http.get(f"{u}/api/v1/routing/rules", headers=A))
    check(await http.get(f"{u}/api/v1/routing/metrics", headers=A))
    check(await http.get(f"{u}/api/v1/metrics", headers=A))
    check(await http.delete(f"{u}/api/v1/teams/{team.json()['id']}", headers=A))

    # the adapter API and webhooks
    inbox = check(
        await http.post(f"{u}/api/v1/inboxes", json={"name": "Bridge", "channel": "api"}, headers=A)
    )
    bridge = await create_adapter(
        http, server, seeded, kind="channel", inboxes=[inbox.json()["id"]], name="B"
    )
    check(await http.get(f"{u}/api/v1/adapters", headers=A))
    auth = {"Authorization": f"Bearer {bridge['token']}"}
    injected = check(
        await http.post(
            f"{u}/api/v1/adapter/messages",
            json={
                "inbox_id": inbox.json()["id"],
                "contact": {"external_id": "u-1"},
                "external_id": "e-1",
                "text": "hi",
                "attachments": [
                    {"name": "a.png", "content_type": "image/png", "data": base64.b64encode(png).decode()}
                ],
            },
            headers=auth,
        )
    )
    api_cid = injected.json()["conversation_id"]
    async with Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as console:
        await console.expect("hello")
        await console.request({"type": "conversation.claim", "conversation_id": api_cid})
        reply = await console.request(
            {"type": "message.send", "conversation_id": api_cid, "client_id": "r1", "text": "Hi"}
        )
    status = {"message_id": reply["message_id"], "state": "read"}
    reported = check(await http.post(f"{u}/api/v1/adapter/statuses", json=status, headers=auth))
    assert reported.status_code == 200, reported.text
    check(await http.post(f"{u}/api/v1/adapter/statuses", json={**status, "state": "x"}, headers=auth))
    hook = check(
        await http.post(
            f"{u}/api/v1/webhooks",
            json={"url": "https://93.184.216.34/x", "events": ["message.created"]},
            headers=A,
        )
    )
    check(await http.get(f"{u}/api/v1/webhooks", headers=A))
    check(await http.get(f"{u}/api/v1/webhooks/{hook.json()['id']}/deliveries", headers=A))
    check(await http.delete(f"{u}/api/v1/webhooks/{hook.json()['id']}", headers=A))
    check(await http.delete(f"{u}/api/v1/adapters/{bridge['id']}", headers=A))
    assert len(check.seen) >= 40
