"""LibreTranslate (self-hosted) over an injected ``httpx.AsyncClient``.

Wire format: ``POST {url}/translate`` with JSON ``{q: [...], source: "de" | "auto",
target, format: "text", api_key?}`` answers ``{translatedText: [...],
detectedLanguage?: [{language, confidence}]}``; errors are ``{error: "..."}`` with
400 (bad request, unsupported language, over a limit), 403 (banned for
rate-limit violations, bad key), 429 (slow down) or 500. ``GET {url}/languages``
lists ``[{code, name, targets: [...]}]``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import ClassVar

import httpx

from chatserver.translation.provider import (
    BadProviderResponse,
    ProviderTimeout,
    ProviderUnavailable,
    Translation,
    TranslationProvider,
    error_for_status,
    unescape_entities,
)

__all__ = ["LibreTranslateProvider"]


class LibreTranslateProvider(TranslationProvider):
    """Client for a LibreTranslate server.

    The server's limits are deployment settings (``--batch-limit``, ``--char-limit``),
    so they are constructor arguments here. ``languages`` (source code -> target
    codes) enables :meth:`supports`; :meth:`load_languages` fetches it from the server.
    The HTTP client is injected and not closed by :meth:`aclose` unless ``owns_client``.
    """

    name: ClassVar[str] = "libretranslate"

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        url: str,
        api_key: str | None = None,
        max_batch_items: int = 50,
        max_batch_chars: int = 5_000,
        max_text_chars: int = 5_000,
        languages: Mapping[str, frozenset[str]] | None = None,
        owns_client: bool = False,
    ) -> None:
        self._client = client
        self._url = url.rstrip("/")
        self._api_key = api_key
        self.max_batch_items = max_batch_items
        self.max_batch_chars = max_batch_chars
        self.max_text_chars = min(max_text_chars, max_batch_chars)
        self._languages = dict(languages) if languages is not None else None
        self._owns_client = owns_client

    def supports(self, source: str | None, target: str) -> bool:
        if self._languages is None:
            return True
        if source is None:
            return any(target in targets for targets in self._languages.values())
        return target in self._languages.get(source, frozenset())

    async def load_languages(self) -> Mapping[str, frozenset[str]]:
        """Fetch ``GET /languages`` and use it for :meth:`supports`."""
        data = await self._request("GET", "/languages", None)
        if not isinstance(data, list):
            raise BadProviderResponse("/languages: expected a JSON list")
        languages: dict[str, frozenset[str]] = {}
        for entry in data:
            if not isinstance(entry, dict) or not isinstance(entry.get("code"), str):
                raise BadProviderResponse("/languages: entry without a code")
            targets = entry.get("targets", [])
            if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
                raise BadProviderResponse("/languages: targets is not a list of codes")
            languages[entry["code"]] = frozenset(targets)
        self._languages = languages
        return languages

    async def translate(self, texts: Sequence[str], source: str | None, target: str) -> list[Translation]:
        body: dict[str, object] = {
            "q": list(texts),
            "source": source or "auto",
            "target": target,
            "format": "text",
        }
        if self._api_key:
            body["api_key"] = self._api_key
        data = await self._request("POST", "/translate", body)
        return _parse_translations(data, texts)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def _request(self, method: str, path: str, body: dict[str, object] | None) -> object:
        try:
            response = await self._client.request(method, self._url + path, json=body)
        except httpx.TimeoutException as exc:
            raise ProviderTimeout(f"libretranslate {path}: timed out") from exc
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"libretranslate {path}: {exc!r}") from exc
        if response.status_code >= 400:
            message = f"libretranslate {path}: HTTP {response.status_code}: {_error_message(response)}"
            raise error_for_status(response.status_code, message)
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            kind = response.headers.get("content-type", "?")
            raise BadProviderResponse(f"libretranslate {path}: not JSON ({kind})") from exc


def _error_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "no JSON error body"
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return str(data["error"])[:300]
    return "no error message"


def _parse_translations(data: object, texts: Sequence[str]) -> list[Translation]:
    if not isinstance(data, dict):
        raise BadProviderResponse("libretranslate: expected a JSON object")
    translated = data.get("translatedText")
    if isinstance(translated, str) and len(texts) == 1:
        translated = [translated]
    if not isinstance(translated, list) or not all(isinstance(t, str) for t in translated):
        raise BadProviderResponse("libretranslate: translatedText is not a list of strings")
    if len(translated) != len(texts):
        raise BadProviderResponse(f"libretranslate: {len(translated)} translations for {len(texts)} texts")
    detected = data.get("detectedLanguage")
    if isinstance(detected, dict):
        detected = [detected]
    languages: list[str | None] = [None] * len(texts)
    if isinstance(detected, list) and len(detected) == len(texts):
        languages = [_language_of(d) for d in detected]
    return [
        Translation(unescape_entities(text, result), lang)
        for text, result, lang in zip(texts, translated, languages, strict=True)
    ]


def _language_of(detection: object) -> str | None:
    if isinstance(detection, dict) and isinstance(detection.get("language"), str):
        return str(detection["language"])
    return None
