"""Login throttling, login CSRF, password rules and changes, security headers: through a real server."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatserver.auth.login import LoginGuard
from chatserver.auth.throttle import MemoryThrottleStore, ThrottlePolicy
from chatserver.settings import Settings
from tests.e2e.harness import PASSWORD, Seed, Server, run_server, seed, settings_for
from tests.services import REDIS_PREFIX

LOGIN = "/api/v1/auth/login"


@pytest.fixture
def server_overrides() -> dict[str, Any]:
    # 3 free failures per account, 8 per address; then locked for a minute (longer than any test)
    return {
        "login_account_failures": 3,
        "login_address_failures": 8,
        "login_lockout_s": 60.0,
        "login_lockout_max_s": 60.0,
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def attempts(http: httpx.AsyncClient, email: str, password: str, n: int) -> list[httpx.Response]:
    return [await http.post(LOGIN, json={"email": email, "password": password}) for _ in range(n)]


def shape(r: httpx.Response) -> tuple[int, str, str | None, str]:
    return (
        r.status_code,
        r.json()["error"]["code"],
        r.headers.get("retry-after"),
        r.json()["error"]["message"],
    )


async def test_brute_force_is_throttled_the_same_for_known_and_unknown_accounts(
    server: Server, seeded: Seed, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="chatserver.auth.login")
    async with httpx.AsyncClient(base_url=server.url) as http:
        known = await attempts(http, seeded.agent_email, "wrong-guess-1", 5)
        unknown = await attempts(http, "nobody@x.test", "wrong-guess-1", 5)
        assert [r.status_code for r in known] == [401, 401, 401, 401, 429]
        # an unknown account answers exactly as a known one: statuses, bodies, Retry-After
        assert [shape(r) for r in unknown] == [shape(r) for r in known]
        locked = known[-1]
        assert locked.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(locked.headers["retry-after"]) <= 60
        assert locked.json()["error"]["data"] == {"retry_after_s": int(locked.headers["retry-after"])}
        # the right password is refused too while the account is locked, and sets no session
        right = await http.post(LOGIN, json={"email": seeded.agent_email.upper(), "password": PASSWORD})
        assert right.status_code == 429 and "retry-after" in right.headers
        assert "chatserver_session" not in right.cookies
        # another account from the same address: the address has 8 failures, one more locks it
        other = await attempts(http, "third@x.test", "wrong-guess-1", 2)
        assert [r.status_code for r in other] == [401, 429]
        admin = await http.post(LOGIN, json={"email": seeded.admin_email, "password": PASSWORD})
        assert admin.status_code == 429 and int(admin.headers["retry-after"]) >= 1
    failures = [r for r in caplog.records if r.getMessage().startswith("failed login")]
    assert len(failures) == 9 and all(r.levelno == logging.WARNING for r in failures)
    assert seeded.agent_email in failures[0].getMessage() and "127.0.0.1" in failures[0].getMessage()
    assert not any("wrong-guess-1" in r.getMessage() or PASSWORD in r.getMessage() for r in caplog.records)


@pytest.mark.redis
@pytest.mark.postgres
async def test_the_throttle_is_shared_by_processes_through_redis(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    s = await seed(pg_url)
    settings = settings_for(
        pg_url,
        tmp_path,
        redis_url=redis_url,
        redis_prefix=f"{REDIS_PREFIX}{uuid.uuid4().hex[:6]}:",
        login_account_failures=2,
        login_lockout_s=60.0,
        login_lockout_max_s=60.0,
    )
    async with run_server(settings) as a, run_server(settings) as b, httpx.AsyncClient() as http:
        codes = []
        for server in (a, b, a, b):
            r = await http.post(
                server.url + LOGIN, json={"email": s.agent_email, "password": "wrong-guess-1"}
            )
            codes.append(r.status_code)
        assert codes == [401, 401, 401, 429]
        right = await http.post(a.url + LOGIN, json={"email": s.agent_email, "password": PASSWORD})
        assert right.status_code == 429


async def test_a_successful_login_clears_the_account_failures(server: Server, seeded: Seed) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert {r.status_code for r in await attempts(http, seeded.agent_email, "wrong-guess-1", 3)} == {401}
        ok = await http.post(LOGIN, json={"email": seeded.agent_email, "password": PASSWORD})
        assert ok.status_code == 200
        again = await attempts(http, seeded.agent_email, "wrong-guess-1", 4)
        assert [r.status_code for r in again] == [401, 401, 401, 401]


async def test_password_hashing_runs_in_bounded_slots() -> None:
    policy = ThrottlePolicy(50, 1.0, 1.0, 60.0)
    guard = LoginGuard(MemoryThrottleStore(), account=policy, address=policy, hash_concurrency=2)
    hashes = asyncio.gather(*(guard.hash(f"password-{i}-long") for i in range(4)))
    logins = asyncio.gather(*(guard.verify("a@x.test", "10.0.0.1", None, "whatever-it-is") for _ in range(4)))
    peak = 0
    while not (hashes.done() and logins.done()):
        peak = max(peak, guard.hashing)
        await asyncio.sleep(0.002)
    assert peak <= 2 and guard.hashing == 0
    assert len(set(await hashes)) == 4 and not any(await logins)


async def test_login_accepts_only_json_and_refuses_foreign_origins(server: Server, seeded: Seed) -> None:
    creds = f'{{"email": "{seeded.agent_email}", "password": "{PASSWORD}"}}'
    async with httpx.AsyncClient(base_url=server.url) as http:
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None):
            headers = {"Content-Type": content_type} if content_type else {}
            r = await http.post(LOGIN, content=creds, headers=headers)
            assert r.status_code == 415, content_type
            assert r.json()["error"]["code"] == "unsupported_media_type"
            assert "chatserver_session" not in r.cookies
        foreign = await http.post(
            LOGIN,
            json={"email": seeded.agent_email, "password": PASSWORD},
            headers={"Origin": "https://evil.test"},
        )
        assert foreign.status_code == 403 and foreign.json()["error"]["code"] == "forbidden"
        assert "chatserver_session" not in foreign.cookies
        own = await http.post(
            LOGIN,
            content=creds,
            headers={"Origin": server.url, "Content-Type": "application/json; charset=utf-8"},
        )
        assert own.status_code == 200 and "chatserver_session" in own.cookies


async def login(url: str, email: str, password: str) -> tuple[httpx.AsyncClient, str]:
    http = httpx.AsyncClient(base_url=url)
    r = await http.post(LOGIN, json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return http, str(r.json()["csrf_token"])


async def test_changing_ones_own_password_needs_the_current_one_and_ends_other_sessions(
    server: Server, seeded: Seed
) -> None:
    me = f"/api/v1/agents/{seeded.agent_id}"
    a, csrf = await login(server.url, seeded.agent_email, PASSWORD)
    b, _ = await login(server.url, seeded.agent_email, PASSWORD)
    try:
        new = "a-brand-new-secret-9"
        missing = await a.patch(me, json={"password": new}, headers={"X-CSRF-Token": csrf})
        assert missing.status_code == 422 and missing.json()["error"]["data"] == {"field": "current_password"}
        wrong = await a.patch(
            me, json={"password": new, "current_password": "not-it-at-all"}, headers={"X-CSRF-Token": csrf}
        )
        assert wrong.status_code == 403 and wrong.json()["error"]["data"] == {"field": "current_password"}
        # bearer tokens need it as well
        by_token = await a.patch(me, json={"password": new}, headers=bearer(seeded.agent_token))
        assert by_token.status_code == 422
        current_without_new = await a.patch(
            me, json={"current_password": PASSWORD}, headers={"X-CSRF-Token": csrf}
        )
        assert current_without_new.status_code == 422
        # nothing changed so far: the old password still logs in
        c, _ = await login(server.url, seeded.agent_email, PASSWORD)
        await c.aclose()
        ok = await a.patch(
            me, json={"password": new, "current_password": PASSWORD}, headers={"X-CSRF-Token": csrf}
        )
        assert ok.status_code == 200, ok.text
        assert (await a.get("/api/v1/auth/me")).status_code == 200  # this session stays
        assert (await b.get("/api/v1/auth/me")).status_code == 401  # the other one ended
        old = await a.post(LOGIN, json={"email": seeded.agent_email, "password": PASSWORD})
        assert old.status_code == 401
        d, _ = await login(server.url, seeded.agent_email, new)
        await d.aclose()
    finally:
        await a.aclose()
        await b.aclose()


async def test_wrong_current_passwords_are_throttled_like_logins(server: Server, seeded: Seed) -> None:
    me = f"/api/v1/agents/{seeded.agent_id}"
    async with httpx.AsyncClient(base_url=server.url, headers=bearer(seeded.agent_token)) as http:
        codes = [
            (await http.patch(me, json={"password": "a-brand-new-secret-9", "current_password": "guess-no"}))
            for _ in range(5)
        ]
        assert [r.status_code for r in codes] == [403, 403, 403, 403, 429]
        assert "retry-after" in codes[-1].headers


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("short-pw", "too_short"),
        ("password123!", "common"),
        ("1234567890", "common"),
        ("x" * 1001, "too_long"),
        (12345678901, "type"),
    ],
)
async def test_password_rules_apply_to_created_and_changed_passwords(
    server: Server, seeded: Seed, password: object, rule: str
) -> None:
    async with httpx.AsyncClient(base_url=server.url, headers=bearer(seeded.admin_token)) as http:
        new = {"email": "nia.lopez@x.test", "name": "Nia", "role": "agent", "password": password}
        created = await http.post("/api/v1/agents", json=new)
        assert created.status_code == 422, created.text
        assert created.json()["error"]["data"] == {"field": "password", "rule": rule}
        assert all(
            a["email"] != "nia.lopez@x.test" for a in (await http.get("/api/v1/agents")).json()["items"]
        )
        changed = await http.patch(f"/api/v1/agents/{seeded.agent_id}", json={"password": password})
        assert changed.status_code == 422 and changed.json()["error"]["data"]["rule"] == rule


async def test_email_derived_passwords_are_refused_and_admins_reset_others(
    server: Server, seeded: Seed
) -> None:
    async with httpx.AsyncClient(base_url=server.url, headers=bearer(seeded.admin_token)) as http:
        for password in ("nia.lopez@x.test", "NIA.LOPEZ@X.TEST", "nia.lopez2024!", "I-am-NiaLopez"):
            r = await http.post(
                "/api/v1/agents",
                json={"email": "nia.lopez@x.test", "name": "Nia", "role": "agent", "password": password},
            )
            assert r.status_code == 422 and r.json()["error"]["data"]["rule"] == "email", password
            assert "email" in r.json()["error"]["message"]
        local = seeded.agent_email.split("@")[0]
        own_email = await http.patch(f"/api/v1/agents/{seeded.agent_id}", json={"password": local + "!!"})
        assert own_email.status_code == 422 and own_email.json()["error"]["data"]["rule"] == "email"
        session, _ = await login(server.url, seeded.agent_email, PASSWORD)
        try:
            # an admin sets another agent's password without knowing it; that agent's sessions end
            reset = await http.patch(
                f"/api/v1/agents/{seeded.agent_id}", json={"password": "set-by-the-admin"}
            )
            assert reset.status_code == 200
            assert (await session.get("/api/v1/auth/me")).status_code == 401
        finally:
            await session.aclose()
        fresh, _ = await login(server.url, seeded.agent_email, "set-by-the-admin")
        await fresh.aclose()


async def test_security_headers_on_console_api_and_widget(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        responses = {
            "console": await http.get("/console/"),
            "console_js": await http.get("/console/console.js"),
            "api": await http.get("/api/v1/auth/me"),
            "api_missing": await http.get("/api/v1/agents/ag_nope", headers=bearer("cst_nope")),
            "health": await http.get("/healthz"),
            "widget": await http.get("/widget/loader.js"),
            "demo": await http.get("/demo"),
        }
    for name, r in responses.items():
        assert r.headers["x-content-type-options"] == "nosniff", name
        assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin", name
    for name in ("console", "console_js"):
        r = responses[name]
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert r.headers["x-frame-options"] == "DENY"
    assert responses["console"].status_code == 200 and responses["widget"].status_code == 200
    for name in ("widget", "demo", "api", "health"):
        # the widget and the demo page are embedded in other sites: never frame-protected
        assert "x-frame-options" not in responses[name].headers, name
        assert "frame-ancestors" not in responses[name].headers.get("content-security-policy", ""), name


def test_login_settings_are_read_and_validated() -> None:
    s = Settings.from_env(
        {
            "CHATSERVER_LOGIN_ACCOUNT_FAILURES": "7",
            "CHATSERVER_LOGIN_LOCKOUT_S": "3",
            "CHATSERVER_DATA_DIR": "/x",
        }
    )
    account, address = s.login_policies()
    assert (account.free_failures, account.base_lockout_s, address.free_failures) == (7, 3.0, 20)
    from chatserver.errors import ConfigError

    for bad in (
        {"CHATSERVER_LOGIN_ACCOUNT_FAILURES": "0"},
        {"CHATSERVER_LOGIN_LOCKOUT_S": "1000"},
        {"CHATSERVER_PASSWORD_HASH_CONCURRENCY": "0"},
    ):
        with pytest.raises(ConfigError):
            Settings.from_env(bad)
