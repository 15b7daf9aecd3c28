"""Outgoing webhooks (admins): ``POST/GET /api/v1/webhooks``, ``DELETE /api/v1/webhooks/{id}``,
``GET /api/v1/webhooks/{id}/deliveries``, ``POST /api/v1/webhooks/{id}/deliveries/{delivery_id}/resend``."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chatserver.api import schemas as S
from chatserver.api.common import (
    api,
    body,
    ctx,
    current_agent,
    json_response,
    limit_param,
    req_str,
    str_field,
)
from chatserver.api.openapi import spec
from chatserver.errors import Invalid, Unavailable
from chatserver.model.types import Role
from chatserver.webhooks.service import WebhookService
from chatserver.webhooks.ssrf import check_url
from chatserver.webhooks.store import EVENTS, Webhook


def webhook_service(request: Request) -> WebhookService:
    found = ctx(request).webhooks
    if found is None:
        raise Unavailable("webhooks are not running")
    return found


def parse_events(raw: Any) -> list[str]:
    if not isinstance(raw, list) or not raw or not all(isinstance(e, str) for e in raw):
        raise Invalid("events must be a non-empty list of event types", data={"field": "events"})
    unknown = [e for e in raw if e not in EVENTS]
    if unknown:
        raise Invalid(
            f"unknown event {unknown[0][:64]!r}; known: {', '.join(EVENTS)}", data={"field": "events"}
        )
    return sorted(set(raw))


async def create_webhook(
    service: WebhookService, url: str, events: Sequence[str], secret: str | None, *, allow_private: bool
) -> Webhook:
    await check_url(url, allow_private=allow_private)  # Invalid (422) before anything is stored
    if secret is not None and len(secret) < 16:
        raise Invalid("secret must be at least 16 characters", data={"field": "secret"})
    hook = await service.queries.create(url, parse_events(list(events)), secret or secrets.token_urlsafe(32))
    await service.reload()  # this process's next change sees it
    return hook


@api
async def create(request: Request) -> Response:
    await current_agent(request, role=Role.ADMIN)
    data = await body(request)
    c = ctx(request)
    hook = await create_webhook(
        webhook_service(request),
        req_str(data, "url", max_len=2000),
        parse_events(data.get("events")),
        str_field(data, "secret", required=False),
        allow_private=c.settings.webhook_allow_private,
    )
    wire = hook.to_wire()
    wire["secret"] = hook.secret  # shown once
    return json_response(wire, status=201)


@api
async def list_webhooks(request: Request) -> Response:
    await current_agent(request, role=Role.ADMIN)
    return json_response({"items": [h.to_wire() for h in await webhook_service(request).queries.all()]})


@api
async def delete(request: Request) -> Response:
    await current_agent(request, role=Role.ADMIN)
    service = webhook_service(request)
    await service.queries.delete(request.path_params["webhook_id"])
    await service.reload()  # this process's next change sees it
    return Response(status_code=204)


def _delivery_wire(d: Any) -> dict[str, Any]:
    wire: dict[str, Any] = d.to_wire()
    event = d.payload.get("event") or {}
    wire.update(event_id=event.get("id"), type=event.get("type"), next_attempt_at=d.next_attempt_at)
    return wire


@api
async def deliveries(request: Request) -> Response:
    await current_agent(request, role=Role.ADMIN)
    service = webhook_service(request)
    hook = await service.queries.get(request.path_params["webhook_id"])
    found = await service.queries.deliveries(hook.id, limit=limit_param(request, default=50))
    return json_response({"items": [_delivery_wire(d) for d in found]})


@api
async def resend(request: Request) -> Response:
    await current_agent(request, role=Role.ADMIN)
    c = ctx(request)
    service = webhook_service(request)
    hook = await service.queries.get(request.path_params["webhook_id"])
    d = await service.queries.resend(hook.id, request.path_params["delivery_id"])
    if c.outbox_worker is not None:
        c.outbox_worker.wake()
    return json_response(_delivery_wire(d), status=202)


routes = [
    Route(
        "/api/v1/webhooks",
        spec(create, request=S.NEW_WEBHOOK, response=S.CREATED_WEBHOOK, status=201),
        methods=["POST"],
    ),
    Route("/api/v1/webhooks", spec(list_webhooks, response=S.items(S.WEBHOOK)), methods=["GET"]),
    Route("/api/v1/webhooks/{webhook_id}", spec(delete, **S.NO_CONTENT), methods=["DELETE"]),
    Route(
        "/api/v1/webhooks/{webhook_id}/deliveries",
        spec(deliveries, response=S.items(S.WEBHOOK_DELIVERY), query={"limit": S.INT}),
        methods=["GET"],
    ),
    Route(
        "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/resend",
        spec(resend, response=S.WEBHOOK_DELIVERY, status=202),
        methods=["POST"],
    ),
]
