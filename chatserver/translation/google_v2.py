"""Google Cloud Translation v2 (Basic) through the real ``google-cloud-translate`` client.

Wire format: ``POST {endpoint}/language/translate/v2`` with JSON ``{q: [...], target,
source?, format: "text"}`` answered by ``{data: {translations: [{translatedText,
detectedSourceLanguage?}]}}``. v2 defaults to ``format=html`` and then returns
entities (``&#39;``, ``&amp;``): we send ``format="text"`` and still unescape
defensively. Limits: 128 texts per request; Google recommends at most 5,000
characters per request.

The API key travels as ``google.auth.api_key.Credentials`` (the ``x-goog-api-key``
header): ``translate_v2.Client`` ignores ``client_options["api_key"]``. Without a
key: ``AnonymousCredentials`` when the endpoint is overridden, Google's standard
credentials otherwise.

``translate_v2.Client`` is synchronous, has no per-call timeout and no asyncio
variant, so it runs on the provider's own thread pool (as in ``google_v3``) over a
session that caps every HTTP call at ``timeout_s``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import google.auth.api_key
import google.cloud.translate_v2 as translate_v2  # type: ignore[import-untyped]
from google.auth.credentials import AnonymousCredentials, Credentials
from google.auth.transport.requests import AuthorizedSession

from chatserver.translation.google_v3 import BlockingClientRunner, map_google_error
from chatserver.translation.provider import (
    BadProviderResponse,
    Translation,
    TranslationProvider,
    unescape_entities,
)

__all__ = ["GoogleV2Provider"]


class _CappedTimeoutSession:
    """The HTTP object handed to ``translate_v2.Client``: every call gets our timeout."""

    def __init__(self, session: AuthorizedSession, timeout_s: float) -> None:
        self._session = session
        self._timeout_s = timeout_s

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        kwargs["timeout"] = self._timeout_s
        return self._session.request(method, url, **kwargs)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self._session.close()  # type: ignore[no-untyped-call]


class GoogleV2Provider(TranslationProvider):
    """Cloud Translation v2 ``translate``."""

    name: ClassVar[str] = "google_v2"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        endpoint: str | None = None,
        credentials: Credentials | None = None,
        timeout_s: float = 5.0,
        threads: int = 8,
        max_batch_items: int = 128,
        max_batch_chars: int = 5_000,
        max_text_chars: int = 5_000,
    ) -> None:
        if credentials is None and api_key:
            credentials = google.auth.api_key.Credentials(api_key)  # type: ignore[no-untyped-call]
        if credentials is None and endpoint is not None:
            credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
        self._credentials = credentials
        self._endpoint = endpoint
        self._timeout_s = timeout_s
        self.max_batch_items = max_batch_items
        self.max_batch_chars = max_batch_chars
        self.max_text_chars = min(max_text_chars, max_batch_chars)
        self._runner: BlockingClientRunner[Any] = BlockingClientRunner(
            self._build, _close_v2, threads=threads, name="translate-google-v2"
        )

    def _build(self) -> Any:
        credentials = self._credentials
        if credentials is None:
            credentials, _ = google.auth.default(scopes=translate_v2.Client.SCOPE)
        session = _CappedTimeoutSession(
            AuthorizedSession(credentials),  # type: ignore[no-untyped-call]
            self._timeout_s,
        )
        options = {"api_endpoint": self._endpoint} if self._endpoint else None
        return translate_v2.Client(credentials=credentials, _http=session, client_options=options)

    async def translate(self, texts: Sequence[str], source: str | None, target: str) -> list[Translation]:
        values = list(texts)

        def call(client: Any) -> Any:
            return client.translate(values, target_language=target, source_language=source, format_="text")

        try:
            results = await self._runner.run(call)
        except Exception as exc:
            raise map_google_error(exc, "google_v2 translate") from exc
        if not isinstance(results, list) or len(results) != len(texts):
            raise BadProviderResponse("google_v2: wrong number of translations")
        translations = []
        for text, result in zip(texts, results, strict=True):
            translated = result.get("translatedText") if isinstance(result, Mapping) else None
            if not isinstance(translated, str):
                raise BadProviderResponse("google_v2: translation without translatedText")
            detected = result.get("detectedSourceLanguage")
            translations.append(
                Translation(
                    unescape_entities(text, translated), detected if isinstance(detected, str) else None
                )
            )
        return translations

    async def aclose(self) -> None:
        await self._runner.aclose()


def _close_v2(client: Any) -> None:
    client.close()
