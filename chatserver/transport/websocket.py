"""uvicorn's sans-I/O WebSocket protocol, leaner per connection, and strict about a refused accept.

Thousands of visitors sit idle on their sockets, so what one connection keeps alive matters (docs/
benchmarks.md, memory per idle connection). :class:`LeanWebSocketProtocol` is uvicorn's
``websockets-sansio`` protocol (same port as HTTP, same frames, same keepalive) with three changes:

- the receive queue is one lazily created deque and one wake-up future instead of an ``asyncio.Queue``
  (three deques), and "writable" is a flag with a future made only while the transport is paused instead
  of an ``asyncio.Event`` (a deque of waiters);
- the handshake request's headers and the prepared response are released once the handshake is over
  (websockets' parser keeps the request object for the connection's life; the ASGI scope holds its own
  copy of the headers);
- an ``accept`` that arrives when the client is already gone raises ``ClientDisconnected`` (an
  ``OSError``: Starlette turns it into ``WebSocketDisconnect``) instead of being dropped silently, which
  left the application believing it was connected and made its first ``send`` fail with "Expected ASGI
  message 'websocket.accept' ... but got 'websocket.send'".
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn._types import ASGIReceiveEvent, ASGISendEvent
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

from chatserver.lazyqueue import LazyQueue


class ReceiveQueue(LazyQueue[ASGIReceiveEvent]):
    """The subset of ``asyncio.Queue`` the protocol uses (``put_nowait``, ``get``, ``empty``), for one
    consumer (the ASGI task), unbounded as uvicorn's."""

    __slots__ = ()


class WritableFlag:
    """The subset of ``asyncio.Event`` the protocol uses for flow control (``set``, ``clear``, ``wait``,
    ``is_set``); a future exists only while a writer waits for a paused transport to drain."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = True
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> None:
        while not self._set:
            waiter = asyncio.get_running_loop().create_future()
            if self._waiters is None:
                self._waiters = []
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if self._waiters is not None and waiter in self._waiters:
                    self._waiters.remove(waiter)


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O protocol with a smaller per-connection footprint (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = ReceiveQueue()  # type: ignore[assignment]
        self.writable = WritableFlag()  # type: ignore[assignment]

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        # the scope has its own copy of the headers and the response is prepared: websockets' parser
        # keeps ``event`` alive for the connection's life, so empty what it holds
        event.headers.clear()
        self.request = None  # type: ignore[assignment]

    async def send(self, message: ASGISendEvent) -> None:
        if (
            message["type"] == "websocket.accept"
            and not self.handshake_complete
            and self.initial_response is None
            and self.transport.is_closing()
        ):
            raise ClientDisconnected  # the client left before the accept: uvicorn would drop it silently
        await super().send(message)
        if self.handshake_complete and getattr(self, "response", None) is not None:
            self.response = None  # type: ignore[assignment]


__all__ = ["LeanWebSocketProtocol", "ReceiveQueue", "WritableFlag"]
