"""Channel webhooks: ``POST /webhooks/{channel}/{inbox_id}`` (and Meta's ``GET`` verification,
Twilio's status callbacks at ``/webhooks/sms/{inbox_id}/status``).

Order of checks, each answering before anything is stored: unknown inbox or channel 404; body over
1 MB 413 (from Content-Length, or while reading); signature 403 (constant time, over the raw body);
non-UTF-8 or invalid JSON 400. Then the events are applied and the answer is 200 only after the
messages committed; what we do not handle is answered 200 too (platforms retry errors) and logged.
"""

from __future__ import annotations

import logging

from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from adapters.base import MAX_BODY, Channel, WebhookRequest
from adapters.twilio import EMPTY_TWIML, Twilio
from chatserver.api.common import api, ctx, json_response
from chatserver.channels.inbound import Inbound
from chatserver.channels.inboxes import adapter_for
from chatserver.errors import BadFrame, NotFound, TooLarge
from chatserver.model.types import Inbox

log = logging.getLogger(__name__)


async def _inbox(request: Request) -> tuple[Inbox, Channel]:
    channel = request.path_params["channel"]
    adapter = adapter_for(channel)
    if adapter is None:
        raise NotFound("no such channel")
    inbox = await ctx(request).store.get_inbox(request.path_params["inbox_id"])  # NotFound: 404
    if inbox.channel != channel:
        raise NotFound("inbox not found")
    return inbox, adapter


async def _read(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise TooLarge(f"webhook body over {MAX_BODY} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                raise TooLarge(f"webhook body over {MAX_BODY} bytes")
            chunks.append(chunk)
    except ClientDisconnect as exc:  # the platform gave up; it will retry
        raise BadFrame("the request ended before its body did") from exc
    return b"".join(chunks)


def _called_url(request: Request) -> str:
    """The URL the platform called, as it signed it: the public URL when one is configured."""
    public = ctx(request).settings.public_url
    if not public:
        return str(request.url)
    query = request.url.query
    return public + request.url.path + (f"?{query}" if query else "")


async def _webhook_request(request: Request) -> WebhookRequest:
    body = await _read(request)
    return WebhookRequest(
        body=body,
        headers={k.lower(): v for k, v in request.headers.items()},
        query=dict(request.query_params),
        url=_called_url(request),
    )


def inbound(request: Request) -> Inbound:
    c = ctx(request)
    if c.inbound is None:
        c.inbound = Inbound(c.service, c.channel_client)
    return c.inbound


def _ok(adapter: Channel) -> Response:
    if isinstance(adapter, Twilio):
        return Response(EMPTY_TWIML, media_type="text/xml")
    return json_response({"ok": True})


@api
async def receive(request: Request) -> Response:
    inbox, adapter = await _inbox(request)
    req = await _webhook_request(request)
    adapter.verify(req, inbox.config)
    events = adapter.parse(req, inbox.config)
    await inbound(request).apply(inbox, events)
    return _ok(adapter)


@api
async def twilio_status(request: Request) -> Response:
    inbox, adapter = await _inbox(request)
    if not isinstance(adapter, Twilio):
        raise NotFound("status callbacks are for sms inboxes")
    req = await _webhook_request(request)
    adapter.verify(req, inbox.config)
    await inbound(request).apply(inbox, adapter.parse_status_callback(req, inbox.config))
    return _ok(adapter)


@api
async def handshake(request: Request) -> Response:
    inbox, adapter = await _inbox(request)
    return PlainTextResponse(adapter.handshake(dict(request.query_params), inbox.config))


routes = [
    Route("/webhooks/{channel}/{inbox_id}", receive, methods=["POST"]),
    Route("/webhooks/{channel}/{inbox_id}", handshake, methods=["GET"]),
    Route("/webhooks/{channel}/{inbox_id}/status", twilio_status, methods=["POST"]),
]
