"""Google Cloud Translation v3 (Advanced) through the real ``google-cloud-translate`` client.

Wire format (REST transport): ``POST {endpoint}/v3/projects/{p}/locations/{l}:translateText``
with camelCase JSON ``{contents: [...], mimeType: "text/plain", sourceLanguageCode?,
targetLanguageCode}``, answered by ``{translations: [{translatedText, detectedLanguageCode?}]}``.
Limits: 1,024 texts per request; Google recommends at most 5,000 code points per request
(30,000 hard). Quota errors come back as 403 (per-minute and daily limits) or 429.

The package has no asyncio REST transport (only gRPC-asyncio), so the synchronous
``TranslationServiceClient(transport="rest")`` runs on a small thread pool owned by the
provider (not the loop's default executor, which the language detector uses). Each call
passes ``timeout=`` to the client as well, so an abandoned call frees its thread within
the same timeout the ``Translator`` applies with ``asyncio.timeout``. The client's own
retry is switched off (``retry=None``): the ``Translator``'s circuit breaker decides.

Credentials: Google's standard discovery (``google.auth.default()``) by default;
``AnonymousCredentials`` when an endpoint override is set (tests, private gateways)
unless credentials are passed explicitly.

This module also holds :func:`map_google_error`, shared with ``google_v2``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar, Generic, TypeVar

import google.auth.exceptions
import requests
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import translate_v3

from chatserver.translation.provider import (
    BadProviderResponse,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    Translation,
    TranslationError,
    TranslationProvider,
    error_for_status,
    unescape_entities,
)

__all__ = ["BlockingClientRunner", "GoogleV3Provider", "map_google_error"]

_T = TypeVar("_T")
_C = TypeVar("_C")


def map_google_error(exc: BaseException, what: str) -> TranslationError:
    """Map an exception raised by a google-cloud client (or ``requests`` under it) to the tree."""
    if isinstance(exc, TranslationError):
        return exc
    if isinstance(exc, gexc.GoogleAPICallError):
        status = exc.code if isinstance(exc.code, int) else None
        message = f"{what}: HTTP {exc.code}: {str(exc.message)[:300]}"
        if status is None:
            return ProviderUnavailable(message)
        return error_for_status(status, message)
    if isinstance(exc, requests.Timeout):
        return ProviderTimeout(f"{what}: timed out")
    if isinstance(exc, requests.ConnectionError):
        return ProviderUnavailable(f"{what}: {exc!r}")
    if isinstance(exc, google.auth.exceptions.DefaultCredentialsError):
        return ProviderRejected(f"{what}: no Google credentials: {exc}")
    if isinstance(exc, google.auth.exceptions.TransportError):
        return ProviderUnavailable(f"{what}: {exc!r}")
    if isinstance(exc, google.auth.exceptions.GoogleAuthError):
        return ProviderRejected(f"{what}: {exc}")
    if isinstance(exc, ValueError | KeyError | TypeError):
        return BadProviderResponse(f"{what}: unusable response: {exc}")
    if isinstance(exc, requests.RequestException):
        return ProviderUnavailable(f"{what}: {exc!r}")
    # e.g. protobuf's json_format.ParseError when a 200 answer is not JSON
    return BadProviderResponse(f"{what}: unusable response ({type(exc).__name__}): {str(exc)[:300]}")


class BlockingClientRunner(Generic[_C]):
    """A blocking client, built lazily, and the threads that call it."""

    def __init__(self, build: Callable[[], _C], close: Callable[[_C], None], *, threads: int, name: str):
        self._build = build
        self._close = close
        self._client: _C | None = None
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self._closed = False

    def _get_client(self) -> _C:
        # Built in a worker thread: credential discovery may do I/O.
        with self._lock:
            if self._client is None:
                self._client = self._build()
            return self._client

    async def run(self, call: Callable[[_C], _T]) -> _T:
        """Run ``call(client)`` on the pool."""
        if self._closed:
            raise ProviderUnavailable("provider is closed")
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, lambda: call(self._get_client())
        )

    async def aclose(self) -> None:
        """Wait for running calls (each bounded by its timeout), then close the client."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._shutdown)

    def _shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            if self._client is not None:
                self._close(self._client)
                self._client = None


class GoogleV3Provider(TranslationProvider):
    """Cloud Translation v3 ``translateText``."""

    name: ClassVar[str] = "google_v3"

    def __init__(
        self,
        *,
        project: str,
        location: str = "global",
        endpoint: str | None = None,
        credentials: Credentials | None = None,
        timeout_s: float = 5.0,
        threads: int = 8,
        max_batch_items: int = 1024,
        max_batch_chars: int = 5_000,
        max_text_chars: int = 5_000,
        model: str | None = None,
    ) -> None:
        if not project:
            raise ValueError("google_v3 needs a project")
        self._parent = f"projects/{project}/locations/{location}"
        self._endpoint = endpoint
        self._credentials = credentials
        if credentials is None and endpoint is not None:
            self._credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
        self._timeout_s = timeout_s
        self._model = model
        self.max_batch_items = max_batch_items
        self.max_batch_chars = max_batch_chars
        self.max_text_chars = min(max_text_chars, max_batch_chars)
        self._runner = BlockingClientRunner(
            self._build, _close_v3, threads=threads, name="translate-google-v3"
        )

    def _build(self) -> translate_v3.TranslationServiceClient:
        options = {"api_endpoint": self._endpoint} if self._endpoint else None
        return translate_v3.TranslationServiceClient(
            credentials=self._credentials, transport="rest", client_options=options
        )

    async def translate(self, texts: Sequence[str], source: str | None, target: str) -> list[Translation]:
        request = translate_v3.TranslateTextRequest(
            parent=self._parent,
            contents=list(texts),
            mime_type="text/plain",
            source_language_code=source or "",
            target_language_code=target,
        )
        if self._model:
            request.model = self._model

        def call(client: translate_v3.TranslationServiceClient) -> translate_v3.TranslateTextResponse:
            return client.translate_text(request=request, retry=None, timeout=self._timeout_s)

        try:
            response = await self._runner.run(call)
        except Exception as exc:
            raise map_google_error(exc, "google_v3 translateText") from exc
        results = list(response.translations)
        if len(results) != len(texts):
            raise BadProviderResponse(f"google_v3: {len(results)} translations for {len(texts)} texts")
        return [
            Translation(unescape_entities(text, r.translated_text), r.detected_language_code or None)
            for text, r in zip(texts, results, strict=True)
        ]

    async def aclose(self) -> None:
        await self._runner.aclose()


def _close_v3(client: translate_v3.TranslationServiceClient) -> None:
    client.transport.close()  # type: ignore[no-untyped-call]
