"""Liveness, readiness and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chatserver import __version__
from chatserver.api import schemas as S
from chatserver.api.common import ctx, json_response
from chatserver.api.openapi import build_openapi, spec


async def healthz(request: Request) -> Response:
    """The process is alive."""
    return json_response({"ok": True, "version": __version__})


async def readyz(request: Request) -> Response:
    """The database and the bus answer; 503 otherwise (take the process out of the load balancer)."""
    c = ctx(request)
    checks: dict[str, str] = {}
    try:
        await c.store.db.ping()
        checks["database"] = "ok"
    except Exception as exc:  # readiness reports, never raises
        checks["database"] = f"failed: {type(exc).__name__}"
    try:
        await c.bus.ping()
        checks["bus"] = "ok"
    except Exception as exc:
        checks["bus"] = f"failed: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return json_response({"ok": ok, "checks": checks, "hub": c.hub.stats()}, status=200 if ok else 503)


async def openapi(request: Request) -> Response:
    return json_response(build_openapi(request.app.routes))


async def metrics(request: Request) -> Response:
    """Counters for operators: message writer, hub, bus, translation. Supervisors and admins."""
    from dataclasses import asdict

    from chatserver.api.common import current_agent, error_response
    from chatserver.errors import ApiError
    from chatserver.model.types import Role

    c = ctx(request)
    try:
        await current_agent(request, role=Role.SUPERVISOR)
    except ApiError as exc:
        return error_response(exc)
    writer = c.store.writer
    body: dict[str, Any] = {
        "messages": {"committed": writer.committed, "batches": writer.batches},
        "hub": c.hub.stats(),
        "bus": {
            "shared": c.bus.shared,
            "reconnects": getattr(c.bus, "reconnects", 0),
            "publish_failures": getattr(c.bus, "publish_failures", 0),
            "dropped_events": c.service.dropped_events,
            "queued_events": c.service.publisher.queued,
        },
    }
    delivery = c.service.translation
    if delivery is not None and delivery.translator is not None:
        body["translation"] = {
            **asdict(delivery.translator.metrics()),
            "pending_retries": delivery.pending_retries,
        }
    return json_response(body)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/api/v1/openapi.json", spec(openapi, response=S.OPENAPI), methods=["GET"]),
    Route("/api/v1/metrics", spec(metrics, response=S.METRICS), methods=["GET"]),
]
