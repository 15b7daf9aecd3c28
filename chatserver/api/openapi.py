"""The OpenAPI document, generated from the route table so it cannot drift from it, and :func:`spec`,
which attaches an endpoint's request and response schemas (shared fragments: :mod:`chatserver.api.
schemas`, :mod:`chatserver.api.ticket_schemas`).

``spec(fn, request=..., response=..., status=201, query={...}, content="text/plain")`` on the endpoint
a route calls; ``response=None`` for an answer without a body (``204``); ``content`` for an answer that
is not JSON (a file). An endpoint serving several methods takes ``spec(fn, GET={...}, POST={...})``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.routing import BaseRoute, Route

from chatserver import __version__

F = TypeVar("F", bound=Callable[..., Any])

ERROR = {
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
    "required": ["error"],
}
BINARY = {"type": "string", "format": "binary"}


def spec(fn: F, **openapi: Any) -> F:
    """Attach request/response schemas for the OpenAPI document (read by :func:`build_openapi`)."""
    setattr(fn, "openapi", openapi)  # noqa: B010 - an attribute on a function
    return fn


def _apply(op: dict[str, Any], found: Any, method: str) -> None:
    if not isinstance(found, dict):
        return
    found = found.get(method, found)
    if found.get("raw_request"):  # an upload: the file itself is the body
        op["requestBody"] = {"required": True, "content": {"*/*": {"schema": BINARY}}}
    if "request" in found:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": found["request"]}},
        }
    if "response" in found:
        status = str(found.get("status", 200))
        op["responses"].pop("200", None)
        schema = found["response"]
        if schema is None:
            op["responses"][status] = {"description": "No content"}
        else:
            media = found.get("content", "application/json")
            op["responses"][status] = {
                "description": "OK",
                "content": {media: {"schema": BINARY if media != "application/json" else schema}},
            }
    for name, schema in found.get("query", {}).items():
        op["parameters"].append({"name": name, "in": "query", "required": False, "schema": schema})


def build_openapi(routes: list[BaseRoute]) -> dict[str, Any]:
    """The document: every route under ``/api/`` (and the health checks), each method an operation."""
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
                    "default": {"description": "Error", "content": {"application/json": {"schema": ERROR}}},
                },
            }
            if method in ("POST", "PATCH", "PUT"):
                op["requestBody"] = {"content": {"application/json": {"schema": {"type": "object"}}}}
            _apply(op, getattr(route.endpoint, "openapi", None), method)
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


__all__ = ["BINARY", "ERROR", "build_openapi", "spec"]
