"""Translation cache: an in-process LRU with a bound, plus an optional Redis layer with a TTL.

Keys are ``(provider, source, target, sha256(text))``: the text itself is never a key,
so Redis holds no message text in its key space. Values are the translation and the
language the provider detected. The Redis layer is best effort: each operation has a
short timeout, an error is counted and logged and the lookup reports a miss, and a
circuit breaker skips Redis for a while after repeated errors (redis-py's own
retries with backoff can otherwise hold a lookup for seconds while Redis is down).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from chatserver.translation.breaker import CircuitBreaker

__all__ = ["CacheKey", "CachedTranslation", "LruCache", "RedisCacheLayer", "TranslationCache"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CacheKey:
    provider: str
    source: str  # "auto" when the provider detects the source language
    target: str
    digest: str  # sha256 hex of the text

    @classmethod
    def for_text(cls, provider: str, text: str, source: str | None, target: str) -> CacheKey:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return cls(provider, source or "auto", target, digest)

    def redis_key(self, prefix: str) -> str:
        return f"{prefix}{self.provider}:{self.source}:{self.target}:{self.digest}"


@dataclass(frozen=True, slots=True)
class CachedTranslation:
    text: str
    detected_source: str | None = None


class LruCache:
    """A bounded least-recently-used map; pure and synchronous."""

    def __init__(self, max_entries: int) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be >= 0")
        self._max_entries = max_entries
        self._entries: OrderedDict[CacheKey, CachedTranslation] = OrderedDict()

    def get(self, key: CacheKey) -> CachedTranslation | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: CacheKey, value: CachedTranslation) -> None:
        if self._max_entries == 0:
            return
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class RedisCacheLayer:
    """Shared cache in Redis (``redis.asyncio`` client injected, not closed here)."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        ttl_s: int,
        prefix: str = "chatserver:translation:",
        op_timeout_s: float = 0.25,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be > 0")
        self._client = client
        self._ttl_s = ttl_s
        self._prefix = prefix
        self._op_timeout_s = op_timeout_s
        self._breaker = (
            breaker if breaker is not None else CircuitBreaker(failure_threshold=3, cooldown_s=5.0)
        )
        self._clock = clock
        self.errors = 0
        self.skipped = 0

    async def get(self, key: CacheKey) -> CachedTranslation | None:
        if not self._breaker.allow(self._clock()):
            self.skipped += 1
            return None
        try:
            async with asyncio.timeout(self._op_timeout_s):
                raw = await self._client.get(key.redis_key(self._prefix))
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed("get", exc)
            return None
        self._breaker.record_success(self._clock())
        if raw is None:
            return None
        return _decode(raw)

    async def put_many(self, items: Iterable[tuple[CacheKey, CachedTranslation]]) -> None:
        batch = list(items)
        if not batch:
            return
        if not self._breaker.allow(self._clock()):
            self.skipped += 1
            return
        try:
            async with asyncio.timeout(self._op_timeout_s), self._client.pipeline(transaction=False) as pipe:
                for key, value in batch:
                    pipe.set(key.redis_key(self._prefix), _encode(value), ex=self._ttl_s)
                await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed("set", exc)
            return
        self._breaker.record_success(self._clock())

    def _failed(self, op: str, exc: Exception) -> None:
        self.errors += 1
        self._breaker.record_failure(self._clock())
        log.warning("translation cache: redis %s failed: %r", op, exc)


def _encode(value: CachedTranslation) -> str:
    return json.dumps({"t": value.text, "d": value.detected_source}, ensure_ascii=False)


def _decode(raw: object) -> CachedTranslation | None:
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        data = json.loads(text) if isinstance(text, str) else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("t"), str):
        return None
    detected = data.get("d")
    return CachedTranslation(data["t"], detected if isinstance(detected, str) else None)


class TranslationCache:
    """The LRU in front of the optional Redis layer."""

    def __init__(self, max_entries: int = 10_000, redis: RedisCacheLayer | None = None) -> None:
        self.local = LruCache(max_entries)
        self.redis = redis

    async def get(self, key: CacheKey) -> CachedTranslation | None:
        value = self.local.get(key)
        if value is not None or self.redis is None:
            return value
        value = await self.redis.get(key)
        if value is not None:
            self.local.put(key, value)
        return value

    def put_local(self, key: CacheKey, value: CachedTranslation) -> None:
        """Store in process at once (no await), so a caller woken next sees it."""
        self.local.put(key, value)

    async def put_many(self, items: Iterable[tuple[CacheKey, CachedTranslation]]) -> None:
        batch = list(items)
        for key, value in batch:
            self.local.put(key, value)
        if self.redis is not None:
            await self.redis.put_many(batch)

    @property
    def redis_errors(self) -> int:
        return self.redis.errors if self.redis is not None else 0
