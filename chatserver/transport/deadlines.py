"""Read deadlines on HTTP connections, at the protocol level (uvicorn's own timeouts stop at keep-alive).

uvicorn's httptools protocol only times out an idle keep-alive connection *after* a response. A socket
that connects and sends nothing, or sends half a request head, or stops in the middle of a body, is held
forever. :class:`DeadlineHttpProtocol` adds, per connection:

- a header deadline, armed when the connection is made and whenever a new request begins, cleared
  when the request head is complete (``header_timeout_s``);
- a body deadline, the longest pause allowed between two pieces of a request body (``body_timeout_s``);
  it does not run while the server itself has paused reading (the app is slow to consume).

When one passes, the transport is aborted (no response: the client never finished its request). A
WebSocket upgrade clears both before the connection is handed to the WebSocket protocol.

It also closes gracefully when a response ends the connection before its request's body was read (a 413
for a body over the limit, say). Closing a socket with unread data in it makes the kernel send a reset,
and a reset can destroy the response in flight: the client sees "connection reset" instead of the 413.
So the server half-closes (FIN after the response), reads and discards what the client still sends for
up to :data:`LINGER_S`, and closes when the client does (EOF) or the time is up (as nginx's lingering close).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)

LINGER_S = 2.0
"""How long a connection closed before its request body was read goes on reading (and discarding)."""


class _CycleTransport:
    """The transport as a request's response cycle sees it: its ``close`` (after a response that ends
    the connection) goes through the protocol, which lingers when the request body is unread."""

    __slots__ = ("_protocol", "_transport")

    def __init__(self, protocol: DeadlineHttpProtocol, transport: asyncio.Transport) -> None:
        self._protocol = protocol
        self._transport = transport

    def close(self) -> None:
        self._protocol._close_after_response()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class DeadlineHttpProtocol(HttpToolsProtocol):
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._in_body = False  # a request head was read, its body not yet to the end
        self._linger_timer: asyncio.TimerHandle | None = None  # set while lingering

    # -- timers --------------------------------------------------------------------------------------
    def _arm_header(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._expired, "header")

    def _arm_body(self) -> None:
        self._cancel_body()
        self._body_timer = self.loop.call_later(self.body_timeout_s, self._body_expired)

    def _cancel_header(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _cancel_body(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_expired(self) -> None:
        self._body_timer = None
        if self.flow is not None and self.flow.read_paused:
            self._arm_body()  # we stopped reading, not the client: wait for the app
            return
        self._expired("body")

    def _expired(self, what: str) -> None:
        if what == "header":
            self._header_timer = None
        if self.transport is not None and not self.transport.is_closing():
            log.debug("closing %s: %s read timed out", self.client, what)
            self.transport.abort()

    # -- lingering close -----------------------------------------------------------------------------
    def _close_after_response(self) -> None:
        transport = self.transport
        if not self._in_body or transport.is_closing() or not transport.can_write_eof():
            transport.close()
            return
        self._cancel_header()
        self._cancel_body()
        transport.write_eof()  # after the response: the client reads it to the end, then EOF
        if self.flow is not None:
            self.flow.resume_reading()
        self._linger_timer = self.loop.call_later(LINGER_S, transport.close)

    def data_received(self, data: bytes) -> None:
        if self._linger_timer is not None:
            return  # the rest of a body nobody will read
        super().data_received(data)

    # -- protocol events -----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header()
        self._cancel_body()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header()

    def on_headers_complete(self) -> None:
        self._cancel_header()
        super().on_headers_complete()
        if not (self.parser.should_upgrade() and self._should_upgrade()):
            self._in_body = True
            self.cycle.transport = _CycleTransport(self, self.transport)  # type: ignore[assignment]
            self._arm_body()

    def on_body(self, body: bytes) -> None:
        if self._body_timer is not None:
            self._arm_body()
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_body = False
        self._cancel_body()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._cancel_header()
        self._cancel_body()
        super().handle_websocket_upgrade()


def deadline_protocol(header_timeout_s: float, body_timeout_s: float) -> type[DeadlineHttpProtocol]:
    """The protocol class for uvicorn's ``http=`` setting, with these deadlines."""
    return type(
        "DeadlineHttpProtocol",
        (DeadlineHttpProtocol,),
        {"header_timeout_s": header_timeout_s, "body_timeout_s": body_timeout_s},
    )


__all__ = ["DeadlineHttpProtocol", "deadline_protocol"]
