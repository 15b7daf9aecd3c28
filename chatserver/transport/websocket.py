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
- a sender with several frames queued can *cork* the connection (:data:`CORK`, in the scope's
  ``extensions``): its data frames are then written with one ``transport.write`` (one ``send()``
  system call) when it uncorks, instead of one each; the write syscalls were a fifth of the server's CPU
  under load. Nothing is held past the current turn of the event loop, or past 64 KiB;
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
from websockets.exceptions import InvalidState
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


CORK = "chatserver.cork"
"""The scope extension holding ``(cork, uncork)`` for the connection (absent under other servers)."""

CORK_LIMIT = 64 * 1024
"""Corked bytes past which they are written at once."""


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O protocol with a smaller per-connection footprint (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = ReceiveQueue()  # type: ignore[assignment]
        self.writable = WritableFlag()  # type: ignore[assignment]
        self._corked: list[bytes] | None = None
        self._corked_bytes = 0

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        # the scope has its own copy of the headers and the response is prepared: websockets' parser
        # keeps ``event`` alive for the connection's life, so empty what it holds
        event.headers.clear()
        self.request = None  # type: ignore[assignment]
        self.scope["extensions"][CORK] = {"cork": self.cork, "uncork": self.uncork}

    def connection_lost(self, exc: Exception | None) -> None:
        self._corked = None
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"].pop(CORK, None)  # no cycle left behind
        super().connection_lost(exc)

    def cork(self) -> None:
        """Hold data frames until :meth:`uncork`, or the next turn of the event loop at the latest."""
        if self._corked is None:
            self._corked, self._corked_bytes = [], 0
            self.loop.call_soon(self.uncork)

    def uncork(self) -> None:
        """Write what is held, in one ``write``."""
        held, self._corked = self._corked, None
        if held and not self.transport.is_closing():
            self.transport.write(b"".join(held))

    def _hold(self, message: ASGISendEvent, held: list[bytes]) -> bool:
        """Queue a data frame while corked, as ``send`` would write it; False when it must go the
        ordinary way (not a data frame, a paused transport, a closing or unfinished handshake)."""
        if (
            message["type"] != "websocket.send"
            or not self.handshake_complete
            or self.initial_response is not None
            or self.close_sent
            or self.disconnected
            or not self.writable.is_set()
        ):
            return False
        data, text = message.get("bytes"), message.get("text")
        try:
            if data is not None:
                self.conn.send_binary(data)
            elif text is not None:
                self.conn.send_text(text.encode())
        except InvalidState:
            raise ClientDisconnected from None
        for chunk in self.conn.data_to_send():
            held.append(chunk)
            self._corked_bytes += len(chunk)
        if self._corked_bytes > CORK_LIMIT:
            self.uncork()
            self.cork()
        return True

    async def send(self, message: ASGISendEvent) -> None:
        held = self._corked
        if held is not None:
            if self._hold(message, held):
                return
            self.uncork()  # anything else goes out after what was held
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
