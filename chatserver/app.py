"""``create_app(settings)``: the Starlette application; its lifespan builds the services and tears
them down in reverse order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from chatserver.api import auth_routes, canned, conversations, directory, health, widget
from chatserver.api import routing as routing_api
from chatserver.api.common import error_response
from chatserver.bus import Bus, RedisBus, make_bus
from chatserver.chat import ChatService
from chatserver.context import Context
from chatserver.errors import ConfigError, api_error
from chatserver.model.events import ConversationEvent
from chatserver.presence import MemoryPresence, Presence, RedisPresence
from chatserver.realtime import endpoints
from chatserver.realtime.hub import Hub
from chatserver.routing.lease import Lease, LocalLease, RedisLease
from chatserver.routing.service import Router
from chatserver.settings import Settings
from chatserver.store.db import Database, make_engine
from chatserver.store.migrate import current_revision, head_revision, upgrade
from chatserver.store.store import Store
from chatserver.translation.delivery import TranslationDelivery
from chatserver.translation.detect import LanguageDetector
from chatserver.translation.service import build_translator

log = logging.getLogger(__name__)

CONSOLE_DIR = Path(__file__).parent / "console"


def widget_dir() -> Path:
    return Path(str(resources.files("widget")))


async def build_context(settings: Settings) -> Context:
    engine = make_engine(settings.database_url)
    try:
        if settings.embedded:
            await upgrade(engine)
        elif await current_revision(engine) != head_revision():
            raise ConfigError("the database schema is not current: run `chatserver migrate` first")
    except BaseException:
        await engine.dispose()
        raise
    store = Store(Database(engine), group_commit_max=settings.group_commit_max)
    await store.start()
    bus = make_bus(settings.redis_url, settings.redis_prefix)
    presence: Presence = (
        RedisPresence(bus.client, settings.presence_ttl_s, settings.redis_prefix)
        if isinstance(bus, RedisBus)
        else MemoryPresence()
    )
    service = ChatService(store, bus, presence, routing=settings.routing)
    await service.start()
    if settings.translation_enabled:
        service.translation = build_translation(settings, store, service, bus)
        await service.translation.start()

    async def payload(conversation_id: str) -> ConversationEvent | None:
        conv = await store.get_conversation(conversation_id)
        return ConversationEvent(conv.id, conv.version, await service.conversation_payload(conv))

    hub = Hub(bus, store, payload, reconcile_s=settings.reconcile_interval_s)
    await hub.start()
    router = None
    if settings.routing == "offers":
        lease: Lease = (
            RedisLease(
                bus.client,
                store.fence_token,
                ttl_s=settings.routing_lease_ttl_s,
                prefix=settings.redis_prefix,
            )
            if isinstance(bus, RedisBus)
            else LocalLease(store.fence_token)
        )
        router = Router(settings, service, presence, hub, lease)
        await router.start()
    return Context(settings, store, bus, presence, service, hub, router)


def build_translation(
    settings: Settings, store: Store, service: ChatService, bus: Bus
) -> TranslationDelivery:
    translator = build_translator(
        settings.translation_config(),
        redis=bus.client if isinstance(bus, RedisBus) else None,
        redis_prefix=settings.redis_prefix + "translation:",
    )
    detector = LanguageDetector(settings.languages, low_accuracy=settings.detection_accuracy == "low")
    return TranslationDelivery(
        store,
        translator,
        detector,
        service.publish,
        agent_language=settings.agent_language,
        retry_s=settings.translation_retry_s,
    )


async def close_context(c: Context) -> None:
    if c.router is not None:
        await c.router.stop()
    await c.hub.stop()
    if c.service.translation is not None:
        await c.service.translation.stop()
    await c.service.stop()
    await c.store.close()


async def _refresh_presence(c: Context) -> None:
    while True:
        await asyncio.sleep(c.settings.presence_ttl_s / 3)
        try:
            await c.presence.refresh()
        except Exception:
            log.exception("presence refresh failed")


async def demo_page(request: Request) -> Response:
    c: Context = request.app.state.ctx
    key = request.query_params.get("inbox")
    if key is None:
        inboxes = await c.store.list_inboxes()
        if not inboxes:
            return HTMLResponse(
                "<p>No inbox yet: run <code>chatserver create-inbox</code>.</p>", status_code=404
            )
        key = inboxes[0].key
    html = (widget_dir() / "demo.html").read_text().replace("{{INBOX_KEY}}", _attr(key))
    return HTMLResponse(html)


def _attr(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


async def _server_error(request: Request, exc: Exception) -> Response:
    return error_response(api_error(exc, context=f"{request.method} {request.url.path}"))


class ChatApp(Starlette):
    """Starlette for HTTP; the WebSocket endpoints are dispatched here directly, with the server's own
    ``send`` and ``receive``: every frame skips the HTTP middleware and exception wrappers (a quarter of the
    CPU per message in profiles), and each connection keeps fewer frames alive."""

    ws_endpoints: dict[str, Callable[[WebSocket], Awaitable[None]]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            endpoint = self.ws_endpoints.get(scope["path"])
            if endpoint is not None:
                scope["app"] = self
                await endpoint(WebSocket(scope, receive, send))
                return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings) -> Starlette:
    settings = settings.with_secret()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        c = await build_context(settings)
        app.state.ctx = c
        refresher = asyncio.create_task(_refresh_presence(c), name="presence-refresh")
        try:
            yield
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            await close_context(c)

    routes = [
        *health.routes,
        *auth_routes.routes,
        *widget.routes,
        *conversations.routes,
        *directory.routes,
        *canned.routes,
        *routing_api.routes,
        *endpoints.routes,
        Route("/", lambda r: RedirectResponse("/console/"), methods=["GET"]),
        Route("/demo", demo_page, methods=["GET"]),
        Mount("/widget", StaticFiles(directory=widget_dir()), name="widget"),
        Mount("/console", StaticFiles(directory=CONSOLE_DIR, html=True), name="console"),
    ]
    app = ChatApp(routes=routes, lifespan=lifespan, exception_handlers={500: _server_error})
    app.ws_endpoints = {r.path: r.endpoint for r in endpoints.routes}
    return app
