"""Each provider's real client against its wire-compatible fake: requests and error mapping."""

from __future__ import annotations

import time

import httpx
import pytest

from chatserver.translation.google_v2 import GoogleV2Provider
from chatserver.translation.google_v3 import GoogleV3Provider
from chatserver.translation.libretranslate import LibreTranslateProvider
from chatserver.translation.provider import (
    BadProviderResponse,
    ProviderTimeout,
    ProviderUnavailable,
    QuotaExceeded,
    Translation,
    TranslationError,
    UnsupportedLanguagePair,
)

from .fakes import GoogleV2Fake, GoogleV3Fake, LibreTranslateFake, serve
from .helpers import API_KEY, PROJECT, Wire

# --- Google v3 -----------------------------------------------------------------------------


async def test_google_v3_request_path_body_and_languages() -> None:
    async with serve(GoogleV3Fake()) as fake:
        provider = GoogleV3Provider(project="acme-prod", location="europe-west1", endpoint=fake.url)
        try:
            result = await provider.translate(["Hallo zusammen", "Wie geht's?"], "de", "es")
        finally:
            await provider.aclose()
    assert result == [Translation("[es] Hallo zusammen"), Translation("[es] Wie geht's?")]
    (req,) = fake.requests
    assert req.method == "POST"
    assert req.path == "/v3/projects/acme-prod/locations/europe-west1:translateText"
    assert req.query == "%24alt=json%3Benum-encoding%3Dint"
    assert req.body == {
        "contents": ["Hallo zusammen", "Wie geht's?"],
        "mimeType": "text/plain",
        "sourceLanguageCode": "de",
        "targetLanguageCode": "es",
    }
    assert "authorization" not in req.headers  # AnonymousCredentials with an endpoint override


async def test_google_v3_auto_source_omits_source_and_reads_detected_language() -> None:
    async with serve(GoogleV3Fake()) as fake:
        provider = GoogleV3Provider(project=PROJECT, endpoint=fake.url)
        try:
            result = await provider.translate(["Danke für die Hilfe", "Thank you"], None, "es")
        finally:
            await provider.aclose()
    assert [t.detected_source for t in result] == ["de", "en"]
    assert "sourceLanguageCode" not in fake.requests[0].body


# --- Google v2 -----------------------------------------------------------------------------


async def test_google_v2_request_path_body_key_and_languages() -> None:
    async with serve(GoogleV2Fake()) as fake:
        provider = GoogleV2Provider(api_key=API_KEY, endpoint=fake.url)
        try:
            result = await provider.translate(["Hello there", "Bye"], "en", "de")
        finally:
            await provider.aclose()
    assert [t.text for t in result] == ["[de] Hello there", "[de] Bye"]
    (req,) = fake.requests
    assert req.method == "POST"
    assert req.path == "/language/translate/v2"
    assert req.body["q"] == ["Hello there", "Bye"]
    assert req.body["source"] == "en"
    assert req.body["target"] == "de"
    assert req.body["format"] == "text"  # never the html default, which returns entities
    assert req.headers["x-goog-api-key"] == API_KEY


async def test_google_v2_without_key_uses_anonymous_credentials_on_override() -> None:
    async with serve(GoogleV2Fake()) as fake:
        provider = GoogleV2Provider(endpoint=fake.url)
        try:
            result = await provider.translate(["Hola amigo"], None, "en")
        finally:
            await provider.aclose()
    assert result == [Translation("[en] Hola amigo", "es")]
    headers = fake.requests[0].headers
    assert "x-goog-api-key" not in headers
    assert "authorization" not in headers


# --- LibreTranslate ------------------------------------------------------------------------


async def test_libretranslate_request_body() -> None:
    async with serve(LibreTranslateFake()) as fake, httpx.AsyncClient() as http:
        provider = LibreTranslateProvider(http, url=fake.url + "/", api_key=API_KEY)
        result = await provider.translate(["Hallo", "Gracias por todo"], None, "en")
    assert result == [Translation("[en] Hallo", "de"), Translation("[en] Gracias por todo", "es")]
    (req,) = fake.requests
    assert (req.method, req.path) == ("POST", "/translate")
    assert req.body == {
        "q": ["Hallo", "Gracias por todo"],
        "source": "auto",
        "target": "en",
        "format": "text",
        "api_key": API_KEY,
    }


async def test_libretranslate_without_key_sends_no_key_and_explicit_source() -> None:
    async with serve(LibreTranslateFake()) as fake, httpx.AsyncClient() as http:
        provider = LibreTranslateProvider(http, url=fake.url)
        await provider.translate(["Hello"], "en", "es")
    assert fake.requests[0].body == {"q": ["Hello"], "source": "en", "target": "es", "format": "text"}


async def test_libretranslate_languages_drive_supports() -> None:
    async with serve(LibreTranslateFake()) as fake, httpx.AsyncClient() as http:
        provider = LibreTranslateProvider(http, url=fake.url)
        assert provider.supports("de", "fr")  # unknown until loaded
        languages = await provider.load_languages()
    assert languages["de"] == frozenset({"en", "es"})
    assert fake.requests[0].method == "GET"
    assert fake.requests[0].path == "/languages"
    assert provider.supports("de", "es")
    assert not provider.supports("de", "fr")
    assert provider.supports(None, "en")
    assert not provider.supports(None, "fr")


async def test_libretranslate_single_string_answer_is_accepted() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"translatedText": "Hola"}))
    async with httpx.AsyncClient(transport=transport) as http:
        provider = LibreTranslateProvider(http, url="http://lt.invalid")
        assert await provider.translate(["Hello"], "en", "es") == [Translation("Hola")]


async def test_libretranslate_connection_refused_is_unavailable() -> None:
    async with serve(LibreTranslateFake()) as fake:
        url = fake.url
    async with httpx.AsyncClient() as http:  # the server is gone now
        provider = LibreTranslateProvider(http, url=url)
        with pytest.raises(ProviderUnavailable) as info:
            await provider.translate(["Hello"], "en", "es")
    assert not isinstance(info.value, ProviderTimeout)


# --- error mapping, the same for every provider --------------------------------------------

ERROR_MODES: list[tuple[str, type[TranslationError]]] = [
    ("quota", QuotaExceeded),
    ("rate_limit", QuotaExceeded),
    ("server_error", ProviderUnavailable),
    ("html_error", ProviderUnavailable),
    ("html_200", BadProviderResponse),
    ("garbage", BadProviderResponse),
    ("wrong_count", BadProviderResponse),
    ("unsupported", UnsupportedLanguagePair),
]


@pytest.mark.parametrize(("mode", "expected"), ERROR_MODES, ids=[m for m, _ in ERROR_MODES])
async def test_errors_map_to_the_tree(wire: Wire, mode: str, expected: type[TranslationError]) -> None:
    wire.fake.mode = mode
    provider = wire.provider()
    with pytest.raises(expected) as info:
        await provider.translate(["Good morning", "See you"], "en", "de")
    assert info.value.reason == expected.reason
    assert "<html" not in str(info.value).lower() or mode == "html_error"
    assert len(wire.fake.requests) == 1  # no client-side retries


async def test_hanging_server_times_out_in_the_client(wire: Wire) -> None:
    wire.fake.mode = "hang"
    provider = wire.provider(timeout_s=0.3)
    if wire.name == "libretranslate":  # our client: httpx's timeout is the caller's to set
        wire.http.timeout = httpx.Timeout(0.3)
    started = time.monotonic()
    with pytest.raises(ProviderTimeout):
        await provider.translate(["Hello"], "en", "de")
    assert time.monotonic() - started < 2.0


async def test_entities_are_unescaped(wire: Wire) -> None:
    wire.fake.mode = "entities"
    provider = wire.provider()
    result = await provider.translate(["It's Tom & Jerry <3", 'Say "hi"'], "en", "de")
    assert [t.text for t in result] == ["[de] It's Tom & Jerry <3", '[de] Say "hi"']


async def test_entities_typed_by_the_user_are_kept(wire: Wire) -> None:
    provider = wire.provider()
    result = await provider.translate(["Write &amp; for an ampersand"], "en", "de")
    assert result[0].text == "[de] Write &amp; for an ampersand"
