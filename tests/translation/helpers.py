"""Test helpers: a running fake server with the matching real client (``Wire``), Redis target."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis.asyncio as aioredis

from chatserver.translation.breaker import CircuitBreaker
from chatserver.translation.cache import TranslationCache
from chatserver.translation.google_v2 import GoogleV2Provider
from chatserver.translation.google_v3 import GoogleV3Provider
from chatserver.translation.libretranslate import LibreTranslateProvider
from chatserver.translation.provider import TranslationProvider
from chatserver.translation.service import Translator

from .fakes import FakeServer, GoogleV2Fake, GoogleV3Fake, LibreTranslateFake

WIRES = ["google_v3", "google_v2", "libretranslate"]
PROJECT = "test-project"
API_KEY = "test-key-123"


@dataclass
class Wire:
    """A running fake server and a factory for the real client pointed at it."""

    name: str
    fake: FakeServer
    http: httpx.AsyncClient
    _made: list[TranslationProvider | Translator] = field(default_factory=list)

    def provider(self, *, timeout_s: float = 2.0, **limits: Any) -> TranslationProvider:
        provider: TranslationProvider
        if self.name == "google_v3":
            provider = GoogleV3Provider(
                project=PROJECT, endpoint=self.fake.url, timeout_s=timeout_s, **limits
            )
        elif self.name == "google_v2":
            provider = GoogleV2Provider(
                api_key=API_KEY, endpoint=self.fake.url, timeout_s=timeout_s, **limits
            )
        else:
            provider = LibreTranslateProvider(self.http, url=self.fake.url, api_key=API_KEY, **limits)
        self._made.append(provider)
        return provider

    def translator(
        self,
        *,
        timeout_s: float = 2.0,
        cache: TranslationCache | None = None,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] | None = None,
        batch_window_s: float = 0.005,
        max_in_flight: int = 4,
        **limits: Any,
    ) -> Translator:
        extra: dict[str, Any] = {"clock": clock} if clock is not None else {}
        translator = Translator(
            self.provider(timeout_s=timeout_s, **limits),
            cache=cache,
            breaker=breaker,
            timeout_s=timeout_s,
            batch_window_s=batch_window_s,
            max_in_flight=max_in_flight,
            **extra,
        )
        self._made.append(translator)
        return translator

    @property
    def posts(self) -> int:
        return len(self.fake.texts_sent)

    async def close(self) -> None:
        for made in reversed(self._made):
            await made.aclose()


def make_fake(name: str) -> FakeServer:
    if name == "google_v3":
        return GoogleV3Fake()
    if name == "google_v2":
        return GoogleV2Fake()
    return LibreTranslateFake()


@dataclass
class RedisTarget:
    client: aioredis.Redis
    prefix: str
