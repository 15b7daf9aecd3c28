"""What the app answers when no endpoint does: unknown paths and methods, and Starlette's own HTTP
errors, all in the API's JSON error shape; and a client that went away in the middle of its request."""

from __future__ import annotations

import logging
from http import HTTPStatus

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from chatserver.api.common import error_response
from chatserver.errors import (
    ApiError,
    BadFrame,
    Forbidden,
    Internal,
    Invalid,
    MethodNotAllowed,
    NotFound,
    RateLimited,
    TooLarge,
    Unauthorized,
    Unavailable,
)

log = logging.getLogger(__name__)

_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadFrame,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    413: TooLarge,
    422: Invalid,
    429: RateLimited,
    503: Unavailable,
}

_MESSAGES = {404: "no such endpoint", 405: "method not allowed here"}


def as_api_error(exc: HTTPException) -> ApiError:
    """The ApiError for one of Starlette's HTTP errors (the closest code for its status)."""
    cls = _BY_STATUS.get(exc.status_code, Invalid if exc.status_code < 500 else Internal)
    detail = exc.detail if exc.detail and exc.detail != _default_phrase(exc.status_code) else None
    return cls(detail or _MESSAGES.get(exc.status_code) or cls.code.replace("_", " "))


def _default_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


async def http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    api_error = as_api_error(exc)
    response = error_response(api_error)
    response.status_code = exc.status_code
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def client_disconnect(request: Request, exc: Exception) -> Response:
    """The client left while sending its body: nothing to answer and nothing to alarm anyone about."""
    log.debug("client disconnected during %s %s", request.method, request.url.path)
    return Response(status_code=400)


handlers = {HTTPException: http_exception, ClientDisconnect: client_disconnect}

__all__ = ["as_api_error", "client_disconnect", "handlers", "http_exception"]
