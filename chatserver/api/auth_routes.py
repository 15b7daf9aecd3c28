"""Login, logout and the calling agent."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chatserver.api import schemas as S
from chatserver.api.common import api, body, ctx, current_agent, error_response, json_response, req_str
from chatserver.api.openapi import spec
from chatserver.auth.identity import CSRF_COOKIE, SESSION_COOKIE, origin_allowed_for_console
from chatserver.auth.login import LoginThrottled
from chatserver.auth.secrets import csrf_token, new_session_id, sha256_hex
from chatserver.errors import Forbidden, Unauthorized, UnsupportedMediaType


def client_host(request: Request) -> str | None:
    return request.client.host if request.client else None


def throttled(exc: LoginThrottled) -> Response:
    response = error_response(exc)
    response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


def require_json(request: Request) -> None:
    """A JSON body only: a cross-site form or ``text/plain`` fetch cannot send this without CORS."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise UnsupportedMediaType("send the body as Content-Type: application/json")


@api
async def login(request: Request) -> Response:
    """Log in with email and password; sets an HttpOnly session cookie and returns the CSRF token.

    Throttled per account and per client address (429 with Retry-After); unknown accounts get exactly
    the answers known ones get."""
    c = ctx(request)
    if not origin_allowed_for_console(request, c.settings):
        raise Forbidden("log in from the console: this Origin is not allowed")
    require_json(request)
    data = await body(request)
    email = req_str(data, "email", max_len=320)
    password = req_str(data, "password", max_len=1000)
    host = client_host(request)
    try:
        await c.login.check(email, host)
        found = await c.store.agent_credentials(email)
        ok = await c.login.verify(email, host, found[1] if found else None, password)
    except LoginThrottled as exc:
        return throttled(exc)
    if not found or not ok or not found[0].active:
        await c.login.failed(email, host)
        raise Unauthorized("wrong email or password")
    await c.login.succeeded(email)
    agent = found[0]
    session_id = new_session_id()
    await c.store.create_session(sha256_hex(session_id), agent.id, c.settings.session_ttl_s)
    csrf = csrf_token(c.settings.secret_key, session_id)
    response = json_response({"agent": agent.to_wire(), "csrf_token": csrf})
    secure = c.settings.base_url.startswith("https://")
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=c.settings.session_ttl_s,
        httponly=True,
        samesite="lax",
        secure=secure,
    )
    response.set_cookie(CSRF_COOKIE, csrf, max_age=c.settings.session_ttl_s, samesite="lax", secure=secure)
    return response


@api
async def logout(request: Request) -> Response:
    c = ctx(request)
    agent = await current_agent(request)
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        await c.store.delete_session(sha256_hex(session_id))
        c.service.revoke_access(agent.id, "logout", session_hash=sha256_hex(session_id))
    response = json_response({"ok": True})
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(CSRF_COOKIE)
    return response


@api
async def me(request: Request) -> Response:
    c = ctx(request)
    agent = await current_agent(request)
    result: dict[str, Any] = {
        "agent": agent.to_wire(presence=await c.service.effective_status(agent)),
        "chosen_status": agent.status.value,
    }
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        result["csrf_token"] = csrf_token(c.settings.secret_key, session_id)
    return json_response(result)


routes = [
    Route("/api/v1/auth/login", spec(login, request=S.LOGIN, response=S.SESSION), methods=["POST"]),
    Route("/api/v1/auth/logout", spec(logout, response=S.OK), methods=["POST"]),
    Route("/api/v1/auth/me", spec(me, response=S.SESSION), methods=["GET"]),
]
