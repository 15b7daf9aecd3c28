"""Configuration, the provider factory and the public API."""

from __future__ import annotations

import pathlib
import socket
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

import chatserver.translation as translation
from chatserver.translation import (
    CachedTranslation,
    CacheKey,
    CircuitBreaker,
    LibreTranslateProvider,
    NoneProvider,
    RedisCacheLayer,
    TranslationConfig,
    build_translator,
    make_provider,
)
from chatserver.translation.google_v2 import GoogleV2Provider
from chatserver.translation.google_v3 import GoogleV3Provider

from .fakes import LibreTranslateFake, serve
from .helpers import RedisTarget


@pytest.mark.parametrize(
    "kwargs",
    [
        {"provider": "deepl"},
        {"provider": "google_v3"},
        {"provider": "libretranslate"},
        {"provider": "none", "timeout_s": 0},
        {"provider": "none", "cache_size": -1},
        {"provider": "none", "redis_cache_ttl_s": 0},
    ],
)
def test_bad_config_is_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        TranslationConfig(**kwargs)


async def test_make_provider_builds_each_kind() -> None:
    v3 = make_provider(TranslationConfig(provider="google_v3", project="p", endpoint="http://127.0.0.1:9"))
    v2 = make_provider(TranslationConfig(provider="google_v2", api_key="k", endpoint="http://127.0.0.1:9"))
    lt = make_provider(TranslationConfig(provider="libretranslate", url="http://127.0.0.1:9"))
    off = make_provider(TranslationConfig())
    try:
        assert isinstance(v3, GoogleV3Provider) and v3.max_batch_items == 1024
        assert isinstance(v2, GoogleV2Provider) and v2.max_batch_items == 128
        assert isinstance(lt, LibreTranslateProvider)
        assert isinstance(off, NoneProvider) and not off.enabled
    finally:
        for provider in (v3, v2, lt, off):
            await provider.aclose()


async def test_unreachable_google_endpoint_is_provider_unavailable() -> None:
    config = TranslationConfig(
        provider="google_v3", project="p", endpoint="http://127.0.0.1:9", timeout_s=1.0
    )
    async with build_translator(config) as translator:
        result = await translator.translate("Hello", "en", "de")
    assert result.untranslated_reason == "provider_unavailable"
    assert translator.metrics().errors == {"unavailable": 1}


@pytest.mark.redis
async def test_build_translator_with_redis_and_injected_http_client(redis_target: RedisTarget) -> None:
    async with serve(LibreTranslateFake()) as fake, httpx.AsyncClient() as http:
        config = TranslationConfig(provider="libretranslate", url=fake.url, redis_cache_ttl_s=60)
        async with build_translator(
            config, redis=redis_target.client, http_client=http, redis_prefix=redis_target.prefix
        ) as translator:
            assert (await translator.translate("Good night", "en", "es")).text == "[es] Good night"
        assert not http.is_closed  # injected, so not ours to close
        async with build_translator(
            config, redis=redis_target.client, http_client=http, redis_prefix=redis_target.prefix
        ) as fresh:
            again = await fresh.translate("Good night", "en", "es")
    assert (again.text, again.cached) == ("[es] Good night", True)
    assert len(fake.requests) == 1


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A local port that refuses connections (bound, never listening)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


async def test_redis_outage_degrades_to_a_miss(closed_port: int) -> None:
    dead = aioredis.Redis(host="127.0.0.1", port=closed_port, socket_connect_timeout=0.2)
    async with serve(LibreTranslateFake()) as fake, httpx.AsyncClient() as http:
        config = TranslationConfig(provider="libretranslate", url=fake.url)
        async with build_translator(config, redis=dead, http_client=http) as translator:
            result = await translator.translate("Hello", "en", "de")
    await dead.aclose()
    assert result.text == "[de] Hello"
    assert translator.metrics().cache_errors == 2  # the lookup and the store


async def test_redis_layer_stops_asking_a_dead_redis_for_a_while(closed_port: int) -> None:
    dead = aioredis.Redis(host="127.0.0.1", port=closed_port, socket_connect_timeout=0.2)
    now = [0.0]
    layer = RedisCacheLayer(
        dead,
        ttl_s=60,
        op_timeout_s=0.1,
        breaker=CircuitBreaker(failure_threshold=2, cooldown_s=5.0),
        clock=lambda: now[0],
    )
    key = CacheKey.for_text("p", "Hello", "en", "de")
    for _ in range(4):
        assert await layer.get(key) is None
    assert (layer.errors, layer.skipped) == (2, 2)
    now[0] = 6.0
    await layer.put_many([(key, CachedTranslation("Hallo"))])  # the probe, which fails again
    assert (layer.errors, layer.skipped) == (3, 2)
    await dead.aclose()


def test_public_api_is_curated() -> None:
    assert sorted(translation.__all__) == translation.__all__
    for name in translation.__all__:
        assert hasattr(translation, name), name
    public = {
        name
        for name, value in vars(translation).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)  # submodules load on use
    }
    assert public == set(translation.__all__)


def test_package_reads_no_environment() -> None:
    package = pathlib.Path(translation.__file__).parent
    for source in package.glob("*.py"):
        text = source.read_text()
        assert "os.environ" not in text and "getenv" not in text, source.name
