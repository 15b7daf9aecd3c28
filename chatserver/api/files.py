"""Files in conversations.

- ``POST /api/v1/widget/uploads?conversation_id=`` (visitor token as Bearer; CORS for the inbox's
  allowed origins) and ``POST /api/v1/uploads?conversation_id=`` (agents): the raw file is the body,
  its type in ``Content-Type`` and its name in ``X-Filename`` (percent-encoded). The body limit
  (``CHATSERVER_UPLOAD_MAX_BYTES``) applies before anything is read. Answers ``{id, name, content_type,
  size}``; send it with ``message.send {attachments: [id]}``.
- ``GET /api/v1/attachments/{id}/content`` (agents) and ``GET /api/v1/widget/attachments/{id}/link``
  (the conversation's visitor: a signed link that works for a few minutes) -> ``GET /files/{id}?exp&sig``.

Files are served as downloads (their own type when it is one of the accepted upload types, else
``application/octet-stream``) except a few image types shown inline,
always with ``nosniff`` and a sandboxing Content-Security-Policy: a file is somebody else's content.
"""

from __future__ import annotations

import time
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from chatserver.api import schemas as S
from chatserver.api.common import api, ctx, current_agent, json_response
from chatserver.api.openapi import spec
from chatserver.api.widget import cors_headers as widget_cors
from chatserver.api.widget import visitor_claims
from chatserver.errors import Forbidden, Invalid, NotFound, TooLarge, Unauthorized, Unavailable
from chatserver.files.model import Attachment, disposition, link_valid
from chatserver.files.service import AttachmentService
from chatserver.model.types import Author, AuthorKind, Conversation
from chatserver.widgetcfg.origin import origin_allowed

UPLOAD_PATHS = ("/api/v1/widget/uploads", "/api/v1/uploads")


def _files(request: Request) -> AttachmentService:
    service = ctx(request).service.files
    if service is None:
        raise Unavailable("files are not available")
    return service


def _conversation_id(request: Request) -> str:
    cid = request.query_params.get("conversation_id")
    if not cid or len(cid) > 64:
        raise Invalid("conversation_id is required", data={"field": "conversation_id"})
    return cid


async def _read_upload(request: Request, service: AttachmentService) -> tuple[str | None, str | None, bytes]:
    data = await request.body()  # bounded by the body limit middleware, before it is read
    if len(data) > service.limits.max_bytes:
        raise TooLarge(
            f"the file is over the limit of {service.limits.max_bytes} bytes",
            data={"limit": service.limits.max_bytes},
        )
    raw_name = request.headers.get("x-filename")
    name = unquote(raw_name)[:1000] if raw_name else None
    return name, request.headers.get("content-type"), data


async def _visitor_conversation(request: Request, cid: str) -> tuple[Conversation, str]:
    c = ctx(request)
    claims = visitor_claims(request)
    conv = await c.service.visitor_conversation(claims.contact_id, cid)
    if conv.inbox_id != claims.inbox_id:
        raise Forbidden("this conversation belongs to another inbox")
    return conv, claims.contact_id


CORS_METHODS = "GET, POST, OPTIONS"
CORS_HEADERS = "Authorization, Content-Type, X-Filename"


async def _cors(request: Request) -> dict[str, str]:
    """CORS headers for the widget's page (errors included), when its inbox allows that page (the same
    rule as the widget's other endpoints: chatserver/widgetcfg/origin.py)."""
    c = ctx(request)
    if request.headers.get("origin"):
        try:
            inbox = await c.store.get_inbox(visitor_claims(request).inbox_id)
        except (Unauthorized, NotFound):
            inbox = None
        if inbox is not None and not origin_allowed(inbox, request, public_url=c.settings.public_url):
            return {}
    return widget_cors(request, CORS_METHODS, CORS_HEADERS)


async def widget_preflight(request: Request) -> Response:
    return Response(status_code=204, headers=widget_cors(request, CORS_METHODS, CORS_HEADERS))


async def widget_upload(request: Request) -> Response:
    response = await _widget_upload(request)
    response.headers.update(await _cors(request))
    return response


@api
async def _widget_upload(request: Request) -> Response:
    service = _files(request)
    conv, contact_id = await _visitor_conversation(request, _conversation_id(request))
    name, ctype, data = await _read_upload(request, service)
    author = Author(AuthorKind.CONTACT, contact_id, "")
    att = await service.create(conv.id, author, name=name, content_type=ctype, data=data)
    return json_response(att.to_wire(), status=201)


@api
async def agent_upload(request: Request) -> Response:
    c = ctx(request)
    agent = await current_agent(request)
    service = _files(request)
    conv = await c.service.agent_conversation(agent, _conversation_id(request))
    name, ctype, data = await _read_upload(request, service)
    att = await service.create(conv.id, agent.author, name=name, content_type=ctype, data=data)
    return json_response(att.to_wire(), status=201)


def _serve(request: Request, att: Attachment) -> Response:
    service = _files(request)
    ctype, how = disposition(att)
    return FileResponse(
        service.files.path(att.sha256),
        media_type=ctype,
        headers={
            "Content-Disposition": how,
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; img-src 'self'; sandbox",
            "Cache-Control": "private, max-age=300",
            "Cross-Origin-Resource-Policy": "cross-origin",
        },
    )


@api
async def agent_content(request: Request) -> Response:
    c = ctx(request)
    agent = await current_agent(request)
    att = await _files(request).get(request.path_params["attachment_id"])
    await c.service.agent_conversation(agent, att.conversation_id)
    return _serve(request, att)


async def widget_link(request: Request) -> Response:
    response = await _widget_link(request)
    response.headers.update(await _cors(request))
    return response


@api
async def _widget_link(request: Request) -> Response:
    service = _files(request)
    att = await service.get(request.path_params["attachment_id"])
    try:
        await _visitor_conversation(request, att.conversation_id)
    except Forbidden:
        raise NotFound("no such file") from None  # never confirm that someone else's file exists
    return json_response(service.link(att))


@api
async def signed_file(request: Request) -> Response:
    c = ctx(request)
    att_id = request.path_params["attachment_id"]
    q = request.query_params
    if not link_valid(c.settings.secret_key, att_id, q.get("exp"), q.get("sig"), time.time()):
        raise Forbidden("this link is not valid or has expired; ask for a new one")
    return _serve(request, await _files(request).get(att_id))


routes = [
    Route(
        "/api/v1/widget/uploads",
        spec(
            widget_upload,
            raw_request=True,
            response=S.ATTACHMENT,
            status=201,
            query={"conversation_id": S.STR},
        ),
        methods=["POST"],
    ),
    Route("/api/v1/widget/uploads", spec(widget_preflight, **S.NO_CONTENT), methods=["OPTIONS"]),
    Route(
        "/api/v1/uploads",
        spec(
            agent_upload,
            raw_request=True,
            response=S.ATTACHMENT,
            status=201,
            query={"conversation_id": S.STR},
        ),
        methods=["POST"],
    ),
    Route(
        "/api/v1/attachments/{attachment_id}/content",
        spec(agent_content, response=S.STR, content="application/octet-stream"),
        methods=["GET"],
    ),
    Route(
        "/api/v1/widget/attachments/{attachment_id}/link",
        spec(widget_link, response=S.FILE_LINK),
        methods=["GET"],
    ),
    Route("/api/v1/widget/attachments/{attachment_id}/link", widget_preflight, methods=["OPTIONS"]),
    Route("/files/{attachment_id}", signed_file, methods=["GET"]),
]
