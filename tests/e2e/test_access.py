"""Deactivation, role changes and logout end an agent's live WebSocket connections, on every process
(through the bus): nothing sent on such a socket afterwards is acknowledged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import PASSWORD, Client, Seed, Server, ServerProcess, run_cli, seed
from tests.services import REDIS_PREFIX


async def login(http: httpx.AsyncClient, base: str, email: str) -> tuple[str, str]:
    """A fresh login session: (session cookie, CSRF token)."""
    r = await http.post(
        f"{base}/api/v1/auth/login", json={"email": email, "password": PASSWORD}, headers={"Origin": base}
    )
    assert r.status_code == 200, r.text
    cookie = r.cookies["chatserver_session"]
    http.cookies.clear()
    return cookie, r.json()["csrf_token"]


def with_cookie(cookie: str) -> dict[str, Any]:
    return {"additional_headers": {"Cookie": f"chatserver_session={cookie}"}, "origin": None}


async def alive(client: Client) -> None:
    await client.send({"type": "ping", "ref": "alive"})
    await client.expect("pong", ref="alive")


async def patch_agent(http: httpx.AsyncClient, base: str, seeded: Seed, **values: Any) -> None:
    r = await http.patch(
        f"{base}/api/v1/agents/{seeded.agent_id}",
        json=values,
        headers={"Authorization": f"Bearer {seeded.admin_token}", "Origin": base},
    )
    assert r.status_code == 200, r.text


async def test_deactivation_closes_every_open_socket_of_the_agent_4401(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    cookie, _ = await login(http, server.url, seeded.agent_email)
    async with (
        Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as by_token,
        Client.connect(f"{server.ws}/ws/agent", **with_cookie(cookie)) as by_cookie,
        Client.connect(f"{server.ws}/ws/agent", token=seeded.admin_token, origin=None) as admin,
    ):
        for c in (by_token, by_cookie, admin):
            await c.expect("hello")
            await alive(c)
        await patch_agent(http, server.url, seeded, active=False)
        assert await by_token.closed_with() == 4401
        assert await by_cookie.closed_with() == 4401
        await alive(admin)  # someone else's connection is untouched
    # and it cannot come back
    async with Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as again:
        assert await again.closed_with() == 4401


async def test_delete_deactivates_and_closes(http: httpx.AsyncClient, server: Server, seeded: Seed) -> None:
    async with Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent:
        await agent.expect("hello")
        r = await http.delete(
            f"{server.url}/api/v1/agents/{seeded.agent_id}",
            headers={"Authorization": f"Bearer {seeded.admin_token}", "Origin": server.url},
        )
        assert r.status_code == 200, r.text
        assert await agent.closed_with() == 4401


async def test_role_change_closes_4403_and_the_agent_reconnects_with_the_new_role(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    async with Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as agent:
        await agent.expect("hello")
        await patch_agent(http, server.url, seeded, name="Bobby")  # no role change: stays open
        await alive(agent)
        await patch_agent(http, server.url, seeded, role="supervisor")
        assert await agent.closed_with() == 4403
    async with Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as again:
        await again.expect("hello")
        await alive(again)


async def test_logout_closes_the_sockets_of_that_login_session_only(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    first, csrf = await login(http, server.url, seeded.agent_email)
    second, _ = await login(http, server.url, seeded.agent_email)
    async with (
        Client.connect(f"{server.ws}/ws/agent", **with_cookie(first)) as tab1,
        Client.connect(f"{server.ws}/ws/agent", **with_cookie(first)) as tab2,
        Client.connect(f"{server.ws}/ws/agent", **with_cookie(second)) as other_login,
        Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None) as by_token,
    ):
        for c in (tab1, tab2, other_login, by_token):
            await c.expect("hello")
        r = await http.post(
            f"{server.url}/api/v1/auth/logout",
            headers={"Cookie": f"chatserver_session={first}", "X-CSRF-Token": csrf, "Origin": server.url},
        )
        assert r.status_code == 200, r.text
        assert await tab1.closed_with() == 4401
        assert await tab2.closed_with() == 4401
        await alive(other_login)
        await alive(by_token)


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
async def test_deactivation_on_one_process_closes_the_socket_on_another(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    s = await seed(pg_url)
    env = {
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_url,
        "CHATSERVER_REDIS_PREFIX": REDIS_PREFIX,
        "CHATSERVER_SECRET_KEY": "k" * 40,
    }
    run_cli(env, "migrate")
    a, b = ServerProcess(env=env, log=tmp_path / "a.log"), ServerProcess(env=env, log=tmp_path / "b.log")
    try:
        a.start()
        b.start()
        async with httpx.AsyncClient(timeout=10) as http:
            cookie, _ = await login(http, a.url, s.agent_email)
            async with (
                Client.connect(f"{b.ws}/ws/agent", token=s.agent_token, origin=None) as on_b,
                Client.connect(f"{b.ws}/ws/agent", **with_cookie(cookie)) as cookie_on_b,
                Client.connect(f"{b.ws}/ws/agent", token=s.admin_token, origin=None) as admin_on_b,
            ):
                for c in (on_b, cookie_on_b, admin_on_b):
                    await c.expect("hello")
                await patch_agent(http, a.url, s, active=False)  # on A
                assert await on_b.closed_with() == 4401
                assert await cookie_on_b.closed_with() == 4401
                await alive(admin_on_b)
    finally:
        a.kill()
        b.kill()
