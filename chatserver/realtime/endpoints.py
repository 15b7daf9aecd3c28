"""The WebSocket endpoints: authenticate, check Origin, then hand the socket to a Session.

The handshake is accepted before a refusal so the client sees a close code (4401 not authenticated,
4403 forbidden origin) rather than a bare HTTP error.
"""

from __future__ import annotations

import logging

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from chatserver.auth.identity import (
    SESSION_COOKIE,
    authenticate_agent,
    bearer_token,
    origin_allowed_for_console,
)
from chatserver.auth.secrets import sha256_hex, verify_visitor_token
from chatserver.context import Context
from chatserver.errors import ApiError, NotFound, StoreError, Unauthorized
from chatserver.model.ids import now_ms
from chatserver.realtime.session import (
    CLOSE_FORBIDDEN,
    CLOSE_TRY_AGAIN,
    CLOSE_UNAUTHENTICATED,
    Session,
)

log = logging.getLogger(__name__)


async def _refuse(ws: WebSocket, code: int, reason: str) -> None:
    await ws.accept()
    await ws.close(code, reason)


async def visitor_endpoint(ws: WebSocket) -> None:
    c: Context = ws.app.state.ctx
    token = bearer_token(ws, allow_query=True)
    try:
        if not token:
            raise Unauthorized("visitor token required")
        claims = verify_visitor_token(c.settings.secret_key, token, now_ms())
        inbox = await c.store.get_inbox(claims.inbox_id)
        contact = await c.store.get_contact(claims.contact_id)
    except (Unauthorized, NotFound) as exc:
        await _refuse(ws, CLOSE_UNAUTHENTICATED, exc.message)
        return
    except StoreError:
        await _refuse(ws, CLOSE_TRY_AGAIN, "the database is unavailable; try again")
        return
    if not inbox.allows_origin(ws.headers.get("origin")):
        await _refuse(ws, CLOSE_FORBIDDEN, "origin not allowed for this inbox")
        return
    await ws.accept()
    session = Session(
        ws, settings=c.settings, service=c.service, hub=c.hub, contact=contact, inbox_id=inbox.id
    )
    await session.run()


async def agent_endpoint(ws: WebSocket) -> None:
    c: Context = ws.app.state.ctx
    try:
        agent = await authenticate_agent(ws, c.store, c.settings, method="GET")
    except ApiError as exc:
        await _refuse(ws, CLOSE_UNAUTHENTICATED, exc.message)
        return
    except StoreError:
        await _refuse(ws, CLOSE_TRY_AGAIN, "the database is unavailable; try again")
        return
    if not origin_allowed_for_console(ws, c.settings):
        await _refuse(ws, CLOSE_FORBIDDEN, "origin not allowed for the agent console")
        return
    await ws.accept()
    cookie = None if bearer_token(ws, allow_query=True) else ws.cookies.get(SESSION_COOKIE)
    session = Session(
        ws,
        settings=c.settings,
        service=c.service,
        hub=c.hub,
        agent=agent,
        login_hash=sha256_hex(cookie) if cookie else None,
    )
    await c.presence.connect(agent.id, session.id)
    await c.service.publish_presence(agent)
    try:
        await session.run()
    finally:
        await c.presence.disconnect(agent.id, session.id)
        try:
            await c.service.publish_presence(session.agent or agent)
        except Exception:
            log.exception("presence update failed")


routes = [
    WebSocketRoute("/ws/visitor", visitor_endpoint),
    WebSocketRoute("/ws/agent", agent_endpoint),
]
