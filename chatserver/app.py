"""``create_app(settings)``: the Starlette application; its lifespan builds the services and tears
them down in reverse order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from chatserver.adapterapi.frames import inject_body_limit
from chatserver.api import adapters as adapters_api
from chatserver.api import (
    auth_routes,
    canned,
    contacts,
    conversations,
    directory,
    health,
    http_errors,
    mail,
    outgoing_webhooks,
    webhooks,
    widget,
)
from chatserver.api import csat as csat_api
from chatserver.api import files as files_api
from chatserver.api import routing as routing_api
from chatserver.api import sla as sla_api
from chatserver.api import tickets as tickets_api
from chatserver.api import transcript as transcript_api
from chatserver.api.common import error_response
from chatserver.api.security_headers import SecurityHeaders
from chatserver.auth.login import LoginGuard
from chatserver.auth.throttle import MemoryThrottleStore, RedisThrottleStore
from chatserver.bus import Bus, RedisBus, make_bus
from chatserver.channels.inbound import Inbound
from chatserver.channels.polling import running_pollers
from chatserver.chat import ChatService
from chatserver.context import Context
from chatserver.errors import api_error
from chatserver.files.service import AttachmentService, FileLimits
from chatserver.files.store import FileStore
from chatserver.model.events import ConversationEvent
from chatserver.outbox import OutboxQueries
from chatserver.outbox.setup import build_registry, build_worker
from chatserver.presence import MemoryPresence, Presence, RedisPresence
from chatserver.realtime import endpoints
from chatserver.realtime.caps import ConnectionCaps
from chatserver.realtime.hub import Hub
from chatserver.routing.lease import Lease, LocalLease, RedisLease
from chatserver.routing.service import Router
from chatserver.settings import Settings
from chatserver.store.db import Database, make_engine
from chatserver.store.migrate import migrate, require_current
from chatserver.store.store import Store
from chatserver.tickets.sla import SlaService
from chatserver.translation.delivery import TranslationDelivery
from chatserver.translation.detect import LanguageDetector
from chatserver.translation.service import build_translator
from chatserver.transport.body import BodyLimit

log = logging.getLogger(__name__)

CONSOLE_DIR = Path(__file__).parent / "console"
BODY_LIMIT_OVERRIDES: dict[str, int] = {}
"""Path prefix -> body limit, for a route that needs more than CHATSERVER_MAX_BODY_BYTES (uploads get
CHATSERVER_UPLOAD_MAX_BYTES, from the settings)."""


def widget_dir() -> Path:
    return Path(str(resources.files("widget")))


async def build_service(settings: Settings, engine: AsyncEngine) -> tuple[Store, Bus, Presence, ChatService]:
    """The conversation service every process that writes messages needs: store, bus, presence and
    translation (the web process adds the hub, routing and the rest; `worker` and `smtp` use it alone)."""
    store = Store(Database(engine), group_commit_max=settings.group_commit_max)
    await store.start()
    bus = make_bus(settings.redis_url, settings.redis_prefix)
    presence: Presence = (
        RedisPresence(bus.client, settings.presence_ttl_s, settings.redis_prefix)
        if isinstance(bus, RedisBus)
        else MemoryPresence()
    )
    service = ChatService(store, bus, presence, routing=settings.routing)
    service.files = build_files(settings, store)
    await service.start()
    if settings.translation_enabled:
        service.translation = build_translation(settings, store, service, bus)
        await service.translation.start()
    return store, bus, presence, service


def build_files(settings: Settings, store: Store) -> AttachmentService:
    limits = FileLimits(settings.upload_max_bytes, settings.accepted_upload_types)
    return AttachmentService(store.db, FileStore(settings.files_path), limits, secret=settings.secret_key)


async def build_context(settings: Settings) -> Context:
    engine = make_engine(settings.database_url, pool_size=settings.db_pool)
    try:
        if settings.embedded or settings.auto_migrate:
            await migrate(engine)
        else:
            await require_current(engine)  # one line saying what to run
    except BaseException:
        await engine.dispose()
        raise
    store, bus, presence, service = await build_service(settings, engine)

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
    c = Context(settings, store, bus, presence, service, hub, login_guard(settings, bus), router)
    c.outbox = OutboxQueries(store.db)
    c.senders = build_registry(settings)
    build_channels(c)
    if settings.workers_in_serve:
        c.outbox_worker = build_worker(settings, c.outbox, c.senders, service.publish)
        await c.outbox_worker.start()
        service.wake_outbox = c.outbox_worker.wake
    from chatserver.adapterapi.setup import build_adapter_api

    await build_adapter_api(c)  # bots, custom channels, outgoing webhooks (needs the senders, the worker)

    await build_tickets(c)
    from chatserver.mail.outbound import install_email_outbound

    install_email_outbound(settings, service)  # email replies and ticket mails in the mail thread
    return c


def build_channels(c: Context) -> None:
    """Channel replies: the builders of agent replies (and WhatsApp templates) on the conversation
    service, and the ``channel`` sender with its HTTP client on the outbox registry."""
    from chatserver.channels.outbound import ChannelReplies
    from chatserver.channels.sender import register_channel_sender

    assert c.senders is not None
    ChannelReplies(
        c.store,
        base_url=c.settings.base_url,
        public_url=c.settings.public_url,
        secret=c.settings.secret_key,
    ).register(c.service)
    translation = c.service.translation
    translate = translation.translate_text if translation is not None and translation.enabled else None
    c.channel_client = register_channel_sender(c.senders, c.store, translate)


def login_guard(settings: Settings, bus: Bus) -> LoginGuard:
    account, address = settings.login_policies()
    return LoginGuard(
        RedisThrottleStore(bus.client, settings.redis_prefix)
        if isinstance(bus, RedisBus)
        else MemoryThrottleStore(),
        account=account,
        address=address,
        hash_concurrency=settings.password_hash_concurrency,
    )


async def build_tickets(c: Context) -> None:
    from chatserver.tickets.csat import CsatService
    from chatserver.tickets.service import TicketService
    from chatserver.tickets.sla import SlaWorker
    from chatserver.tickets.store import TicketQueries

    assert c.outbox is not None
    queries = TicketQueries(c.store.db)
    worker = c.outbox_worker
    tickets = TicketService(
        c.settings, c.store, c.service, queries, c.outbox, wake_outbox=worker.wake if worker else None
    )
    csat = CsatService(c.service, queries, secret=c.settings.secret_key, base_url=c.settings.base_url)
    tickets.csat_link = csat.link_for
    c.service.tickets = tickets
    c.service.csat = csat
    tickets.sla = SlaService(c.store, queries)
    tickets.start()
    if c.settings.workers_in_serve:
        c.sla_worker = SlaWorker(tickets.sla, sla_lease(c.settings, c.bus, tickets.sla), c.service.publish)
        await c.sla_worker.start()


def sla_lease(settings: Settings, bus: Bus, service: SlaService) -> Lease:
    """One SLA worker at a time across processes (Redis), always this one on the embedded defaults."""
    if isinstance(bus, RedisBus):
        lease = RedisLease(
            bus.client, service.fence_token, ttl_s=settings.routing_lease_ttl_s, prefix=settings.redis_prefix
        )
        lease.key = f"{settings.redis_prefix}sla:leader"
        return lease
    return LocalLease(service.fence_token)


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
    from chatserver.adapterapi.setup import close_adapter_api

    await close_adapter_api(c)
    if c.sla_worker is not None:
        await c.sla_worker.stop()
    if c.service.tickets is not None:
        await c.service.tickets.stop()
    if c.outbox_worker is not None:
        await c.outbox_worker.stop()
    if c.inbound is not None:
        await c.inbound.stop()
    if c.channel_client is not None:
        await c.channel_client.aclose()
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
        inboxes = [i for i in await c.store.list_inboxes() if i.channel == "widget"]
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

    def build_middleware_stack(self) -> ASGIApp:
        # outermost, so that even the 500 of ServerErrorMiddleware carries the security headers
        return SecurityHeaders(super().build_middleware_stack())

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
        pollers = contextlib.AsyncExitStack()
        mail_services = None
        if settings.embedded:  # one process: Telegram polling and inbound mail run here (else `worker`)
            from chatserver.mail.runner import MailServices

            c.inbound = Inbound(c.service, c.channel_client)
            await pollers.enter_async_context(running_pollers(c.store, c.inbound))
            mail_services = MailServices(settings, c.service, c.bus)
            await mail_services.start()
        app.state.mail = mail_services
        try:
            yield
        finally:
            if mail_services is not None:
                await mail_services.stop()
            await pollers.aclose()
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            await close_context(c)

    routes = [
        *health.routes,
        *auth_routes.routes,
        *widget.routes,
        *files_api.routes,
        *transcript_api.routes,
        *conversations.routes,
        *directory.routes,
        *canned.routes,
        *routing_api.routes,
        *webhooks.routes,
        *contacts.routes,
        *mail.routes,
        *tickets_api.routes,
        *csat_api.routes,
        *sla_api.routes,
        *adapters_api.routes,
        *outgoing_webhooks.routes,
        *endpoints.routes,
        Route("/", lambda r: RedirectResponse("/console/"), methods=["GET"]),
        Route("/demo", demo_page, methods=["GET"]),
        Mount("/widget", widget.WidgetAssets(directory=widget_dir()), name="widget"),
        Mount("/console", StaticFiles(directory=CONSOLE_DIR, html=True), name="console"),
    ]
    app = ChatApp(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(
                BodyLimit,
                default=settings.max_body_bytes,
                overrides={
                    **BODY_LIMIT_OVERRIDES,
                    **dict.fromkeys(files_api.UPLOAD_PATHS, settings.upload_max_bytes),
                    adapters_api.INJECT_PATH: inject_body_limit(
                        settings.max_body_bytes, settings.upload_max_bytes
                    ),
                },
            )
        ],
        exception_handlers={500: _server_error, **http_errors.handlers},
    )
    app.ws_endpoints = {r.path: r.endpoint for r in endpoints.routes}
    setattr(
        app.state,
        endpoints.CAPS_STATE,
        ConnectionCaps(per_identity=settings.ws_per_token, per_address=settings.ws_per_address),
    )
    return app
