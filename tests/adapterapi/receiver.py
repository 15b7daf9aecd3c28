"""A real HTTP receiver for webhook tests: asyncio streams, HTTP/1.1, one request per connection.

Paths choose the behaviour: ``/ok`` answers 204; ``/flaky`` answers 500 to the first two requests of
each event id, then 200; ``/hang`` never answers; ``/huge`` answers 200 with a 10 MB body. ``before``
(if set) is awaited with each request before it is answered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import orjson

HUGE = 10 * 1024 * 1024


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, object]:
        data: dict[str, object] = orjson.loads(self.body)
        return data


@dataclass
class Receiver:
    port: int = 0
    requests: list[Received] = field(default_factory=list)
    before: Callable[[Received], Awaitable[None]] | None = None
    _tries: Counter[str] = field(default_factory=Counter)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            _, path, _ = lines[0].split(" ", 2)
            headers = {
                k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            got = Received(path, headers, body)
            self.requests.append(got)
            self._arrived.set()
            if self.before is not None:
                await self.before(got)
            if path == "/hang":
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(60)
                return
            if path == "/flaky":
                key = str(got.event["id"])
                self._tries[key] += 1
                status, payload = (500, b"oops") if self._tries[key] <= 2 else (200, b"ok")
            elif path == "/huge":
                status, payload = 200, b"x" * HUGE
            else:
                status, payload = 204, b""
            reason = {200: "OK", 204: "No Content", 500: "Internal Server Error"}[status]
            status_line = (
                f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(status_line.encode())
            with contextlib.suppress(ConnectionError):
                writer.write(payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def wait_for(self, pred: Callable[[list[Received]], bool], timeout: float = 20.0) -> list[Received]:
        """The requests once ``pred(requests)`` holds."""
        async with asyncio.timeout(timeout):
            while not pred(self.requests):
                self._arrived.clear()
                await self._arrived.wait()
        return self.requests


@contextlib.asynccontextmanager
async def running_receiver(port: int = 0) -> AsyncIterator[Receiver]:
    """A receiver on ``port`` (0: any free one)."""
    receiver = Receiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", port)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        server.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await server.wait_closed()
