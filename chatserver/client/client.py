"""The adapter client: one WebSocket to ``/ws/adapter`` (re-opened after a drop, with ``resume``), typed
events, requests answered by their ``ack`` or ``error``, and the REST calls for injected messages and
delivery states."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

log = logging.getLogger(__name__)

REPLAYABLE = frozenset({"message.send", "message.inject"})
"""Requests sent again after a reconnect (the server dedupes them: client_id, external_id)."""
FATAL_CLOSES = {4401: "the adapter token is invalid or revoked", 4403: "forbidden"}


class ClientError(Exception):
    """The server refused a request (``code`` as in docs/protocol.md) or the connection for good."""

    def __init__(self, code: str, message: str, data: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.data = dict(data or {})


class ConnectionLost(ClientError):
    """The connection dropped while a request that cannot be repeated safely was in flight."""

    def __init__(self) -> None:
        super().__init__("connection_lost", "the connection dropped before the answer; check and retry")


@dataclass(frozen=True, slots=True)
class MessageEvent:
    conversation_id: str
    seq: int
    message: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.message["id"])

    @property
    def text(self) -> str:
        return str(self.message.get("text", ""))

    @property
    def author_kind(self) -> str:
        return str(self.message["author"]["kind"])

    @property
    def kind(self) -> str:
        return str(self.message.get("kind", "text"))

    @property
    def actions(self) -> list[dict[str, str]]:
        return list(self.message.get("actions") or [])


@dataclass(frozen=True, slots=True)
class ConversationEvent:
    conversation: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.conversation["id"])

    @property
    def status(self) -> str:
        return str(self.conversation["status"])


@dataclass(frozen=True, slots=True)
class DeliveryEvent:
    """An agent's reply for a custom channel to send to its platform."""

    conversation_id: str
    inbox_id: str
    contact_external_id: str | None
    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class OtherEvent:
    type: str
    frame: dict[str, Any]


Event = MessageEvent | ConversationEvent | DeliveryEvent | OtherEvent


def parse_event(frame: Mapping[str, Any]) -> Event:
    kind = str(frame.get("type"))
    if kind == "message":
        return MessageEvent(str(frame["conversation_id"]), int(frame["seq"]), dict(frame["message"]))
    if kind == "conversation":
        return ConversationEvent(dict(frame["conversation"]))
    if kind == "delivery":
        contact = frame.get("contact") or {}
        return DeliveryEvent(
            str(frame["conversation_id"]),
            str(frame["inbox_id"]),
            contact.get("external_id"),
            dict(frame["message"]),
        )
    return OtherEvent(kind, dict(frame))


@dataclass
class _Pending:
    frame: dict[str, Any]
    future: asyncio.Future[dict[str, Any]]


@dataclass
class AdapterClient:
    base_url: str
    token: str
    reconnect_min_s: float = 0.2
    reconnect_max_s: float = 10.0
    queue_size: int = 10_000
    cursors: dict[str, int] = field(default_factory=dict)
    """The last seq seen per conversation: sent as ``resume`` after each reconnect."""

    def __post_init__(self) -> None:
        self._events: asyncio.Queue[Event | ClientError] = asyncio.Queue(self.queue_size)
        self._pending: dict[str, _Pending] = {}
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._closed = False
        self._n = 0
        self.hello: dict[str, Any] | None = None
        self._fatal: ClientError | None = None
        self.connections = 0

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def __aenter__(self) -> AdapterClient:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self, timeout_s: float = 15.0) -> None:
        """Connect (and keep reconnecting); returns once the first ``hello`` arrived."""
        self._task = asyncio.create_task(self._run(), name="adapter-client")
        async with asyncio.timeout(timeout_s):
            while not self._connected.is_set():
                waiter = asyncio.create_task(self._connected.wait())
                done, _ = await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
                if self._task in done:
                    waiter.cancel()
                    self._task.result()
                    raise self._fatal or ClientError("closed", "the client stopped before connecting")

    async def close(self) -> None:
        self._closed = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ClientError):
                await self._task
        for p in self._pending.values():
            if not p.future.done():
                p.future.set_exception(ConnectionLost())
        self._pending.clear()

    @property
    def ws_url(self) -> str:
        return (
            self.base_url.rstrip("/").replace("http://", "ws://", 1).replace("https://", "wss://", 1)
            + "/ws/adapter"
        )

    async def _run(self) -> None:
        delay = self.reconnect_min_s
        while not self._closed:
            try:
                async with connect(
                    self.ws_url, additional_headers={"Authorization": f"Bearer {self.token}"}, max_size=2**22
                ) as ws:
                    self._ws = ws
                    await self._session(ws)
                    delay = self.reconnect_min_s
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                if code in FATAL_CLOSES:
                    error = ClientError("unauthorized" if code == 4401 else "forbidden", FATAL_CLOSES[code])
                    self._fail(error)
                    return
                log.info("adapter connection closed (%s); reconnecting", code)
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                log.info("adapter connection failed (%r); retrying in %.1f s", exc, delay)
            finally:
                self._ws = None
                self._connected.clear()
                self._lost()
            if self._closed:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.reconnect_max_s)

    def _fail(self, error: ClientError) -> None:
        self._fatal = error
        with contextlib.suppress(asyncio.QueueFull):
            self._events.put_nowait(error)
        for p in self._pending.values():
            if not p.future.done():
                p.future.set_exception(error)
        self._pending.clear()

    def _lost(self) -> None:
        """After a drop: requests that can be repeated wait for the next connection; others fail."""
        for ref, p in list(self._pending.items()):
            if p.frame.get("type") not in REPLAYABLE:
                if not p.future.done():
                    p.future.set_exception(ConnectionLost())
                del self._pending[ref]

    async def _session(self, ws: ClientConnection) -> None:
        hello = json.loads(await ws.recv())
        if hello.get("type") != "hello":
            raise ClientError("bad_frame", "the server did not say hello")
        self.hello = hello
        self.connections += 1
        if self.cursors:
            await ws.send(json.dumps({"type": "resume", "cursors": dict(self.cursors)}))
        self._connected.set()  # from now on request() sends by itself; what waited is sent here
        for p in list(self._pending.values()):  # the same client_id / external_id: stored once
            await ws.send(json.dumps(p.frame))
        async for raw in ws:
            frame = json.loads(raw)
            kind = frame.get("type")
            ref = frame.get("ref")
            if kind in ("ack", "error") and ref in self._pending:
                p = self._pending.pop(ref)
                if not p.future.done():
                    if kind == "ack":
                        p.future.set_result(frame)
                    else:
                        p.future.set_exception(
                            ClientError(frame.get("code", "error"), frame.get("message", ""), frame)
                        )
                continue
            if kind == "message":
                cid, seq = frame["conversation_id"], int(frame["seq"])
                if seq <= self.cursors.get(cid, 0):
                    continue  # already seen (a resume overlaps)
                self.cursors[cid] = seq
            try:
                self._events.put_nowait(parse_event(frame))
            except asyncio.QueueFull:
                log.warning("adapter client event queue full: dropping the connection to resume later")
                await ws.close(1000, "client queue full")
                return

    # -- events --------------------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[Event]:
        """Every event, in order, across reconnects; ends with ClientError if the token is refused."""
        while True:
            item = await self._events.get()
            if isinstance(item, ClientError):
                raise item
            yield item

    async def next_event(self, timeout_s: float | None = None) -> Event:
        async with asyncio.timeout(timeout_s):
            item = await self._events.get()
        if isinstance(item, ClientError):
            raise item
        return item

    # -- requests ------------------------------------------------------------------------------------------

    async def request(self, frame: Mapping[str, Any], timeout_s: float = 30.0) -> dict[str, Any]:
        """Send a frame and return its ``ack`` (ClientError for its ``error``)."""
        self._n += 1
        ref = f"c{self._n}-{uuid.uuid4().hex[:8]}"
        body = {**frame, "ref": ref}
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ref] = _Pending(body, future)
        ws = self._ws
        if ws is not None and self._connected.is_set():
            with contextlib.suppress(ConnectionClosed):
                await ws.send(json.dumps(body))
        elif body["type"] not in REPLAYABLE:
            del self._pending[ref]
            raise ConnectionLost()
        try:
            async with asyncio.timeout(timeout_s):
                return await future
        finally:
            self._pending.pop(ref, None)

    async def send(
        self,
        conversation_id: str,
        text: str,
        *,
        actions: Sequence[Mapping[str, str]] = (),
        client_id: str | None = None,
    ) -> dict[str, Any]:
        """A bot's message (with buttons ``[{id, label}]``); idempotent by ``client_id`` (generated)."""
        frame: dict[str, Any] = {
            "type": "message.send",
            "conversation_id": conversation_id,
            "client_id": client_id or uuid.uuid4().hex,
            "text": text,
        }
        if actions:
            frame["actions"] = [dict(a) for a in actions]
        return await self.request(frame)

    async def handoff(
        self,
        conversation_id: str,
        summary: str,
        *,
        skills: Mapping[str, int] | None = None,
        priority: int | None = None,
        team: str | None = None,
    ) -> dict[str, Any]:
        frame: dict[str, Any] = {
            "type": "conversation.handoff",
            "conversation_id": conversation_id,
            "summary": summary,
        }
        if skills is not None:
            frame["skills"] = dict(skills)
        if priority is not None:
            frame["priority"] = priority
        if team is not None:
            frame["team"] = team
        return await self.request(frame)

    async def update_contact(self, conversation_id: str, **values: Any) -> dict[str, Any]:
        """name, email, language, attributes={...} of the conversation's contact."""
        return await self.request({"type": "contact.update", "conversation_id": conversation_id, **values})

    async def update_conversation(
        self, conversation_id: str, *, skills: Mapping[str, int] | None = None, priority: int | None = None
    ) -> dict[str, Any]:
        frame: dict[str, Any] = {"type": "conversation.update", "conversation_id": conversation_id}
        if skills is not None:
            frame["skills"] = dict(skills)
        if priority is not None:
            frame["priority"] = priority
        return await self.request(frame)

    async def inject(
        self,
        inbox_id: str,
        contact: Mapping[str, Any],
        external_id: str,
        text: str,
        *,
        files: Sequence[File] = (),
    ) -> dict[str, Any]:
        """A custom channel's inbound message (deduped on ``external_id``); ``files`` must fit in one
        frame (``CHATSERVER_MAX_FRAME_BYTES``): send bigger ones with :meth:`inject_rest`."""
        return await self.request(
            {"type": "message.inject", **_inject_body(inbox_id, contact, external_id, text, files)}
        )

    async def report_status(self, message_id: str, state: str, reason: str | None = None) -> dict[str, Any]:
        """How far an agent's reply got (sent, delivered, read, failed): its stored delivery state."""
        return await self.request({"type": "message.status", **_status_body(message_id, state, reason)})

    async def inject_rest(
        self,
        inbox_id: str,
        contact: Mapping[str, Any],
        external_id: str,
        text: str,
        *,
        files: Sequence[File] = (),
        timeout_s: float = 30.0,
    ) -> dict[str, Any]:
        """The same as :meth:`inject` over REST (``POST /api/v1/adapter/messages``), without a socket."""
        body = _inject_body(inbox_id, contact, external_id, text, files)
        return await self._rest("/api/v1/adapter/messages", body, timeout_s)

    async def report_status_rest(
        self, message_id: str, state: str, reason: str | None = None, *, timeout_s: float = 30.0
    ) -> dict[str, Any]:
        """The same as :meth:`report_status` over REST (``POST /api/v1/adapter/statuses``)."""
        return await self._rest(
            "/api/v1/adapter/statuses", _status_body(message_id, state, reason), timeout_s
        )

    async def _rest(self, path: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=timeout_s) as http:
            r = await http.post(
                self.base_url.rstrip("/") + path, json=body, headers={"Authorization": f"Bearer {self.token}"}
            )
        data: dict[str, Any] = r.json()
        if r.status_code >= 400:
            err = data.get("error") or {}
            raise ClientError(str(err.get("code", r.status_code)), str(err.get("message", "")), err)
        return data


@dataclass(frozen=True, slots=True)
class File:
    """A file on an injected message (sent as base64)."""

    name: str
    content_type: str
    data: bytes


def _inject_body(
    inbox_id: str, contact: Mapping[str, Any], external_id: str, text: str, files: Sequence[File]
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "inbox_id": inbox_id,
        "contact": dict(contact),
        "external_id": external_id,
        "text": text,
    }
    if files:
        body["attachments"] = [
            {"name": f.name, "content_type": f.content_type, "data": base64.b64encode(f.data).decode()}
            for f in files
        ]
    return body


def _status_body(message_id: str, state: str, reason: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"message_id": message_id, "state": state}
    if reason is not None:
        body["reason"] = reason
    return body


__all__ = [
    "AdapterClient",
    "ClientError",
    "ConnectionLost",
    "ConversationEvent",
    "DeliveryEvent",
    "Event",
    "File",
    "MessageEvent",
    "OtherEvent",
    "parse_event",
]
