"""A pure ASGI middleware that bounds request bodies on every HTTP route, before any parsing.

- A ``Content-Length`` over the route's limit is refused with 413 at once: the body is never read.
- A body without a length (``Transfer-Encoding: chunked``) is counted as it arrives; past the limit the
  middleware answers 413, the app sees ``http.disconnect`` (so it stops reading), and anything the app
  still sends is dropped.

Either way the 413 carries ``Connection: close``: nothing more of the body is parsed or kept. The HTTP
protocol (transport/deadlines.py) then half-closes and discards what the client still sends for up to 2 s
before closing, so the client reads the 413 instead of a connection reset. The limit that applies is put
in the scope under ``SCOPE_KEY`` for endpoints that want to mention it.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SCOPE_KEY = "chatserver.body_limit"


def limit_for(path: str, default: int, overrides: Mapping[str, int]) -> int:
    """The limit of the longest override prefix matching ``path``, else ``default``."""
    best = ""
    for prefix in overrides:
        if path.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    return overrides[best] if best else default


def declared_length(scope: Scope) -> int | None:
    """The request's Content-Length, None when absent; -1 when it is not a number."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return -1
    return None


def _response(status: int, code: str, message: str) -> tuple[Message, Message]:
    body = orjson.dumps({"error": {"code": code, "message": message}})
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    }
    return start, {"type": "http.response.body", "body": body, "more_body": False}


class BodyLimit:
    def __init__(self, app: ASGIApp, *, default: int, overrides: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.default = default
        self.overrides = dict(overrides or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope["path"], self.default, self.overrides)
        scope[SCOPE_KEY] = limit
        declared = declared_length(scope)
        if declared is not None and declared < 0:
            for message in _response(400, "bad_frame", "Content-Length is not a number"):
                await send(message)
            return
        if declared is not None and declared > limit:
            for message in _response(413, "too_large", f"request body over {limit} bytes"):
                await send(message)
            return
        received = 0
        refused = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if not started:
                        for out in _response(413, "too_large", f"request body over {limit} bytes"):
                            await send(out)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)


__all__ = ["SCOPE_KEY", "BodyLimit", "declared_length", "limit_for"]
