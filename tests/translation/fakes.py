"""Wire-compatible fake translation servers that record what they get.

One Starlette app per provider protocol (Google v3 REST, Google v2, LibreTranslate),
served by uvicorn on 127.0.0.1, port 0. ``fake.mode`` says how to answer:

``ok``          translate by rule: a phrase table, else ``"[<target>] <text>"``
``hang``        hold the request until the test ends (the client must time out)
``quota``       403 with the provider's quota/ban error body
``rate_limit``  429
``server_error`` 503 with a JSON error
``html_error``  502 with an HTML proxy error page
``html_200``    200 with an HTML login page instead of JSON
``garbage``     200 with invalid JSON
``html_items``  200 JSON whose translations are HTML documents
``empty``       200 JSON with empty translations
``entities``    translations HTML-escaped (``&#39;``, ``&amp;``), as v2 does with format=html
``wrong_count`` one translation fewer than texts
``unsupported`` 400 "language not supported"
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

PHRASES: dict[tuple[str, str], str] = {
    ("Guten Morgen, ich habe eine Frage zu meiner Bestellung.", "es"): (
        "Buenos días, tengo una pregunta sobre mi pedido."
    ),
    ("Claro, ¿cuál es el número de pedido?", "de"): "Natürlich, wie lautet die Bestellnummer?",
}

HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    "<body><h1>Bad Gateway</h1><p>The proxy could not reach the upstream.</p></body></html>"
)
LOGIN_PAGE = "<!doctype html>\n<html><body><form action='/login'>Sign in</form></body></html>"

_GERMAN = re.compile(r"[äöüß]|\b(ich|und|nicht|hallo|guten|danke)\b", re.IGNORECASE)
_SPANISH = re.compile(r"[ñ¿¡]|\b(hola|gracias|el|por|pedido)\b", re.IGNORECASE)


def fake_translate(text: str, target: str) -> str:
    return PHRASES.get((text, target), f"[{target}] {text}")


def fake_detect(text: str) -> str:
    if _GERMAN.search(text):
        return "de"
    if _SPANISH.search(text):
        return "es"
    return "en"


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any


@dataclass
class Job:
    texts: list[str]
    source: str | None
    target: str


@dataclass
class FakeServer:
    """Base: records requests and answers per ``mode``; subclasses speak a wire format."""

    mode: str = "ok"
    delay_s: float = 0.0
    requests: list[RecordedRequest] = field(default_factory=list)
    url: str = ""
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> Starlette:
        raise NotImplementedError

    # -- protocol hooks --
    def parse(self, body: Any) -> Job:
        raise NotImplementedError

    def render(self, job: Job, translated: list[str], detected: list[str]) -> dict[str, Any]:
        raise NotImplementedError

    def error(self, status: int, message: str) -> Response:
        raise NotImplementedError

    # -- shared behaviour --
    async def record(self, request: Request) -> Any:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = raw.decode("utf-8", "replace")
        self.requests.append(
            RecordedRequest(request.method, request.url.path, request.url.query, dict(request.headers), body)
        )
        return body

    async def answer(self, request: Request) -> Response:
        body = await self.record(request)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        mode = self.mode
        if mode == "hang":
            await self._release.wait()
            return self.error(503, "released at teardown")
        if mode == "quota":
            return self.error(403, "User Rate Limit Exceeded")
        if mode == "rate_limit":
            return self.error(429, "Slowdown: 10 per 1 minute")
        if mode == "server_error":
            return self.error(503, "The service is currently unavailable.")
        if mode == "html_error":
            return HTMLResponse(HTML_PAGE, status_code=502)
        if mode == "html_200":
            return HTMLResponse(LOGIN_PAGE, status_code=200)
        if mode == "garbage":
            return Response(b'{"translations": [', media_type="application/json")
        if mode == "unsupported":
            return self.error(400, "xx is not supported")
        job = self.parse(body)
        translated = [fake_translate(text, job.target) for text in job.texts]
        detected = [fake_detect(text) for text in job.texts]
        if mode == "entities":
            translated = [html.escape(t, quote=True) for t in translated]
        elif mode == "wrong_count":
            translated, detected = translated[:-1], detected[:-1]
        elif mode == "html_items":
            translated = [HTML_PAGE for _ in translated]
        elif mode == "empty":
            translated = ["" for _ in translated]
        return JSONResponse(self.render(job, translated, detected))

    def release(self) -> None:
        self._release.set()

    @property
    def texts_sent(self) -> list[list[str]]:
        """The texts of each recorded translate request."""
        return [self.parse(r.body).texts for r in self.requests if r.method == "POST"]


class GoogleV3Fake(FakeServer):
    """``POST /v3/projects/{p}/locations/{l}:translateText`` (camelCase JSON)."""

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(
                    "/v3/projects/{project}/locations/{location}:translateText",
                    self.answer,
                    methods=["POST"],
                )
            ]
        )

    def parse(self, body: Any) -> Job:
        return Job(list(body["contents"]), body.get("sourceLanguageCode") or None, body["targetLanguageCode"])

    def render(self, job: Job, translated: list[str], detected: list[str]) -> dict[str, Any]:
        items: list[dict[str, str]] = []
        for text, lang in zip(translated, detected, strict=True):
            item = {"translatedText": text}
            if job.source is None:
                item["detectedLanguageCode"] = lang
            items.append(item)
        return {"translations": items}

    def error(self, status: int, message: str) -> Response:
        names = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 429: "RESOURCE_EXHAUSTED"}
        status_name = names.get(status, "UNAVAILABLE")
        return JSONResponse(
            {"error": {"code": status, "message": message, "status": status_name}}, status_code=status
        )


class GoogleV2Fake(FakeServer):
    """``POST /language/translate/v2`` (``{data: {translations: [...]}}``)."""

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/language/translate/v2", self.answer, methods=["POST"])])

    def parse(self, body: Any) -> Job:
        q = body["q"]
        return Job([q] if isinstance(q, str) else list(q), body.get("source") or None, body["target"])

    def render(self, job: Job, translated: list[str], detected: list[str]) -> dict[str, Any]:
        items: list[dict[str, str]] = []
        for text, lang in zip(translated, detected, strict=True):
            item = {"translatedText": text}
            if job.source is None:
                item["detectedSourceLanguage"] = lang
            items.append(item)
        return {"data": {"translations": items}}

    def error(self, status: int, message: str) -> Response:
        reason = {403: "userRateLimitExceeded", 429: "rateLimitExceeded", 400: "invalid"}.get(
            status, "backendError"
        )
        return JSONResponse(
            {
                "error": {
                    "code": status,
                    "message": message,
                    "errors": [{"message": message, "reason": reason}],
                }
            },
            status_code=status,
        )


class LibreTranslateFake(FakeServer):
    """``POST /translate`` and ``GET /languages``."""

    languages: dict[str, list[str]] = {"en": ["de", "es"], "de": ["en", "es"], "es": ["en", "de"]}

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/translate", self.answer, methods=["POST"]),
                Route("/languages", self.list_languages, methods=["GET"]),
            ]
        )

    async def list_languages(self, request: Request) -> Response:
        await self.record(request)
        return JSONResponse(
            [{"code": code, "name": code, "targets": targets} for code, targets in self.languages.items()]
        )

    def parse(self, body: Any) -> Job:
        q = body["q"]
        source = body.get("source")
        return Job(
            [q] if isinstance(q, str) else list(q), None if source == "auto" else source, body["target"]
        )

    def render(self, job: Job, translated: list[str], detected: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"translatedText": translated}
        if job.source is None:
            out["detectedLanguage"] = [{"language": lang, "confidence": 90.0} for lang in detected]
        return out

    def error(self, status: int, message: str) -> Response:
        return JSONResponse({"error": message}, status_code=status)


@asynccontextmanager
async def serve(fake: FakeServer) -> AsyncIterator[FakeServer]:
    """Run ``fake`` on 127.0.0.1 with an OS-chosen port; sets ``fake.url``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        fake.app(),
        lifespan="off",
        log_level="warning",
        access_log=False,
        ws="none",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if not server.started:
        await task  # surfaces the startup error
        raise RuntimeError("fake server did not start")
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        fake.release()
        server.should_exit = True
        await task
        sock.close()
