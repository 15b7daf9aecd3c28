"""The HTTP transport against a real server: body limits, read deadlines, WebSocket caps and handshake
deadline, the token subprotocol, JSON errors for unknown routes, quiet client disconnects."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import pytest
from websockets.asyncio.client import connect
from websockets.typing import Origin, Subprotocol

from tests.e2e.harness import (
    ORIGIN,
    Client,
    Seed,
    Server,
    ServerProcess,
    run_server,
    seed,
    settings_for,
    visitor_token,
)

MIB = 1024 * 1024


async def _raw(server_url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = server_url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """Everything the server sent until it closed the connection (fails if it stays open)."""
    got = b""
    async with asyncio.timeout(seconds):
        while chunk := await reader.read(65536):
            got += chunk
    return got


async def _read_until_reset(reader: asyncio.StreamReader) -> bytes:
    got = b""
    with contextlib.suppress(ConnectionError):
        async with asyncio.timeout(20):
            while chunk := await reader.read(65536):
                got += chunk
    return got


# -- body limits: a real server process, its memory measured ----------------------------------------------


@pytest.fixture
def limited_server(tmp_path: Path) -> Iterator[ServerProcess]:
    env = {"CHATSERVER_DATA_DIR": str(tmp_path / "data"), "CHATSERVER_ADMIN_PASSWORD": "admin-pass-1"}
    p = ServerProcess(env=env, log=tmp_path / "server.log")
    p.start()
    try:
        yield p
    finally:
        p.stop()


def _rss(p: ServerProcess) -> int:
    assert p.proc is not None
    return int(psutil.Process(p.proc.pid).memory_info().rss)


HEAD = (
    "POST /api/v1/widget/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    "Origin: " + ORIGIN + "\r\n"
)


async def _send_until_refused(writer: asyncio.StreamWriter, total: int, chunked: bool) -> int:
    """Write up to ``total`` body bytes; the number written before the server closed the connection."""
    piece = b"x" * (256 * 1024)
    sent = 0
    try:
        while sent < total:
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            await writer.drain()
            sent += len(piece)
        if chunked:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    return sent


@pytest.mark.slow
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_64_mib_body_is_refused_without_being_read(
    limited_server: ServerProcess, chunked: bool
) -> None:
    async with httpx.AsyncClient() as http:  # warm the process up, so its RSS is settled
        for _ in range(20):
            await http.post(f"{limited_server.url}/api/v1/widget/sessions", json={"inbox_key": "nope"})
    before = _rss(limited_server)
    reader, writer = await _raw(limited_server.url)
    if chunked:
        writer.write((HEAD + "Transfer-Encoding: chunked\r\n\r\n").encode())
        answering = asyncio.create_task(_read_until_reset(reader))  # the 413 comes while we still send
        await _send_until_refused(writer, 64 * MIB, chunked=True)
        answer = await answering
    else:
        writer.write((HEAD + f"Content-Length: {64 * MIB}\r\n\r\n").encode())
        await writer.drain()
        answer = await _closed_within(reader, 10)  # answered and closed before a byte of the body
        await _send_until_refused(writer, 64 * MIB, chunked=False)
    writer.close()
    after = _rss(limited_server)
    # the answer arrives whole although the body was still coming: the server half-closes and discards the
    # rest for a while (lingering close) instead of closing with unread data, which would reset the
    # connection and could destroy the answer in flight
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"code":"too_large"' in answer
    assert after - before < 16 * MIB, f"RSS grew by {(after - before) / MIB:.1f} MiB"
    async with httpx.AsyncClient() as http:  # the server is fine
        assert (await http.get(f"{limited_server.url}/healthz")).status_code == 200


# -- read deadlines -------------------------------------------------------------------------------------


@pytest.fixture
def server_overrides() -> dict[str, Any]:
    return {"header_timeout_s": 1.0, "body_timeout_s": 1.0, "ws_per_token": 3, "ws_per_address": 8}


async def test_an_idle_socket_is_closed_after_the_header_deadline(server: Server) -> None:
    reader, writer = await _raw(server.url)
    started = time.monotonic()
    assert await _closed_within(reader, 6) == b""
    assert time.monotonic() - started >= 0.9  # closed by the deadline, not at once
    writer.close()


async def test_half_sent_headers_are_closed_after_the_header_deadline(server: Server) -> None:
    reader, writer = await _raw(server.url)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    await writer.drain()
    assert await _closed_within(reader, 6) == b""
    writer.close()


async def test_a_websocket_upgrade_with_half_its_headers_is_closed(server: Server) -> None:
    reader, writer = await _raw(server.url)
    writer.write(b"GET /ws/visitor HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
    await writer.drain()
    assert await _closed_within(reader, 6) == b""
    writer.close()


async def test_a_request_finished_within_the_deadline_is_served(server: Server) -> None:
    reader, writer = await _raw(server.url)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    await writer.drain()
    await asyncio.sleep(0.3)
    writer.write(b"Connection: close\r\n\r\n")
    await writer.drain()
    assert (await _closed_within(reader, 6)).startswith(b"HTTP/1.1 200")
    writer.close()


async def test_a_stalled_body_is_closed_after_the_body_deadline(server: Server) -> None:
    reader, writer = await _raw(server.url)
    writer.write((HEAD + "Content-Length: 100\r\n\r\n" + '{"inbox_key": ').encode())
    await writer.drain()
    assert await _closed_within(reader, 6) == b""
    writer.close()


# -- WebSocket caps ---------------------------------------------------------------------------------------


async def test_one_token_beyond_its_cap_is_refused_with_4429(
    server: Server, http: httpx.AsyncClient, seeded: Seed
) -> None:
    tok = (await visitor_token(http, server.url, seeded.inbox_key))["token"]
    url = f"{server.ws}/ws/visitor?token={tok}"
    async with Client.connect(url) as a, Client.connect(url) as b, Client.connect(url) as c:
        for v in (a, b, c):
            await v.expect("hello")
        async with Client.connect(url) as extra:
            assert await extra.closed_with() == 4429
        other = (await visitor_token(http, server.url, seeded.inbox_key))["token"]
        async with Client.connect(f"{server.ws}/ws/visitor?token={other}") as v:  # other tokens are fine
            await v.expect("hello")
    async with Client.connect(url) as again:  # the slots were given back
        await again.expect("hello")


async def test_one_address_beyond_its_cap_is_refused_with_4429(
    server: Server, http: httpx.AsyncClient, seeded: Seed, caplog: pytest.LogCaptureFixture
) -> None:
    tokens = [(await visitor_token(http, server.url, seeded.inbox_key))["token"] for _ in range(3)]
    uvicorn_log = logging.getLogger("uvicorn.error")  # uvicorn's loggers do not propagate to the root
    uvicorn_log.addHandler(caplog.handler)
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(uvicorn_log.removeHandler, caplog.handler)
        for i in range(8):
            v = await stack.enter_async_context(
                Client.connect(f"{server.ws}/ws/visitor?token={tokens[i % 3]}")
                if i < 6
                else Client.connect(f"{server.ws}/ws/agent", token=seeded.agent_token, origin=None)
            )
            await v.expect("hello")
        async with Client.connect(f"{server.ws}/ws/agent", token=seeded.admin_token, origin=None) as extra:
            assert await extra.closed_with() == 4429
    # the refusal is a close code, not an exception in the application ("generator didn't yield")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


# -- the token subprotocol ----------------------------------------------------------------------------------


async def test_tokens_in_the_subprotocol_are_accepted_and_answered_with_the_protocol_name(
    server: Server, http: httpx.AsyncClient, seeded: Seed
) -> None:
    tok = (await visitor_token(http, server.url, seeded.inbox_key))["token"]
    async with connect(
        f"{server.ws}/ws/visitor",
        origin=Origin(ORIGIN),
        subprotocols=[Subprotocol("chatserver.v1"), Subprotocol(f"token.{tok}")],
    ) as ws:
        assert ws.subprotocol == "chatserver.v1"
        assert '"hello"' in str(await ws.recv())
    async with connect(
        f"{server.ws}/ws/agent",
        subprotocols=[Subprotocol("chatserver.v1"), Subprotocol(f"token.{seeded.agent_token}")],
    ) as ws:
        assert ws.subprotocol == "chatserver.v1"
        assert '"hello"' in str(await ws.recv())
    async with Client.connect(
        f"{server.ws}/ws/visitor",
        subprotocols=[Subprotocol("chatserver.v1"), Subprotocol("token.forged.x")],
    ) as bad:
        assert await bad.closed_with() == 4401


# -- the handshake deadline: authentication stuck behind a lock in PostgreSQL -------------------------------


@pytest.mark.postgres
async def test_a_handshake_stuck_in_authentication_is_closed_at_its_deadline(
    pg_url: str, tmp_path: Path
) -> None:
    s = await seed(pg_url)
    settings = settings_for(pg_url, tmp_path, ws_handshake_timeout_s=1.0)
    conn = await asyncpg.connect(pg_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        async with run_server(settings) as server:
            tx = conn.transaction()
            await tx.start()
            await conn.execute("LOCK TABLE api_tokens IN ACCESS EXCLUSIVE MODE")
            try:
                async with Client.connect(f"{server.ws}/ws/agent", token=s.agent_token, origin=None) as a:
                    assert await a.closed_with(timeout=8) == 1013
            finally:
                await tx.rollback()
            async with Client.connect(f"{server.ws}/ws/agent", token=s.agent_token, origin=None) as a:
                await a.expect("hello")
    finally:
        await conn.close()


# -- every API error is JSON --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/api/v1/nope", 404, "not_found"),
        ("POST", "/api/v1/nope/deeper", 404, "not_found"),
        ("DELETE", "/api/v1/conversations", 405, "method_not_allowed"),
        ("PUT", "/api/v1/auth/login", 405, "method_not_allowed"),
        ("GET", "/console/no-such-file.js", 404, "not_found"),
    ],
)
async def test_unknown_routes_and_methods_answer_json_errors(
    server: Server, http: httpx.AsyncClient, method: str, path: str, status: int, code: str
) -> None:
    r = await http.request(method, server.url + path)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"]["code"] == code
    assert r.json()["error"]["message"]
    if status == 405:
        assert r.headers["allow"]


async def test_delete_on_a_collection_names_the_allowed_methods(
    server: Server, http: httpx.AsyncClient
) -> None:
    r = await http.delete(server.url + "/api/v1/conversations")
    assert set(r.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}


async def test_a_client_leaving_mid_body_is_logged_at_debug_without_a_traceback(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _, writer = await _raw(server.url)
    writer.write((HEAD + "Content-Length: 1000\r\n\r\n" + '{"inbox_key": "').encode())
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.close()
    for _ in range(100):  # the server notices the disconnect on its own schedule
        if any("client disconnected" in r.getMessage() for r in caplog.records):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    hit = next(r for r in caplog.records if "client disconnected" in r.getMessage())
    assert hit.levelno == logging.DEBUG and hit.exc_info is None
