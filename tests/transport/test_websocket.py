"""LeanWebSocketProtocol on a real uvicorn server (port 0): frames both ways, what it keeps after the
handshake, an accept that comes after the client has gone, and corked frames."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedOK

from chatserver.transport.websocket import CORK, LeanWebSocketProtocol, ReceiveQueue, WritableFlag

HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"X-Padding: " + b"p" * 2000 + b"\r\n\r\n"
)


@contextlib.asynccontextmanager
async def _server(app: Any, ws: type[asyncio.Protocol]) -> AsyncIterator[tuple[uvicorn.Server, int]]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, ws=ws, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:  # noqa: ASYNC110 (uvicorn has no started event)
            await asyncio.sleep(0.01)
        yield server, server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await task


def _ws_protocol(server: uvicorn.Server) -> WebSocketsSansIOProtocol:
    found = [p for p in server.server_state.connections if isinstance(p, WebSocketsSansIOProtocol)]
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("protocol", [WebSocketsSansIOProtocol, LeanWebSocketProtocol])
async def test_an_accept_after_the_client_left_is_an_error_not_a_silent_no_op(
    protocol: type[WebSocketsSansIOProtocol],
) -> None:
    """The client's socket closes, and the app's ``accept`` runs before uvicorn has seen the connection
    lost (the same loop iteration, as under a reconnect storm). uvicorn's own protocol drops the accept
    and the app's next ``send`` fails with "Expected ASGI message 'websocket.accept' ... but got
    'websocket.send'"; the lean one raises ClientDisconnected from the accept itself."""
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[None] = loop.create_future()
    waiting: asyncio.Future[None] = loop.create_future()
    outcome: asyncio.Future[BaseException | None] = loop.create_future()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        waiting.set_result(None)
        await gate
        try:
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": "hello"})
        except BaseException as exc:
            outcome.set_result(exc)
            raise
        outcome.set_result(None)

    async with _server(app, protocol) as (server, port):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(HANDSHAKE)
        await waiting
        proto = _ws_protocol(server)
        # in this order in one callback: the app's wake-up is queued before the connection-lost callback
        gate.set_result(None)
        proto.transport.close()
        result = await outcome
        writer.close()
    if protocol is LeanWebSocketProtocol:
        assert isinstance(result, ClientDisconnected)
    else:  # the bug this protocol fixes, shown on uvicorn's own
        assert isinstance(result, RuntimeError)
        assert "Expected ASGI message 'websocket.accept'" in str(result)


async def test_frames_flow_both_ways_and_the_handshake_is_not_kept() -> None:
    seen: list[WebSocketsSansIOProtocol] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        assert any(name == b"x-padding" for name, _ in scope["headers"])  # the scope keeps its copy
        await send({"type": "websocket.accept"})
        while True:
            msg = await receive()
            if msg["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": msg["text"].upper()})

    async with _server(app, LeanWebSocketProtocol) as (server, port):
        ws = await connect(f"ws://127.0.0.1:{port}/ws", additional_headers={"X-Padding": "p" * 2000})
        try:
            for word in ("one", "two", "three"):
                await ws.send(word)
                assert await ws.recv() == word.upper()
            proto = _ws_protocol(server)
            seen.append(proto)
            assert proto.handshake_complete
            assert proto.request is None and proto.response is None
            assert isinstance(proto.queue, ReceiveQueue) and proto.queue.empty()
            assert proto.queue._items is None  # idle: no deque
        finally:
            await ws.close()
    assert seen


async def test_the_receive_queue_is_fifo_and_wakes_its_consumer() -> None:
    queue = ReceiveQueue()
    assert queue.empty() and queue.qsize() == 0
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert not getter.done()
    queue.put_nowait({"type": "websocket.receive", "text": "a"})
    queue.put_nowait({"type": "websocket.receive", "text": "b"})
    assert (await getter) == {"type": "websocket.receive", "text": "a"}
    assert queue.qsize() == 1
    assert (await queue.get()) == {"type": "websocket.receive", "text": "b"}
    assert queue.empty() and queue._items is None


async def test_a_cancelled_get_leaves_the_queue_usable() -> None:
    queue = ReceiveQueue()
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    getter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await getter
    queue.put_nowait({"type": "websocket.disconnect", "code": 1000})
    assert (await queue.get())["type"] == "websocket.disconnect"


async def test_writers_wait_while_the_transport_is_paused() -> None:
    flag = WritableFlag()
    await flag.wait()  # set: returns at once
    flag.clear()
    assert not flag.is_set()
    writers = [asyncio.create_task(flag.wait()) for _ in range(3)]
    cancelled = asyncio.create_task(flag.wait())
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    assert not any(w.done() for w in writers)
    flag.set()
    await asyncio.gather(*writers)
    assert flag.is_set() and flag._waiters is None


class _CountingTransport:
    """Wraps the connection's transport to count its ``write`` calls (the system calls saved)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.inner.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_corked_frames_go_out_in_one_write_in_order_and_then_the_close() -> None:
    counted: asyncio.Future[_CountingTransport] = asyncio.get_running_loop().create_future()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        await receive()  # the client's "go": its transport is wrapped by now
        cork = scope["extensions"][CORK]
        transport = await counted
        cork["cork"]()
        for i in range(50):
            await send({"type": "websocket.send", "text": f"frame {i}"})
        assert transport.writes == 0  # held
        cork["uncork"]()
        assert transport.writes == 1
        cork["cork"]()
        await send({"type": "websocket.send", "text": "last"})
        await send({"type": "websocket.close", "code": 1000})  # goes out after what was held

    async with _server(app, LeanWebSocketProtocol) as (server, port):
        ws = await connect(f"ws://127.0.0.1:{port}/ws")
        proto = _ws_protocol(server)
        wrapped = _CountingTransport(proto.transport)
        proto.transport = wrapped  # type: ignore[assignment]
        counted.set_result(wrapped)
        await ws.send("go")
        got = [await ws.recv() for _ in range(51)]
        assert got == [f"frame {i}" for i in range(50)] + ["last"]
        with pytest.raises(ConnectionClosedOK):
            await ws.recv()


async def test_nothing_corked_waits_past_the_current_turn_of_the_event_loop() -> None:
    """A sender that corks and then waits for something (a database read) before uncorking: what it
    held goes out anyway, or this client (which answers the frame) and the app would wait forever."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        scope["extensions"][CORK]["cork"]()
        await send({"type": "websocket.send", "text": "ping?"})
        answer = await receive()  # never uncorked explicitly
        await send({"type": "websocket.send", "text": "got " + answer["text"]})

    async with _server(app, LeanWebSocketProtocol) as (_, port):
        ws = await connect(f"ws://127.0.0.1:{port}/ws")
        try:
            assert await asyncio.wait_for(ws.recv(), 5) == "ping?"
            await ws.send("pong")
            assert await asyncio.wait_for(ws.recv(), 5) == "got pong"
        finally:
            await ws.close()


async def test_a_connection_gone_drops_what_was_corked_and_keeps_no_cycle() -> None:
    done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        assert (await receive())["type"] == "websocket.disconnect"
        done.set_result(scope["extensions"])

    async with _server(app, LeanWebSocketProtocol) as (_, port):
        async with connect(f"ws://127.0.0.1:{port}/ws"):
            pass
        extensions = await asyncio.wait_for(done, 5)
        for _ in range(200):  # the disconnect may reach the app before the connection is lost
            if CORK not in extensions:
                break
            await asyncio.sleep(0.01)
        assert CORK not in extensions
