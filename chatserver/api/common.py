"""Helpers shared by the REST endpoints: JSON bodies, errors, the calling agent, pagination."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from chatserver.auth.identity import authenticate_agent
from chatserver.context import Context
from chatserver.errors import ApiError, BadFrame, Forbidden, Invalid, TooLarge, api_error
from chatserver.model.levels import parse_levels
from chatserver.model.types import Agent, Role
from chatserver.transport.body import SCOPE_KEY as BODY_LIMIT_KEY

MAX_BODY = 256 * 1024
Endpoint = Callable[[Request], Awaitable[Response]]


def ctx(request: Request) -> Context:
    c: Context = request.app.state.ctx
    return c


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json", headers=headers)


def error_response(exc: ApiError) -> Response:
    return json_response({"error": exc.to_json()}, status=exc.status)


async def body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    limit = int(request.scope.get(BODY_LIMIT_KEY, MAX_BODY))  # transport.body enforces it while reading
    if len(raw) > limit:
        raise TooLarge(f"request body over {limit} bytes")
    if not raw:
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadFrame("request body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise BadFrame("request body must be a JSON object")
    return data


async def current_agent(request: Request, *, role: Role | None = None) -> Agent:
    c = ctx(request)
    agent = await authenticate_agent(request, c.store, c.settings, method=request.method)
    if role is Role.ADMIN and agent.role is not Role.ADMIN:
        raise Forbidden("admins only")
    if role is Role.SUPERVISOR and not agent.role.supervises:
        raise Forbidden("supervisors and admins only")
    return agent


def limit_param(request: Request, default: int = 50, maximum: int = 200) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise Invalid("limit must be an integer", data={"field": "limit"}) from exc
    if not 1 <= value <= maximum:
        raise Invalid(f"limit must be between 1 and {maximum}", data={"field": "limit"})
    return value


def int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError as exc:
        raise Invalid(f"{name} must be an integer", data={"field": name}) from exc
    if value < 0:
        raise Invalid(f"{name} must be >= 0", data={"field": name})
    return value


def api(fn: Endpoint) -> Endpoint:
    """Turn what an endpoint raises into a JSON error response (:func:`~chatserver.errors.api_error`)."""

    async def wrapper(request: Request) -> Response:
        try:
            return await fn(request)
        except ClientDisconnect:
            raise  # nobody to answer; the app's handler logs it at debug (api/http_errors.py)
        except Exception as exc:
            return error_response(api_error(exc, context=f"{request.method} {request.url.path}"))

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def str_field(data: dict[str, Any], name: str, *, required: bool = True, max_len: int = 200) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise Invalid(f"{name} is required", data={"field": name})
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise Invalid(
            f"{name} must be a non-empty string of at most {max_len} characters", data={"field": name}
        )
    return value.strip()


def req_str(data: dict[str, Any], name: str, *, max_len: int = 200) -> str:
    value = str_field(data, name, required=True, max_len=max_len)
    assert value is not None
    return value


def levels(raw: Any, field: str) -> dict[str, int] | None:
    """A ``{name: level 1-5}`` map (skills, languages); None when absent (see model/levels.py)."""
    return parse_levels(raw, field)
