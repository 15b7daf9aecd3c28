"""Who is calling: agents by session cookie (+ CSRF on unsafe requests) or bearer API token; origins."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from chatserver.auth.secrets import check_csrf, sha256_hex
from chatserver.errors import Forbidden, Unauthorized
from chatserver.model.types import Agent
from chatserver.settings import Settings
from chatserver.store.store import Store

SESSION_COOKIE = "chatserver_session"
CSRF_COOKIE = "chatserver_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WS_PROTOCOL = "chatserver.v1"
"""The WebSocket subprotocol of wire protocol v1; the server answers with it when a client offers it."""
WS_TOKEN_PREFIX = "token."
"""A credential offered as the subprotocol ``token.<token>`` (kept out of URLs, hence out of logs)."""


def subprotocol_token(conn: HTTPConnection) -> str | None:
    """The token of a ``token.<token>`` subprotocol the client offered, if any."""
    for offered in conn.scope.get("subprotocols") or ():
        if offered.startswith(WS_TOKEN_PREFIX) and len(offered) > len(WS_TOKEN_PREFIX):
            return str(offered[len(WS_TOKEN_PREFIX) :])
    return None


def bearer_token(conn: HTTPConnection, *, allow_query: bool) -> str | None:
    """``Authorization: Bearer``; on WebSockets (``allow_query``) also the ``token.<token>``
    subprotocol and, for compatibility, ``?token=``."""
    header = conn.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    if allow_query:
        return subprotocol_token(conn) or conn.query_params.get("token") or None
    return None


async def authenticate_agent(conn: HTTPConnection, store: Store, settings: Settings, *, method: str) -> Agent:
    """Resolve the calling agent or raise Unauthorized; cookie sessions need the CSRF header on
    state-changing requests (bearer tokens are not sent by browsers on their own, so they do not)."""
    is_ws = conn.scope["type"] == "websocket"
    token = bearer_token(conn, allow_query=is_ws)
    if token:
        agent = await store.agent_for_token(sha256_hex(token))
        if agent is None:
            raise Unauthorized("invalid or revoked API token")
        return agent
    session_id = conn.cookies.get(SESSION_COOKIE)
    if not session_id:
        raise Unauthorized("log in first (session cookie or bearer API token)")
    agent = await store.agent_for_session(sha256_hex(session_id))
    if agent is None:
        raise Unauthorized("session expired; log in again")
    if (
        not is_ws
        and method not in SAFE_METHODS
        and not check_csrf(settings.secret_key, session_id, conn.headers.get(CSRF_HEADER))
    ):
        raise Forbidden("missing or wrong X-CSRF-Token header")
    return agent


def own_origins(conn: HTTPConnection, settings: Settings) -> set[str]:
    """Origins of the console: the configured public URL, extra console origins, and this host."""
    scheme = {"ws": "http", "wss": "https"}.get(conn.url.scheme, conn.url.scheme)
    origins = {settings.base_url.rstrip("/"), *settings.console_origins}
    host = conn.headers.get("host")
    if host:
        origins.add(f"{scheme}://{host}")
    return origins


def origin_allowed_for_console(conn: HTTPConnection, settings: Settings) -> bool:
    origin = conn.headers.get("origin")
    return origin is None or origin.rstrip("/") in own_origins(conn, settings)
