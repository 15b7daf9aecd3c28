"""BodyLimit, the ASGI middleware, driven by ASGI messages: what it answers, what the app gets to see."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import Message, Receive, Scope, Send

from chatserver.transport.body import SCOPE_KEY, BodyLimit, limit_for


class ReadingApp:
    """An app that reads the whole body, then answers 200 with its length."""

    def __init__(self) -> None:
        self.seen: list[Message] = []
        self.scope: Scope | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        size = 0
        while True:
            message = await receive()
            self.seen.append(message)
            if message["type"] == "http.disconnect":
                break
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})


def _scope(path: str = "/api/v1/x", headers: list[tuple[bytes, bytes]] | None = None) -> Scope:
    return {"type": "http", "method": "POST", "path": path, "headers": headers or []}


async def _run(mw: BodyLimit, scope: Scope, chunks: list[bytes]) -> tuple[list[Message], list[Message]]:
    """Feed ``chunks`` as the request body; return (what was sent to the client, what the app pulled)."""
    sent: list[Message] = []
    pulled: list[Message] = []
    queue = list(chunks)

    async def receive() -> Message:
        if not queue:
            raise AssertionError("read past the end of the body")
        body = queue.pop(0)
        message: Message = {"type": "http.request", "body": body, "more_body": bool(queue)}
        pulled.append(message)
        return message

    async def send(message: Message) -> None:
        sent.append(message)

    await mw(scope, receive, send)
    return sent, pulled


def _status(sent: list[Message]) -> int:
    return int(sent[0]["status"])


def _headers(sent: list[Message]) -> dict[bytes, bytes]:
    return dict(sent[0]["headers"])


async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    app = ReadingApp()
    sent, pulled = await _run(
        BodyLimit(app, default=1000), _scope(headers=[(b"content-length", b"67108864")]), [b"x" * 2000]
    )
    assert _status(sent) == 413
    assert _headers(sent)[b"connection"] == b"close"
    body: dict[str, Any] = orjson.loads(sent[1]["body"])
    assert body["error"]["code"] == "too_large"
    assert pulled == [] and app.scope is None  # neither the body nor the app were touched


async def test_a_chunked_body_is_cut_at_the_limit_and_the_app_sees_a_disconnect() -> None:
    app = ReadingApp()
    chunks = [b"x" * 400] * 100  # 40,000 bytes, no Content-Length
    sent, pulled = await _run(BodyLimit(app, default=1000), _scope(), chunks)
    assert _status(sent) == 413 and len(sent) == 2  # the app's own answer was dropped
    assert _headers(sent)[b"connection"] == b"close"
    assert len(pulled) == 3  # 1,200 bytes read: the limit plus one chunk, never the rest
    assert app.seen[-1] == {"type": "http.disconnect"}


async def test_a_body_within_the_limit_reaches_the_app_whole() -> None:
    app = ReadingApp()
    sent, _ = await _run(
        BodyLimit(app, default=1000), _scope(headers=[(b"content-length", b"1000")]), [b"x" * 500] * 2
    )
    assert _status(sent) == 200 and sent[1]["body"] == b"1000"
    assert app.scope is not None and app.scope[SCOPE_KEY] == 1000


async def test_a_route_override_allows_more_on_its_prefix_only() -> None:
    mw = BodyLimit(ReadingApp(), default=1000, overrides={"/api/v1/uploads": 5000})
    sent, _ = await _run(mw, _scope("/api/v1/uploads/x"), [b"x" * 1000] * 4)
    assert _status(sent) == 200
    sent, _ = await _run(mw, _scope("/api/v1/other"), [b"x" * 1000] * 4)
    assert _status(sent) == 413


async def test_a_length_that_is_not_a_number_is_a_bad_request() -> None:
    sent, pulled = await _run(
        BodyLimit(ReadingApp(), default=1000), _scope(headers=[(b"content-length", b"lots")]), [b""]
    )
    assert _status(sent) == 400 and pulled == []


async def test_websockets_and_lifespan_pass_through() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    async def never() -> Message:
        raise AssertionError

    async def drop(message: Message) -> None:
        raise AssertionError

    await BodyLimit(app, default=1)({"type": "websocket", "path": "/ws/visitor"}, never, drop)
    assert seen == ["websocket"]


def test_the_longest_matching_prefix_wins() -> None:
    overrides = {"/api": 10, "/api/v1/uploads": 20}
    assert limit_for("/api/v1/uploads/1", 5, overrides) == 20
    assert limit_for("/api/v1/agents", 5, overrides) == 10
    assert limit_for("/healthz", 5, overrides) == 5
