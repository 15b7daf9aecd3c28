"""The widget's public endpoints, called cross-origin from the customer's site:

- ``POST /api/v1/widget/sessions``: an inbox key (and optionally a previous visitor token, a signed
  ``user``) for a visitor token;
- ``GET /api/v1/widget/config?inbox_key=&lang=``: the inbox's widget settings in the visitor's language
  (public, cacheable: Cache-Control + ETag);
- ``POST /api/v1/widget/contact``: the visitor (Bearer visitor token) gives their name, email, phone or
  pre-chat answers; validated against the inbox's pre-chat form, stored on the contact.

They answer CORS for any origin (no credentials) and check the Origin against the inbox's allowed origins
themselves (chatserver/widgetcfg/origin.py).
"""

from __future__ import annotations

import contextlib
import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from chatserver.api.common import api, body, ctx, json_response, req_str, str_field
from chatserver.api.openapi import spec
from chatserver.auth.identity import bearer_token
from chatserver.auth.secrets import VisitorClaims, sign_visitor_token, verify_visitor_token
from chatserver.context import Context
from chatserver.errors import Forbidden, Invalid, NotFound, Unauthorized
from chatserver.model.ids import now_ms
from chatserver.model.types import Contact, Inbox, iso
from chatserver.widgetcfg import identity
from chatserver.widgetcfg.model import (
    EMAIL,
    MAX_FACES,
    PHONE,
    contact_values,
    etag,
    public_view,
    team_faces,
    validate_answers,
)
from chatserver.widgetcfg.origin import origin_allowed
from chatserver.widgetcfg.store import WidgetStore, identity_secret, widget_settings
from chatserver.widgetcfg.texts import CACHE

CONFIG_MAX_AGE_S = 60
IDENTITY_CHANNEL = "widget-user"
"""Contact identities of verified users: ``<inbox id>:<user id>`` (the same contact on every device)."""


def visitor_claims(request: Request) -> VisitorClaims:
    """The visitor token in ``Authorization: Bearer`` (never in the URL), verified; 401 otherwise."""
    token = bearer_token(request, allow_query=False)
    if not token:
        raise Unauthorized("visitor token required (Authorization: Bearer)")
    return verify_visitor_token(ctx(request).settings.secret_key, token, now_ms())


def cors_headers(
    request: Request, methods: str = "POST, OPTIONS", headers: str = "Content-Type, Authorization"
) -> dict[str, str]:
    origin = request.headers.get("origin")
    if not origin:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": methods,
        "Access-Control-Allow-Headers": headers,
        "Access-Control-Expose-Headers": "ETag",
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }


async def preflight(request: Request) -> Response:
    return Response(status_code=204, headers=cors_headers(request, "GET, POST, OPTIONS"))


def _language(raw: str | None) -> str | None:
    if raw is None:
        return None
    if not all(ch.isalnum() or ch in "-_" for ch in raw):
        raise Invalid("locale must be a BCP 47 tag", data={"field": "locale"})
    return raw.replace("_", "-").split("-")[0].lower() or None


async def _inbox_for_page(c: Context, request: Request, key: str) -> Inbox:
    inbox = await c.store.inbox_by_key(key)
    if inbox is None:
        raise NotFound("unknown inbox key")
    if not origin_allowed(inbox, request, public_url=c.settings.public_url):
        raise Forbidden("this page's origin is not allowed for the inbox", data={"reason": "origin"})
    return inbox


async def create_session(request: Request) -> Response:
    """Exchange an inbox key (and optionally a previous visitor token) for a visitor token."""
    response = await _create_session(request)
    response.headers.update(cors_headers(request))  # errors too: the widget must be able to read why
    return response


@api
async def _create_session(request: Request) -> Response:
    c = ctx(request)
    data = await body(request)
    inbox = await _inbox_for_page(c, request, req_str(data, "inbox_key", max_len=64))
    language = _language(str_field(data, "locale", required=False, max_len=35))
    name = str_field(data, "name", required=False, max_len=200)
    now = now_ms()
    contact: Contact | None = None
    verified: identity.VerifiedUser | identity.Refused | None = None
    if data.get("user") is not None:
        verified = identity.verify(identity_secret(inbox), data["user"], time.time())
        if isinstance(verified, identity.VerifiedUser):
            contact = await _user_contact(c, inbox, verified, language)
    previous = str_field(data, "token", required=False, max_len=2000)
    if contact is None and previous:
        with contextlib.suppress(Unauthorized, NotFound):
            claims = verify_visitor_token(c.settings.secret_key, previous, now)
            if claims.inbox_id == inbox.id:
                contact = await c.store.get_contact(claims.contact_id)
                if contact.verified and verified is not None:
                    contact = None  # a failed setUser never resumes a verified user's contact
    if contact is None:
        contact = await c.store.create_contact(
            name=name or "Visitor", channel=inbox.channel, language=language
        )
    expires = now + c.settings.visitor_token_ttl_s * 1000
    token = sign_visitor_token(c.settings.secret_key, contact.id, inbox.id, expires)
    answer = {
        "token": token,
        "contact_id": contact.id,
        "inbox_id": inbox.id,
        "expires_at": iso(expires),
        "identity": "verified" if isinstance(verified, identity.VerifiedUser) else "anonymous",
        "contact": _contact_wire(contact),
    }
    if isinstance(verified, identity.Refused):
        answer["identity_error"] = {"reason": verified.reason, "message": identity.REASONS[verified.reason]}
    return json_response(answer, status=201)


async def _user_contact(
    c: Context, inbox: Inbox, user: identity.VerifiedUser, language: str | None
) -> Contact:
    contact = await c.store.ensure_contact(
        IDENTITY_CHANNEL, f"{inbox.id}:{user.id}", name=user.name or "Visitor", language=language
    )
    values: dict[str, object] = {}
    if user.name and user.name != contact.name:
        values["name"] = user.name
    if user.email and EMAIL.match(user.email) and user.email != contact.email:
        values["email"] = user.email
    if values or not contact.verified:
        await WidgetStore(c.store.db).verify_contact(contact.id, values)
        contact = await c.store.get_contact(contact.id)
    return contact


def _contact_wire(contact: Contact) -> dict[str, object]:
    """What a visitor sees of their own contact."""
    return {
        "name": contact.name,
        "email": contact.email,
        "phone": contact.phone,
        "verified": contact.verified,
    }


async def get_config(request: Request) -> Response:
    response = await _get_config(request)
    response.headers.update(cors_headers(request, "GET, OPTIONS"))
    return response


@api
async def _get_config(request: Request) -> Response:
    c = ctx(request)
    key = request.query_params.get("inbox_key") or ""
    if not key or len(key) > 64:
        raise Invalid("inbox_key is required", data={"field": "inbox_key"})
    inbox = await _inbox_for_page(c, request, key)
    lang = _language((request.query_params.get("lang") or "")[:35]) or "en"
    settings = widget_settings(inbox)
    texts = await CACHE.texts(c.service, inbox.id, settings, lang)
    faces = team_faces(await c.store.face_agents(MAX_FACES))
    view = public_view(settings, inbox_id=inbox.id, lang=lang, texts=texts, faces=faces)
    tag = etag(view)
    headers = {
        "Cache-Control": f"public, max-age={CONFIG_MAX_AGE_S}",
        "ETag": tag,
        "Vary": "Origin",
    }
    if tag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    return json_response(view, headers=headers)


async def update_contact(request: Request) -> Response:
    response = await _update_contact(request)
    response.headers.update(cors_headers(request))
    return response


@api
async def _update_contact(request: Request) -> Response:
    c = ctx(request)
    claims = visitor_claims(request)
    inbox = await c.store.get_inbox(claims.inbox_id)
    if not origin_allowed(inbox, request, public_url=c.settings.public_url):
        raise Forbidden("this page's origin is not allowed for the inbox", data={"reason": "origin"})
    data = await body(request)
    unknown = set(data) - {"name", "email", "phone", "fields"}
    if unknown:
        bad = sorted(unknown)[0]
        raise Invalid(f"unknown field {bad!r}", data={"field": bad})
    prechat = widget_settings(inbox).prechat
    answers = validate_answers(prechat, data.get("fields")) if "fields" in data else {}
    values: dict[str, object] = dict(contact_values(prechat, answers))
    name = str_field(data, "name", required=False, max_len=200)
    email = str_field(data, "email", required=False, max_len=254)
    phone = str_field(data, "phone", required=False, max_len=40)
    if email is not None and not EMAIL.match(email.strip()):
        raise Invalid("email is not an email address", data={"field": "email"})
    if phone is not None and not PHONE.match(phone.strip()):
        raise Invalid("phone is not a phone number", data={"field": "phone"})
    for field, value in (("name", name), ("email", email), ("phone", phone)):
        if value is not None and value.strip():
            values[field] = value.strip()
    contact = await c.store.get_contact(claims.contact_id)
    if contact.verified:
        values.pop("name", None)  # a verified user's name and email come from the site (setUser)
        if contact.email:
            values.pop("email", None)
    if values:
        contact = await c.store.update_contact(contact.id, **values)
    return json_response({"contact": _contact_wire(contact), "fields": answers})


class WidgetAssets(StaticFiles):
    """The widget's files (/widget/): loaded by other sites' pages, so readable cross-origin (the catalogues
    are fetched with fetch(); scripts and styles need no credentials)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), (b"access-control-allow-origin", b"*")]
                message = {**message, "headers": headers}
            await send(message)

        await super().__call__(scope, receive, send_with_cors)


_STR = {"type": ["string", "null"]}
_CONTACT = {
    "type": "object",
    "properties": {"name": _STR, "email": _STR, "phone": _STR, "verified": {"type": "boolean"}},
}
_USER = {
    "type": "object",
    "required": ["id", "expires", "hash"],
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "email": {"type": "string"},
        "expires": {"type": "integer", "description": "Unix seconds"},
        "hash": {"type": "string", "description": 'hex HMAC-SHA256(identity_secret, id + ":" + expires)'},
    },
}
spec(
    create_session,
    **{
        "status": 201,
        "request": {
            "type": "object",
            "required": ["inbox_key"],
            "properties": {
                "inbox_key": {"type": "string"},
                "locale": {"type": "string"},
                "name": {"type": "string"},
                "token": {"type": "string"},
                "user": _USER,
            },
        },
        "response": {
            "type": "object",
            "properties": {
                "token": {"type": "string"},
                "contact_id": {"type": "string"},
                "inbox_id": {"type": "string"},
                "expires_at": {"type": "string"},
                "identity": {"enum": ["verified", "anonymous"]},
                "identity_error": {
                    "type": "object",
                    "properties": {"reason": {"type": "string"}, "message": {"type": "string"}},
                },
                "contact": _CONTACT,
            },
        },
    },
)
_FIELD = {
    "type": "object",
    "properties": {
        "key": {"type": "string"},
        "type": {"enum": ["name", "email", "phone", "dropdown", "text"]},
        "label": {"type": "string"},
        "required": {"type": "boolean"},
        "options": {"type": "array", "items": {"type": "string"}},
    },
}
spec(
    get_config,
    **{
        "query": {"inbox_key": {"type": "string"}, "lang": {"type": "string"}},
        "response": {
            "type": "object",
            "properties": {
                "inbox_id": {"type": "string"},
                "language": {"type": "string"},
                "color": _STR,
                "position": {"enum": ["right", "left", None]},
                "title": _STR,
                "subtitle": _STR,
                "greeting": _STR,
                "timezone": _STR,
                "hours": {"type": ["object", "null"]},
                "open": {"type": "boolean"},
                "prechat": {"type": "array", "items": _FIELD},
            },
        },
    },
)
spec(
    update_contact,
    **{
        "request": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "email": {"type": "string"},
                "phone": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "response": {
            "type": "object",
            "properties": {
                "contact": _CONTACT,
                "fields": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
    },
)
spec(preflight, status=204, response=None)  # CORS preflights: no body

routes = [
    Route("/api/v1/widget/sessions", create_session, methods=["POST"]),
    Route("/api/v1/widget/sessions", preflight, methods=["OPTIONS"], name="widget_sessions_preflight"),
    Route("/api/v1/widget/config", get_config, methods=["GET"]),
    Route("/api/v1/widget/config", preflight, methods=["OPTIONS"], name="widget_config_preflight"),
    Route("/api/v1/widget/contact", update_contact, methods=["POST"]),
    Route("/api/v1/widget/contact", preflight, methods=["OPTIONS"], name="widget_contact_preflight"),
]
