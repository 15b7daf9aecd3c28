"""Liveness, readiness and the OpenAPI document."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from chatserver import __version__
from chatserver.api.common import ctx, json_response


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


_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "data": {"type": "object"},
            },
            "required": ["code", "message"],
        }
    },
}


def _apply_schemas(op: dict[str, Any], spec: Any, method: str) -> None:
    """An endpoint may carry ``openapi = {METHOD: {"request", "response", "status", "query"}}`` (or one
    spec for its only method): real request and response schemas instead of a bare object."""
    if not isinstance(spec, dict):
        return
    spec = spec.get(method, spec)
    if "request" in spec:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": spec["request"]}},
        }
    if "response" in spec:
        status = str(spec.get("status", 200))
        op["responses"].pop("200", None)
        op["responses"][status] = {
            "description": "OK",
            "content": {"application/json": {"schema": spec["response"]}},
        }
    for name, schema in spec.get("query", {}).items():
        op["parameters"].append({"name": name, "in": "query", "required": False, "schema": schema})


def build_openapi(routes: list[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI document, generated from the route table so it cannot drift from it."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not isinstance(route, Route) or not route.path.startswith(("/api/", "/healthz", "/readyz")):
            continue
        params = re.findall(r"{(\w+)}", route.path)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            doc = (route.endpoint.__doc__ or route.name.replace("_", " ")).strip()
            op: dict[str, Any] = {
                "operationId": f"{route.name}_{method.lower()}",
                "summary": doc.splitlines()[0],
                "description": doc,
                "parameters": [
                    {"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params
                ],
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "default": {"description": "Error", "content": {"application/json": {"schema": _ERROR}}},
                },
            }
            if method in ("POST", "PATCH", "PUT"):
                op["requestBody"] = {"content": {"application/json": {"schema": {"type": "object"}}}}
            _apply_schemas(op, getattr(route.endpoint, "openapi", None), method)
            paths.setdefault(route.path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "chatserver", "version": __version__},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "chatserver_session"},
            }
        },
    }


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
    Route("/api/v1/openapi.json", openapi, methods=["GET"]),
    Route("/api/v1/metrics", metrics, methods=["GET"]),
]
