"""The adapter API over REST: adapters (admins) and a custom channel's inbound messages.

``GET/POST /api/v1/adapters``, ``DELETE /api/v1/adapters/{id}`` (revoke) for admins;
``POST /api/v1/adapter/messages`` and ``POST /api/v1/adapter/statuses`` with an adapter token
(``Authorization: Bearer``).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chatserver.adapterapi import frames as af
from chatserver.adapterapi.model import Adapter, AdapterKind
from chatserver.adapterapi.service import AdapterService
from chatserver.adapterapi.statuses import status_result
from chatserver.api import schemas as S
from chatserver.api.common import api, body, ctx, current_agent, json_response, req_str, str_field
from chatserver.api.openapi import spec
from chatserver.auth.identity import bearer_token
from chatserver.auth.secrets import new_api_token, sha256_hex
from chatserver.errors import Invalid, Unauthorized, Unavailable
from chatserver.model.types import Role

INJECT_PATH = "/api/v1/adapter/messages"
"""Its body limit takes one file's worth of base64 more (chatserver.adapterapi.frames.inject_body_limit)."""


def adapter_api(request: Request) -> AdapterService:
    found = ctx(request).adapters
    if found is None:
        raise Unavailable("the adapter API is not running")
    return found


async def current_adapter(request: Request) -> Adapter:
    adapter = await adapter_api(request).authenticate(bearer_token(request, allow_query=False))
    if adapter is None:
        raise Unauthorized("invalid or revoked adapter token")
    return adapter


def _inbox_ids(data: dict[str, Any]) -> list[str]:
    raw = data.get("inboxes", [])
    if not isinstance(raw, list) or len(raw) > 100 or not all(isinstance(i, str) and i for i in raw):
        raise Invalid("inboxes must be a list of inbox ids", data={"field": "inboxes"})
    return list(raw)


async def create(
    service: AdapterService,
    *,
    name: str,
    kind: str,
    inbox_ids: list[str],
    url: str | None = None,
    allow_private: bool = False,
) -> tuple[Adapter, str]:
    """A new adapter and its token (shown once; only its hash is stored)."""
    try:
        adapter_kind = AdapterKind(kind)
    except ValueError:
        raise Invalid("kind must be bot or channel", data={"field": "kind"}) from None
    secret = None
    if url is not None:
        from chatserver.webhooks.ssrf import check_url

        await check_url(url, allow_private=allow_private)
        secret = new_api_token()
    token = new_api_token()
    adapter = await service.queries.create(
        name=name,
        kind=adapter_kind,
        token_hash=sha256_hex(token),
        inbox_ids=inbox_ids,
        url=url,
        secret=secret,
    )
    return adapter, token


@api
async def list_adapters(request: Request) -> Response:
    await current_agent(request, role=Role.ADMIN)
    return json_response({"items": [a.to_wire() for a in await adapter_api(request).queries.all()]})


@api
async def create_adapter(request: Request) -> Response:
    await current_agent(request, role=Role.ADMIN)
    data = await body(request)
    adapter, token = await create(
        adapter_api(request),
        name=req_str(data, "name"),
        kind=req_str(data, "kind", max_len=16),
        inbox_ids=_inbox_ids(data),
        url=str_field(data, "url", required=False, max_len=2000),
        allow_private=ctx(request).settings.webhook_allow_private,
    )
    wire = adapter.to_wire()
    wire["token"] = token  # shown once
    if adapter.secret is not None:
        wire["secret"] = adapter.secret  # signs the webhook calls to its url; shown once
    return json_response(wire, status=201)


@api
async def revoke_adapter(request: Request) -> Response:
    await current_agent(request, role=Role.ADMIN)
    adapter = await adapter_api(request).queries.revoke(request.path_params["adapter_id"])
    ctx(request).service.revoke_access(adapter.id, "deactivated")  # its open sockets close (4401)
    return json_response(adapter.to_wire())


@api
async def inject_message(request: Request) -> Response:
    """A custom channel's inbound message; deduped on ``external_id`` (200 with the stored message)."""
    adapter = await current_adapter(request)
    data = await body(request)
    settings = ctx(request).settings
    frame = af.inbound(data, None, settings.max_text_bytes, settings.upload_max_bytes)
    message, duplicate = await adapter_api(request).inject(adapter, frame)
    return json_response(
        {"message": message.to_wire(), "conversation_id": message.conversation_id, "duplicate": duplicate},
        status=200 if duplicate else 201,
    )


@api
async def report_status(request: Request) -> Response:
    """A custom channel's delivery state of an agent's reply (the ``message.status`` frame over REST)."""
    adapter = await current_adapter(request)
    report = af.status_report(await body(request), None)
    applied = await adapter_api(request).report_status(
        adapter, report.message_id, report.state, report.reason
    )
    return json_response(status_result(applied))


async def set_inbox_bot(request: Request, inbox_id: str, bot: Any) -> None:
    """``PATCH /api/v1/inboxes/{id} {"bot": ADAPTER_ID | null}`` (the caller is checked as admin)."""
    if bot is not None and (not isinstance(bot, str) or not bot):
        raise Invalid("bot must be an adapter id or null", data={"field": "bot"})
    await adapter_api(request).queries.set_inbox_bot(inbox_id, bot)


routes = [
    Route("/api/v1/adapters", spec(list_adapters, response=S.items(S.ADAPTER)), methods=["GET"]),
    Route(
        "/api/v1/adapters",
        spec(create_adapter, request=S.NEW_ADAPTER, response=S.CREATED_ADAPTER, status=201),
        methods=["POST"],
    ),
    Route("/api/v1/adapters/{adapter_id}", spec(revoke_adapter, response=S.ADAPTER), methods=["DELETE"]),
    Route(
        INJECT_PATH, spec(inject_message, request=S.INJECT, response=S.INJECTED, status=201), methods=["POST"]
    ),
    Route(
        "/api/v1/adapter/statuses",
        spec(report_status, request=S.STATUS_REPORT, response=S.STATUS_RESULT),
        methods=["POST"],
    ),
]
