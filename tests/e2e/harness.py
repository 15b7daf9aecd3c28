"""Real servers and real WebSocket clients for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from chatserver.app import create_app
from chatserver.auth.secrets import API_TOKEN_PREFIX, hash_password, new_api_token, sha256_hex
from chatserver.model.types import Role
from chatserver.settings import Settings
from chatserver.store.db import Database, make_engine
from chatserver.store.migrate import upgrade
from chatserver.store.store import Store
from chatserver.transport.server import uvicorn_config

SECRET = "test-secret-" + "x" * 20
PASSWORD = "correct-horse-1"
ORIGIN = "https://shop.example"

ISSUED_SECRETS: set[str] = set()
"""Every credential the harness handed out in this run (API tokens, visitor tokens), and
SERVER_LOGS the log file of every server process it started: tests/e2e/conftest.py checks at the end of
the session that no log holds any of them."""
SERVER_LOGS: list[Path] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Seed:
    inbox_key: str
    inbox_id: str
    admin_email: str
    admin_token: str
    agent_email: str
    agent_token: str
    agent_id: str
    admin_id: str


async def seed(database_url: str) -> Seed:
    """Migrate and create an inbox, an admin and an agent with API tokens."""
    engine = make_engine(database_url, pool_size=2)
    await upgrade(engine)
    store = Store(Database(engine))
    try:
        inbox = await store.create_inbox("Web", "widget", [ORIGIN])
        suffix = uuid.uuid4().hex[:8]
        pw = hash_password(PASSWORD)
        admin = await store.create_agent(
            email=f"admin-{suffix}@x.test", name="Ada", role=Role.ADMIN, password_hash=pw
        )
        agent = await store.create_agent(
            email=f"agent-{suffix}@x.test", name="Bob", role=Role.AGENT, password_hash=pw
        )
        tokens = []
        for a in (admin, agent):
            tok = new_api_token()
            await store.create_api_token(a.id, sha256_hex(tok), "test")
            tokens.append(tok)
        ISSUED_SECRETS.update(tokens)
        return Seed(inbox.key, inbox.id, admin.email, tokens[0], agent.email, tokens[1], agent.id, admin.id)
    finally:
        await engine.dispose()


def settings_for(database_url: str, tmp: Path, **overrides: Any) -> Settings:
    base = Settings(
        data_dir=tmp,
        database_url=database_url,
        secret_key=SECRET,
        reconcile_interval_s=0.5,
        embedded=False,
        routing="manual",  # the routing tests turn offers on
    )
    return Settings(**{**base.__dict__, **overrides})


@dataclass
class Server:
    url: str
    settings: Settings
    app: Any = None

    @property
    def ws(self) -> str:
        return self.url.replace("http://", "ws://")


@contextlib.asynccontextmanager
async def run_server(settings: Settings) -> AsyncIterator[Server]:
    """uvicorn in this event loop on a free port, configured as `chatserver serve` configures it."""
    app = create_app(settings)
    config = uvicorn_config(app, settings, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(15):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Server(f"http://127.0.0.1:{port}", settings, app)
    finally:
        server.should_exit = True
        await task


class Client:
    """A protocol client: sends frames, collects what arrives, waits for what a test expects."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        """Every frame received, in order."""
        self.pending: list[dict[str, Any]] = []
        """Frames not yet matched by next()/expect()."""
        self._n = 0

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls, url: str, *, token: str | None = None, origin: str | None = ORIGIN, **kw: Any
    ) -> AsyncIterator[Client]:
        headers = dict(kw.pop("additional_headers", {}))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        async with connect(url, additional_headers=headers, origin=origin, max_size=2**24, **kw) as ws:  # type: ignore[arg-type]
            yield cls(ws)

    async def send(self, frame: dict[str, Any]) -> str:
        self._n += 1
        ref = frame.setdefault("ref", f"r{self._n}")
        await self.ws.send(orjson.dumps(frame).decode())
        return str(ref)

    async def next(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 5.0) -> dict[str, Any]:
        """The first not yet matched frame that satisfies ``pred`` (others stay pending)."""
        for i, frame in enumerate(self.pending):
            if pred(frame):
                return self.pending.pop(i)
        async with asyncio.timeout(timeout):
            while True:
                frame = orjson.loads(await self.ws.recv())
                self.frames.append(frame)
                if pred(frame):
                    return frame
                self.pending.append(frame)

    async def expect(self, type_: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        def pred(f: dict[str, Any]) -> bool:
            return f.get("type") == type_ and all(_get(f, k) == v for k, v in match.items())

        return await self.next(pred, timeout)

    async def request(self, frame: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        """Send and return the ack or error echoing its ref."""
        ref = await self.send(frame)
        return await self.next(lambda f: f.get("ref") == ref and f.get("type") in ("ack", "error"), timeout)

    async def drain(self, quiet: float = 0.3) -> list[dict[str, Any]]:
        """Everything that arrives until the connection is quiet for ``quiet`` seconds."""
        got: list[dict[str, Any]] = []
        with contextlib.suppress(TimeoutError):
            while True:
                async with asyncio.timeout(quiet):
                    raw = await self.ws.recv()
                frame = orjson.loads(raw)
                self.frames.append(frame)
                got.append(frame)
        self.pending.clear()
        return got

    async def closed_with(self, timeout: float = 5.0) -> int:
        async with asyncio.timeout(timeout):
            try:
                while True:
                    self.frames.append(orjson.loads(await self.ws.recv()))
            except ConnectionClosed as exc:
                assert exc.rcvd is not None, "closed without a close frame"
                return exc.rcvd.code


def _get(frame: dict[str, Any], dotted: str) -> Any:
    value: Any = frame
    for part in dotted.split("__"):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


async def visitor_token(http: httpx.AsyncClient, base: str, inbox_key: str, **extra: Any) -> dict[str, Any]:
    r = await http.post(
        f"{base}/api/v1/widget/sessions",
        json={"inbox_key": inbox_key, "locale": "de-DE", **extra},
        headers={"Origin": ORIGIN},
    )
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    ISSUED_SECRETS.add(data["token"])
    return data


# -- server processes ---------------------------------------------------------------------------------------


@dataclass
class ServerProcess:
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.log is not None
        if self.log not in SERVER_LOGS:
            SERVER_LOGS.append(self.log)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "chatserver.cli", "serve", "--port", str(self.port)],
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not become ready: {self.log.read_text()[-3000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=15)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


def run_cli(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "chatserver.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    if out.stdout.startswith(API_TOKEN_PREFIX):
        ISSUED_SECRETS.add(out.stdout.strip())
    return out.stdout.strip()
