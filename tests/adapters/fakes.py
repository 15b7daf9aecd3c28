"""Wire-compatible local servers of the platforms' send APIs: the Telegram Bot API, the Graph API
(Messenger, Instagram, WhatsApp) and Twilio's Messages.json. Real HTTP on 127.0.0.1 (port 0); each records
what it was sent and answers like the platform, including its error shapes. ``fail_next`` scripts the next
answers of one endpoint (a 429 with a retry hint, a 500, a 400 with the platform's reason)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BOT_TOKEN = "123456:TEST-token"
PAGE_TOKEN = "EAAG-page-token"
WA_TOKEN = "EAAG-whatsapp-token"
TWILIO_SID = "AC" + "1" * 32
TWILIO_TOKEN = "twilio-auth-token"


@dataclass
class Call:
    api: str
    path: str
    body: Any
    headers: dict[str, str]


@dataclass
class Scripted:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers=headers, media_type="application/json")


class FakePlatforms:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.scripts: dict[str, list[Scripted | None]] = {}
        self.holds: dict[str, list[asyncio.Event | None]] = {}
        self._all_holds: list[asyncio.Event] = []
        self.webhook: dict[str, Any] | None = None
        self.updates: list[dict[str, Any]] = []
        self.updates_changed = asyncio.Event()
        self.called = asyncio.Event()
        self.url = ""
        self._ids = itertools.count(1)
        self.media: dict[str, tuple[bytes, str]] = {}
        """Files the platforms serve: Telegram file_id, WhatsApp media id, or a path of a link."""
        self.declared_sizes: dict[str, int] = {}
        """A size the platform states for a file (getFile, the Graph media object), if not its own."""

    # -- media ---------------------------------------------------------------------------------------------

    def add_media(self, key: str, data: bytes, content_type: str) -> None:
        self.media[key] = (data, content_type)

    def media_url(self, path: str) -> str:
        """A Meta CDN-like link (no credentials) to the file ``path`` added with :meth:`add_media`."""
        return f"{self.url}/cdn/{path}"

    def twilio_media_url(self, message_sid: str, media_sid: str) -> str:
        return f"{self.url}/2010-04-01/Accounts/{TWILIO_SID}/Messages/{message_sid}/Media/{media_sid}"

    def downloads(self) -> list[Call]:
        return self.sent("download")

    async def _serve_media(self, request: Request, key: str) -> Response:
        self.calls.append(Call("download", request.url.path, None, dict(request.headers)))
        self.called.set()
        await self._held("download")
        scripted = self._scripted("download")
        if scripted is not None:
            return scripted
        found = self.media.get(key)
        if found is None:
            return Response(b"Not Found", 404)
        return Response(found[0], 200, media_type=found[1])

    # -- scripting -----------------------------------------------------------------------------------------

    def fail_next(self, key: str, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        """``key``: a Telegram method (``sendMessage``), ``graph`` or ``twilio``."""
        self.scripts.setdefault(key, []).append(Scripted(status, body, headers or {}))

    def pass_next(self, key: str) -> None:
        """The next call of ``key`` is answered normally (to script a failure of a later call)."""
        self.scripts.setdefault(key, []).append(None)

    def hold_call(self, key: str, after: int = 0) -> asyncio.Event:
        """The call of ``key`` after the next ``after`` ones is recorded, then answered only once the
        returned event is set."""
        event = asyncio.Event()
        self.holds.setdefault(key, []).extend([*([None] * after), event])
        self._all_holds.append(event)
        return event

    async def _held(self, key: str) -> None:
        queue = self.holds.get(key)
        if queue:
            event = queue.pop(0)
            if event is not None:
                await event.wait()

    def push_update(self, update: dict[str, Any]) -> None:
        self.updates.append(update)
        self.updates_changed.set()

    async def wait_for_calls(self, api: str, count: int, timeout: float = 10.0) -> None:
        """Until ``count`` calls of ``api`` were received (each call sets ``called``)."""
        async with asyncio.timeout(timeout):
            while len(self.sent(api)) < count:
                self.called.clear()
                await self.called.wait()

    def sent(self, api: str) -> list[Call]:
        return [c for c in self.calls if c.api == api]

    def _scripted(self, key: str) -> Response | None:
        queue = self.scripts.get(key)
        if queue:
            s = queue.pop(0)
            return _json(s.body, s.status, s.headers) if s is not None else None
        return None

    # -- Telegram Bot API ----------------------------------------------------------------------------------

    async def telegram(self, request: Request) -> Response:
        token, method = request.path_params["token"], request.path_params["method"]
        body = orjson.loads(await request.body() or b"{}")
        self.calls.append(Call("telegram", method, body, dict(request.headers)))
        if token != BOT_TOKEN:
            return _json({"ok": False, "error_code": 401, "description": "Unauthorized"}, 401)
        scripted = self._scripted(method)
        if scripted is not None:
            return scripted
        if method in ("sendMessage", "sendPhoto", "sendDocument"):
            if not isinstance(body.get("chat_id"), int | str):
                return _tg_error(400, "Bad Request: chat_id is empty")
            text = body.get("text")
            if method == "sendMessage" and (not isinstance(text, str) or not 1 <= len(text) <= 4096):
                return _tg_error(
                    400, "Bad Request: message is too long" if text else "Bad Request: message text is empty"
                )
            if body["chat_id"] == 404:
                return _tg_error(400, "Bad Request: chat not found")
            result = {
                "message_id": next(self._ids),
                "chat": {"id": body["chat_id"], "type": "private"},
                "date": 0,
            }
            return _json({"ok": True, "result": result})
        if method == "getFile":
            file_id = body.get("file_id")
            if not isinstance(file_id, str) or file_id not in self.media:
                return _tg_error(400, "Bad Request: invalid file_id")
            data, ctype = self.media[file_id]
            ext = {"image/jpeg": "jpg", "image/png": "png"}.get(ctype, "bin")
            folder = "photos" if ctype.startswith("image/") else "documents"
            result = {
                "file_id": file_id,
                "file_unique_id": f"u{file_id}",
                "file_size": self.declared_sizes.get(file_id, len(data)),
                "file_path": f"{folder}/{file_id}.{ext}",
            }
            return _json({"ok": True, "result": result})
        if method == "setWebhook":
            self.webhook = {"url": body.get("url"), "secret_token": body.get("secret_token")}
            return _json({"ok": True, "result": True, "description": "Webhook was set"})
        if method == "deleteWebhook":
            self.webhook = None
            return _json({"ok": True, "result": True})
        if method == "getUpdates":
            if self.webhook is not None:
                return _tg_error(409, "Conflict: can't use getUpdates method while webhook is active")
            offset = body.get("offset") or 0
            if offset:
                self.updates = [u for u in self.updates if u["update_id"] >= offset]
            if not self.updates and body.get("timeout"):
                self.updates_changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(float(body["timeout"]), 2.0)):
                        await self.updates_changed.wait()
            return _json({"ok": True, "result": self.updates[:100]})
        return _tg_error(404, "Not Found")

    # -- Graph API -------------------------------------------------------------------------------------------

    async def graph(self, request: Request) -> Response:
        node = request.path_params["node"]
        body = orjson.loads(await request.body() or b"{}")
        self.calls.append(
            Call("graph", f"/{request.path_params['version']}/{node}/messages", body, dict(request.headers))
        )
        self.called.set()
        auth = request.headers.get("authorization", "")
        if auth not in (f"Bearer {PAGE_TOKEN}", f"Bearer {WA_TOKEN}"):
            return _graph_error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        await self._held("graph")
        scripted = self._scripted("graph")
        if scripted is not None:
            return scripted
        if body.get("messaging_product") == "whatsapp":
            if body.get("type") == "text" and len(body.get("text", {}).get("body", "")) > 4096:
                return _graph_error(400, 100, "Param text['body'] must be at most 4096 characters long.")
            to = body.get("to")
            return _json(
                {
                    "messaging_product": "whatsapp",
                    "contacts": [{"input": to, "wa_id": to}],
                    "messages": [{"id": f"wamid.FAKE{next(self._ids)}"}],
                }
            )
        recipient = (body.get("recipient") or {}).get("id")
        if not recipient:
            return _graph_error(400, 100, "(#100) The parameter recipient is required")
        text = (body.get("message") or {}).get("text")
        limit_bytes = 1000 if node == "me" else None
        if isinstance(text, str) and (
            (limit_bytes is not None and len(text.encode()) > limit_bytes) or len(text) > 2000
        ):
            return _graph_error(
                400, 100, "(#100) Length of param message[text] must be less than or equal to the limit"
            )
        if recipient == "blocked":
            return _graph_error(400, 551, "This person isn't available right now.")
        return _json({"recipient_id": recipient, "message_id": f"m_FAKE{next(self._ids)}"})

    async def telegram_file(self, request: Request) -> Response:
        """``/file/bot<token>/<file_path>``: the file getFile pointed at."""
        if request.path_params["token"] != BOT_TOKEN:
            self.calls.append(Call("download", request.url.path, None, dict(request.headers)))
            return Response(b"Not Found", 404)
        file_id = request.path_params["path"].rsplit("/", 1)[-1].rsplit(".", 1)[0]
        return await self._serve_media(request, file_id)

    async def graph_media(self, request: Request) -> Response:
        """``GET /{version}/{media-id}``: the media object, its ``url`` downloaded with the same token."""
        media_id = request.path_params["media_id"]
        self.calls.append(Call("graph_media", request.url.path, None, dict(request.headers)))
        if request.headers.get("authorization") != f"Bearer {WA_TOKEN}":
            return _graph_error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        scripted = self._scripted("graph_media")
        if scripted is not None:
            return scripted
        if media_id not in self.media:
            return _graph_error(
                400, 100, f"Unsupported get request. Object with ID '{media_id}' does not exist"
            )
        data, ctype = self.media[media_id]
        return _json(
            {
                "messaging_product": "whatsapp",
                "url": f"{self.url}/whatsapp-media/{media_id}",
                "mime_type": ctype,
                "sha256": "0" * 64,
                "file_size": self.declared_sizes.get(media_id, len(data)),
                "id": media_id,
            }
        )

    async def whatsapp_download(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {WA_TOKEN}":
            self.calls.append(Call("download", request.url.path, None, dict(request.headers)))
            return Response(b"", 401)
        return await self._serve_media(request, request.path_params["media_id"])

    async def cdn(self, request: Request) -> Response:
        return await self._serve_media(request, request.path_params["path"])

    async def twilio_media(self, request: Request) -> Response:
        expected = "Basic " + base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
        if request.headers.get("authorization") != expected:
            self.calls.append(Call("download", request.url.path, None, dict(request.headers)))
            return _twilio_error(401, 20003, "Authenticate")
        return await self._serve_media(request, request.path_params["media_sid"])

    # -- Twilio ----------------------------------------------------------------------------------------------

    async def twilio(self, request: Request) -> Response:
        raw = (await request.body()).decode()
        params = parse_qsl(raw, keep_blank_values=True)
        self.calls.append(Call("twilio", request.url.path, params, dict(request.headers)))
        expected = "Basic " + base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
        if request.path_params["sid"] != TWILIO_SID or request.headers.get("authorization") != expected:
            return _twilio_error(401, 20003, "Authenticate")
        scripted = self._scripted("twilio")
        if scripted is not None:
            return scripted
        data = dict(params)
        if len(data.get("Body", "")) > 1600:
            return _twilio_error(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
        if not data.get("To", "").startswith("+"):
            return _twilio_error(400, 21211, f"The 'To' number {data.get('To')} is not a valid phone number.")
        sid = f"SM{next(self._ids):032d}"
        return _json(
            {
                "sid": sid,
                "status": "queued",
                "to": data["To"],
                "from": data.get("From"),
                "body": data.get("Body", ""),
            },
            201,
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/bot{token}/{method}", self.telegram, methods=["POST"]),
                Route("/file/bot{token}/{path:path}", self.telegram_file, methods=["GET"]),
                Route("/cdn/{path:path}", self.cdn, methods=["GET"]),
                Route("/whatsapp-media/{media_id}", self.whatsapp_download, methods=["GET"]),
                Route(
                    "/2010-04-01/Accounts/{sid}/Messages/{message_sid}/Media/{media_sid}",
                    self.twilio_media,
                    methods=["GET"],
                ),
                Route("/{version}/{media_id}", self.graph_media, methods=["GET"]),
                Route("/{version}/{node}/messages", self.graph, methods=["POST"]),
                Route("/2010-04-01/Accounts/{sid}/Messages.json", self.twilio, methods=["POST"]),
            ]
        )


def _tg_error(code: int, description: str, retry_after: int | None = None) -> Response:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return _json(body, code)


def tg_error_body(code: int, description: str, retry_after: int | None = None) -> dict[str, Any]:
    return orjson.loads(_tg_error(code, description, retry_after).body)


def graph_error_body(code: int, message: str, kind: str = "OAuthException") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": code, "fbtrace_id": "AbCdEfGh123"}}


def _graph_error(status: int, code: int, message: str) -> Response:
    return _json(graph_error_body(code, message), status)


def twilio_error_body(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def _twilio_error(status: int, code: int, message: str) -> Response:
    return _json(twilio_error_body(status, code, message), status)


@contextlib.asynccontextmanager
async def running() -> AsyncIterator[FakePlatforms]:
    fake = FakePlatforms()
    server = uvicorn.Server(
        uvicorn.Config(fake.app(), host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
    fake.url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    try:
        yield fake
    finally:
        server.should_exit = True
        fake.updates_changed.set()
        for event in fake._all_holds:  # a held call must not keep the server from stopping
            event.set()
        await task
