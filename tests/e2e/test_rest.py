"""The REST API through a real server: auth, CSRF, roles, pagination, errors, OpenAPI."""

from __future__ import annotations

import httpx
import pytest
from starlette.routing import Route

from tests.e2e.harness import PASSWORD, Client, Seed, Server, visitor_token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_login_sets_httponly_cookie_and_csrf_protects_unsafe_calls(
    server: Server, seeded: Seed
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        bad = await http.post("/api/v1/auth/login", json={"email": seeded.agent_email, "password": "nope"})
        assert bad.status_code == 401 and bad.json() == {
            "error": {"code": "unauthorized", "message": "wrong email or password"}
        }
        r = await http.post(
            "/api/v1/auth/login", json={"email": seeded.agent_email.upper(), "password": PASSWORD}
        )
        assert r.status_code == 200
        cookie = r.headers.get_list("set-cookie")[0].lower()
        assert "chatserver_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
        csrf = r.json()["csrf_token"]
        me = await http.get("/api/v1/auth/me")
        assert me.json()["agent"]["email"] == seeded.agent_email
        # a state-changing call with the cookie but without the CSRF header is refused
        refused = await http.patch(f"/api/v1/agents/{seeded.agent_id}", json={"name": "Robert"})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
        assert (await http.get(f"/api/v1/agents/{seeded.agent_id}")).json()["name"] == "Bob"
        ok = await http.patch(
            f"/api/v1/agents/{seeded.agent_id}", json={"name": "Robert"}, headers={"X-CSRF-Token": csrf}
        )
        assert ok.status_code == 200 and ok.json()["name"] == "Robert"
        out = await http.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})
        assert out.status_code == 200
        assert (await http.get("/api/v1/auth/me")).status_code == 401


async def test_agent_websocket_with_session_cookie(server: Server, seeded: Seed) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.post("/api/v1/auth/login", json={"email": seeded.agent_email, "password": PASSWORD})
        cookie = r.cookies.get("chatserver_session")
    assert cookie
    async with Client.connect(
        f"{server.ws}/ws/agent",
        origin=server.url,
        additional_headers={"Cookie": f"chatserver_session={cookie}"},
    ) as a:
        assert (await a.expect("hello"))["you"]["id"] == seeded.agent_id


async def test_roles_guard_admin_endpoints(server: Server, seeded: Seed) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/api/v1/agents")).status_code == 401
        new = {
            "email": "new@x.test",
            "name": "Nia",
            "role": "agent",
            "password": "long-enough",
            "skills": {"de": 4},
        }
        denied = await http.post("/api/v1/agents", json=new, headers=bearer(seeded.agent_token))
        assert denied.status_code == 403
        created = await http.post("/api/v1/agents", json=new, headers=bearer(seeded.admin_token))
        assert created.status_code == 201 and created.json()["skills"] == {"de": 4}
        dup = await http.post("/api/v1/agents", json=new, headers=bearer(seeded.admin_token))
        assert dup.status_code == 409
        bad_level = await http.post(
            "/api/v1/agents",
            json={**new, "email": "n2@x.test", "skills": {"de": 9}},
            headers=bearer(seeded.admin_token),
        )
        assert bad_level.status_code == 422 and bad_level.json()["error"]["data"]["field"] == "skills.de"
        agent_id = created.json()["id"]
        listed = await http.get("/api/v1/agents", headers=bearer(seeded.agent_token))
        assert {a["email"]: a["status"] for a in listed.json()["items"]}["new@x.test"] == "offline"
        gone = await http.delete(f"/api/v1/agents/{agent_id}", headers=bearer(seeded.admin_token))
        assert gone.status_code == 200 and gone.json()["active"] is False
        login = await http.post("/api/v1/auth/login", json={"email": "new@x.test", "password": "long-enough"})
        assert login.status_code == 401
        assert (await http.get("/api/v1/inboxes", headers=bearer(seeded.agent_token))).status_code == 403
        inbox = await http.post(
            "/api/v1/inboxes",
            json={"name": "Shop 2", "allowed_origins": ["https://two.example/"]},
            headers=bearer(seeded.admin_token),
        )
        assert inbox.status_code == 201 and inbox.json()["allowed_origins"] == ["https://two.example"]
        bad_origin = await http.post(
            "/api/v1/inboxes",
            json={"name": "x", "allowed_origins": ["two.example"]},
            headers=bearer(seeded.admin_token),
        )
        assert bad_origin.status_code == 422


async def test_conversations_list_filters_paginates_and_reads_seq_ranges(
    server: Server, seeded: Seed
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        cids = []
        for _ in range(3):
            tok = (await visitor_token(http, server.url, seeded.inbox_key))["token"]
            async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
                cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
                for i in range(5):
                    await v.request(
                        {"type": "message.send", "conversation_id": cid, "client_id": str(i), "text": f"t{i}"}
                    )
            cids.append(cid)
        h = bearer(seeded.agent_token)
        page1 = (await http.get("/api/v1/conversations?status=queued&limit=2", headers=h)).json()
        page2 = (
            await http.get(
                f"/api/v1/conversations?status=queued&limit=2&cursor={page1['next_cursor']}", headers=h
            )
        ).json()
        assert [c["id"] for c in page1["items"] + page2["items"]] == cids[::-1]
        assert page2["next_cursor"] is None
        assert (await http.get("/api/v1/conversations?status=resolved", headers=h)).json()["items"] == []
        assert (await http.get("/api/v1/conversations?status=bogus", headers=h)).status_code == 422
        msgs = (await http.get(f"/api/v1/conversations/{cids[0]}/messages?after=2&limit=2", headers=h)).json()
        assert [m["seq"] for m in msgs["items"]] == [3, 4] and msgs["last_seq"] == 5
        before = (await http.get(f"/api/v1/conversations/{cids[0]}/messages?before=3", headers=h)).json()
        assert [m["seq"] for m in before["items"]] == [1, 2]
        assert (
            await http.get(f"/api/v1/conversations/{cids[0]}/messages?after=x", headers=h)
        ).status_code == 422
        missing = await http.get("/api/v1/conversations/cv_missing", headers=h)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        conv = (await http.get(f"/api/v1/conversations/{cids[0]}", headers=h)).json()
        contact = await http.get(f"/api/v1/contacts/{conv['contact']['id']}", headers=h)
        assert contact.json()["language"] == "de"
        patched = await http.patch(
            f"/api/v1/contacts/{conv['contact']['id']}", json={"name": "Jo"}, headers=h
        )
        assert patched.json()["name"] == "Jo"
        assert (
            await http.patch(f"/api/v1/contacts/{conv['contact']['id']}", json={"evil": 1}, headers=h)
        ).status_code == 422


async def test_health_readiness_and_openapi_cover_every_route(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/healthz")).json()["ok"] is True
        ready = (await http.get("/readyz")).json()
        assert ready["checks"] == {"database": "ok", "bus": "ok"}
        spec = (await http.get("/api/v1/openapi.json")).json()
    assert spec["openapi"].startswith("3.")
    for route in server.app.routes:
        if isinstance(route, Route) and route.path.startswith("/api/"):
            for method in (route.methods or set()) - {"HEAD"}:
                assert method.lower() in spec["paths"][route.path], (route.path, method)


@pytest.mark.parametrize("path", ["/api/v1/conversations", "/api/v1/contacts", "/api/v1/agents/x"])
async def test_unauthenticated_rest_is_401_json(server: Server, path: str) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.get(path, headers={"Authorization": "Bearer cst_forged"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
