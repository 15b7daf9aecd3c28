"""The WebSocket endpoints: authenticate, check Origin, then hand the socket to a Session.

The handshake is accepted before a refusal so the client sees a close code (4401 not authenticated,
4403 forbidden origin, 4429 too many connections, 1013 handshake too slow) rather than a bare HTTP
error. Everything up to the session (address cap, authentication, origin, identity cap, accept) must
finish within ``CHATSERVER_WS_HANDSHAKE_TIMEOUT_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketState

from chatserver.auth.identity import (
    SESSION_COOKIE,
    WS_PROTOCOL,
    authenticate_agent,
    bearer_token,
    origin_allowed_for_console,
)
from chatserver.auth.secrets import sha256_hex, verify_visitor_token
from chatserver.context import Context
from chatserver.errors import ApiError, NotFound, StoreError, Unauthorized
from chatserver.model.ids import now_ms
from chatserver.presence import visitor_key
from chatserver.realtime.caps import ConnectionCaps, Slot
from chatserver.realtime.session import (
    CLOSE_FORBIDDEN,
    CLOSE_RATE_LIMITED,
    CLOSE_TRY_AGAIN,
    CLOSE_UNAUTHENTICATED,
    Session,
)
from chatserver.widgetcfg.origin import origin_allowed

log = logging.getLogger(__name__)

CAPS_STATE = "ws_caps"


class _Refused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def caps(ws: WebSocket) -> ConnectionCaps:
    """This process's connection caps (``app.state.ws_caps``, made by create_app)."""
    found: ConnectionCaps = getattr(ws.app.state, CAPS_STATE)
    return found


def _subprotocol(ws: WebSocket) -> str | None:
    return WS_PROTOCOL if WS_PROTOCOL in (ws.scope.get("subprotocols") or ()) else None


async def _refuse(ws: WebSocket, code: int, reason: str) -> None:
    if ws.application_state is WebSocketState.CONNECTING:
        await ws.accept(subprotocol=_subprotocol(ws))
    await ws.close(code, reason)


@contextlib.asynccontextmanager
async def _handshake(ws: WebSocket) -> AsyncIterator[list[Slot | None] | None]:
    """Hold the address slot (and, once known, the identity slot) for the socket's lifetime; refuse
    with a close code on a cap, a refusal or the handshake deadline. Yields None when the address is
    over its cap (the socket is closed already: the endpoint returns)."""
    limits = caps(ws)
    client = ws.scope.get("client")
    slot = limits.acquire_address(client[0] if client else None)
    if slot is None:
        await _close_quietly(ws, CLOSE_RATE_LIMITED, "too many connections from this address")
        yield None
        return
    slots: list[Slot | None] = [slot]
    try:
        yield slots
    except _Refused as exc:
        await _close_quietly(ws, exc.code, exc.reason)
    finally:
        for held in slots:
            limits.release(held)


@contextlib.asynccontextmanager
async def _deadline(seconds: float) -> AsyncIterator[None]:
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError as exc:
        log.info("a WebSocket handshake took over %.1f s: closed", seconds)
        raise _Refused(CLOSE_TRY_AGAIN, "handshake took too long") from exc


async def _close_quietly(ws: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(2):
            await _refuse(ws, code, reason)


def _identity_slot(ws: WebSocket, identity: str, slots: list[Slot | None]) -> None:
    slot = caps(ws).acquire_identity(identity)
    if slot is None:
        raise _Refused(CLOSE_RATE_LIMITED, "too many connections for this token")
    slots.append(slot)


async def visitor_endpoint(ws: WebSocket) -> None:
    c: Context = ws.app.state.ctx
    async with _handshake(ws) as slots:
        if slots is None:
            return
        async with _deadline(c.settings.ws_handshake_timeout_s):
            token = bearer_token(ws, allow_query=True)
            try:
                if not token:
                    raise Unauthorized("visitor token required")
                claims = verify_visitor_token(c.settings.secret_key, token, now_ms())
                inbox = await c.store.get_inbox(claims.inbox_id)
                contact = await c.store.get_contact(claims.contact_id)
            except (Unauthorized, NotFound) as exc:
                raise _Refused(CLOSE_UNAUTHENTICATED, exc.message) from exc
            except StoreError as exc:
                raise _Refused(CLOSE_TRY_AGAIN, "the database is unavailable; try again") from exc
            if not origin_allowed(inbox, ws, public_url=c.settings.public_url):
                raise _Refused(CLOSE_FORBIDDEN, "origin not allowed for this inbox")
            _identity_slot(ws, f"contact:{contact.id}", slots)
            await ws.accept(subprotocol=_subprotocol(ws))
        session = Session(
            ws, settings=c.settings, service=c.service, hub=c.hub, contact=contact, inbox_id=inbox.id
        )
        await c.presence.connect(visitor_key(contact.id), session.id)
        try:
            await session.run()
        finally:
            await c.presence.disconnect(visitor_key(contact.id), session.id)
            if c.service.tickets is not None:
                c.service.tickets.visitor_left(contact.id)


async def agent_endpoint(ws: WebSocket) -> None:
    c: Context = ws.app.state.ctx
    async with _handshake(ws) as slots:
        if slots is None:
            return
        async with _deadline(c.settings.ws_handshake_timeout_s):
            try:
                agent = await authenticate_agent(ws, c.store, c.settings, method="GET")
            except ApiError as exc:
                raise _Refused(CLOSE_UNAUTHENTICATED, exc.message) from exc
            except StoreError as exc:
                raise _Refused(CLOSE_TRY_AGAIN, "the database is unavailable; try again") from exc
            if not origin_allowed_for_console(ws, c.settings):
                raise _Refused(CLOSE_FORBIDDEN, "origin not allowed for the agent console")
            _identity_slot(ws, f"agent:{agent.id}", slots)
            await ws.accept(subprotocol=_subprotocol(ws))
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


async def adapter_endpoint(ws: WebSocket) -> None:
    """Bots and custom channels (adapter token as ``?token=`` or ``Authorization: Bearer``). No Origin
    check: adapters are servers, not pages, and their token never lives in a browser."""
    from chatserver.adapterapi.service import adapter_key
    from chatserver.realtime.adapter_session import AdapterSession

    c: Context = ws.app.state.ctx
    api = c.adapters
    async with _handshake(ws) as slots:
        if slots is None:
            return
        async with _deadline(c.settings.ws_handshake_timeout_s):
            try:
                adapter = await api.authenticate(bearer_token(ws, allow_query=True)) if api else None
            except StoreError as exc:
                raise _Refused(CLOSE_TRY_AGAIN, "the database is unavailable; try again") from exc
            if adapter is None or api is None:
                raise _Refused(CLOSE_UNAUTHENTICATED, "invalid or revoked adapter token")
            _identity_slot(ws, f"adapter:{adapter.id}", slots)
            await ws.accept(subprotocol=_subprotocol(ws))
        session = AdapterSession(
            ws, settings=c.settings, service=c.service, hub=c.hub, adapter=adapter, api=api
        )
        await c.presence.connect(adapter_key(adapter.id), session.id)
        api.connected(adapter.id)
        try:
            await session.run()
        finally:
            await c.presence.disconnect(adapter_key(adapter.id), session.id)


routes.append(WebSocketRoute("/ws/adapter", adapter_endpoint))
