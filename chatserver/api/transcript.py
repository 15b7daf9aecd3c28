"""``POST /api/v1/widget/transcript {conversation_id}``: the visitor asks for their conversation by email.

The visitor token (``Authorization: Bearer``) must be the conversation's visitor, from an allowed page;
the contact must have an email address (``409`` otherwise: the widget asks for one first, through
``POST /api/v1/widget/contact``); email must be configured (``503``); one transcript per conversation
every 10 minutes (``429``). The mail is queued in the outbox (``202``), marked ``Auto-Submitted``, and
its delivery state reaches agents like any other.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chatserver.api import schemas as S
from chatserver.api.common import api, body, ctx, json_response, req_str
from chatserver.api.openapi import spec
from chatserver.api.widget import cors_headers, visitor_claims
from chatserver.api.widget import preflight as widget_preflight
from chatserver.errors import Conflict, Forbidden, RateLimited, Unavailable
from chatserver.model.ids import now_ms
from chatserver.widgetcfg.origin import origin_allowed
from chatserver.widgetcfg.store import widget_settings
from chatserver.widgetcfg.transcript import EVERY_S, KEY_PREFIX, transcript_mail, transcript_text

MAX_MESSAGES = 2000


async def request_transcript(request: Request) -> Response:
    response = await _request_transcript(request)
    response.headers.update(cors_headers(request))
    return response


@api
async def _request_transcript(request: Request) -> Response:
    c = ctx(request)
    claims = visitor_claims(request)
    inbox = await c.store.get_inbox(claims.inbox_id)
    if not origin_allowed(inbox, request, public_url=c.settings.public_url):
        raise Forbidden("this page's origin is not allowed for the inbox", data={"reason": "origin"})
    data = await body(request)
    conv = await c.service.visitor_conversation(
        claims.contact_id, req_str(data, "conversation_id", max_len=64)
    )
    contact = await c.store.get_contact(conv.contact_id)
    if not contact.email:
        raise Conflict("we have no email address for you yet", data={"field": "email", "reason": "no_email"})
    if not c.settings.smtp_url or c.outbox is None:
        raise Unavailable("email is not configured on this server")
    now = now_ms()
    for d in await c.outbox.deliveries(conversation_id=conv.id):
        if d.idempotency_key.startswith(KEY_PREFIX) and now - d.created_at < EVERY_S * 1000:
            wait = EVERY_S - (now - d.created_at) // 1000
            raise RateLimited(
                f"a transcript was sent a moment ago; ask again in {wait} s", data={"retry_after_s": wait}
            )
    messages = await c.store.messages_after(conv.id, 0, limit=MAX_MESSAGES, include_private=False)
    settings = widget_settings(inbox)
    tz = ZoneInfo(settings.timezone) if settings.timezone else dt.UTC
    text = transcript_text(
        messages,
        title=f"{inbox.name}: your conversation",
        visitor_name=contact.name,
        language=conv.language,
        tz=tz,
    )
    mail = transcript_mail(
        to=contact.email,
        to_name=contact.name,
        inbox_name=inbox.name,
        text=text,
        conversation_id=conv.id,
        mail_from=c.settings.mail_from,
    )
    (delivery_id,) = await c.outbox.enqueue([mail])
    c.service.wake_outbox()
    return json_response({"queued": True, "delivery_id": delivery_id, "to": contact.email}, status=202)


routes = [
    Route(
        "/api/v1/widget/transcript",
        spec(
            request_transcript,
            request=S.obj(("conversation_id",), conversation_id=S.STR),
            response=S.TRANSCRIPT,
            status=202,
        ),
        methods=["POST"],
    ),
    Route(
        "/api/v1/widget/transcript", widget_preflight, methods=["OPTIONS"], name="widget_transcript_preflight"
    ),
]
