"""Visitor identity for the widget: ``POST /api/v1/widget/sessions``.

Called cross-origin from the customer's site, so it answers CORS for any origin (no credentials) and
checks the Origin against the inbox's allowed origins itself.
"""

from __future__ import annotations

import contextlib

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chatserver.api.common import api, body, ctx, json_response, req_str, str_field
from chatserver.auth.secrets import sign_visitor_token, verify_visitor_token
from chatserver.errors import Forbidden, Invalid, NotFound, Unauthorized
from chatserver.model.ids import now_ms
from chatserver.model.types import iso


def _cors(request: Request) -> dict[str, str]:
    origin = request.headers.get("origin")
    if not origin:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": "Content-Type",
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }


async def preflight(request: Request) -> Response:
    return Response(status_code=204, headers=_cors(request))


async def create_session(request: Request) -> Response:
    """Exchange an inbox key (and optionally a previous visitor token) for a visitor token."""
    response = await _create_session(request)
    response.headers.update(_cors(request))  # errors too: the widget must be able to read why
    return response


@api
async def _create_session(request: Request) -> Response:
    c = ctx(request)
    data = await body(request)
    inbox = await c.store.inbox_by_key(req_str(data, "inbox_key", max_len=64))
    if inbox is None:
        raise NotFound("unknown inbox key")
    if not inbox.allows_origin(request.headers.get("origin")):
        raise Forbidden("this page's origin is not allowed for the inbox")
    locale = str_field(data, "locale", required=False, max_len=35)
    if locale is not None and not all(ch.isalnum() or ch in "-_" for ch in locale):
        raise Invalid("locale must be a BCP 47 tag", data={"field": "locale"})
    language = locale.replace("_", "-").split("-")[0].lower() if locale else None
    name = str_field(data, "name", required=False, max_len=200)
    now = now_ms()
    contact = None
    previous = str_field(data, "token", required=False, max_len=2000)
    if previous:
        with contextlib.suppress(Unauthorized, NotFound):
            claims = verify_visitor_token(c.settings.secret_key, previous, now)
            if claims.inbox_id == inbox.id:
                contact = await c.store.get_contact(claims.contact_id)
    if contact is None:
        contact = await c.store.create_contact(
            name=name or "Visitor", channel=inbox.channel, language=language
        )
    expires = now + c.settings.visitor_token_ttl_s * 1000
    token = sign_visitor_token(c.settings.secret_key, contact.id, inbox.id, expires)
    return json_response(
        {"token": token, "contact_id": contact.id, "inbox_id": inbox.id, "expires_at": iso(expires)},
        status=201,
    )


routes = [
    Route("/api/v1/widget/sessions", create_session, methods=["POST"]),
    Route("/api/v1/widget/sessions", preflight, methods=["OPTIONS"]),
]
