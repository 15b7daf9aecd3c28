"""The ``Translator`` facade: what message delivery calls, one text at a time.

``await translator.translate(text, source, target)`` always returns a
:class:`TranslationResult`; provider failures never raise. On the way:

1. same language, empty text, disabled provider, a pair the provider cannot do: answered
   at once, no request;
2. a text over the provider's per-text limit is split on sentence boundaries (each piece
   translated, the results joined with the original separators), or left untranslated
   ("too_long") when one sentence alone is over it;
3. each piece is looked up in the cache (in process, then Redis), and joins an identical
   request already queued or in flight;
4. misses queue per (source, target) lane; a lane is flushed ``batch_window_s`` after its
   first queued item, or as soon as a full batch is queued, into requests within the
   provider's item and character limits, at most ``max_in_flight`` requests per lane at a
   time; what arrives while those are out goes in the next request when one returns;
5. each request asks the circuit breaker first, runs under ``asyncio.timeout(timeout_s)``,
   and its answer is validated: the wrong count fails the request; an empty result for
   non-empty input, an HTML page, or a result absurdly longer than its input fails that
   item. Good results go to the cache.

A call waits at most ``timeout_s + batch_window_s`` (+50 ms) however the provider behaves;
a request that outlives its callers still fills the cache, so a later retry is a hit.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import httpx
import redis.asyncio as aioredis

from chatserver.translation.breaker import CircuitBreaker
from chatserver.translation.cache import CachedTranslation, CacheKey, RedisCacheLayer, TranslationCache
from chatserver.translation.provider import (
    BadProviderResponse,
    ProviderTimeout,
    ProviderUnavailable,
    QuotaExceeded,
    Translation,
    TranslationError,
    TranslationProvider,
    UnsupportedLanguagePair,
    UntranslatedReason,
    looks_like_html_document,
)

__all__ = [
    "ProviderName",
    "SplitText",
    "TranslationConfig",
    "TranslationMetrics",
    "TranslationResult",
    "Translator",
    "build_translator",
    "make_provider",
    "same_language",
    "split_for_limit",
    "validate_translation",
]

log = logging.getLogger(__name__)

ProviderName = Literal["google_v3", "google_v2", "libretranslate", "none"]
_PROVIDERS: frozenset[str] = frozenset({"google_v3", "google_v2", "libretranslate", "none"})
_DEADLINE_SLACK_S = 0.05


@dataclass(frozen=True, slots=True)
class TranslationResult:
    """``text`` is the translation, or None with ``untranslated_reason`` saying why not."""

    text: str | None
    untranslated_reason: UntranslatedReason | None
    cached: bool = False
    detected_source: str | None = None

    @property
    def translated(self) -> bool:
        return self.untranslated_reason is None


def _untranslated(reason: UntranslatedReason) -> TranslationResult:
    return TranslationResult(text=None, untranslated_reason=reason)


@dataclass(slots=True)
class TranslationMetrics:
    """Counters since start; :meth:`Translator.metrics` returns a copy."""

    calls: int = 0  # translate() calls
    requests: int = 0  # provider requests sent
    items: int = 0  # texts sent to the provider
    chars: int = 0  # characters sent to the provider
    cache_hits: int = 0  # per text looked up (a long text split in n pieces counts n)
    cache_misses: int = 0
    cache_errors: int = 0  # Redis errors (the lookup then counts as a miss)
    errors: dict[str, int] = field(default_factory=dict)  # failed requests / rejected items, by kind
    quota_errors: int = 0
    untranslated: dict[str, int] = field(default_factory=dict)  # results by untranslated_reason
    deadline_exceeded: int = 0  # calls that gave up waiting
    breaker_state: str = "closed"
    breaker_opened: int = 0
    breaker_rejected: int = 0  # texts not sent because the breaker was open


def _bump(counter: dict[str, int], key: str, by: int = 1) -> None:
    counter[key] = counter.get(key, 0) + by


# --- pure helpers -------------------------------------------------------------------------

_REGION_SENSITIVE = frozenset({"zh"})


def same_language(source: str, target: str) -> bool:
    """``en`` and ``en-GB`` are the same; ``zh-CN`` and ``zh-TW``, or two scripts, are not."""
    a, b = source.lower(), target.lower()
    if a == b:
        return True
    a_parts, b_parts = a.split("-"), b.split("-")
    if a_parts[0] != b_parts[0] or a_parts[0] in _REGION_SENSITIVE:
        return False
    has_script = any(len(part) == 4 for part in a_parts[1:] + b_parts[1:])
    return not has_script


def _normalize_code(code: str | None) -> str | None:
    if code is None:
        return None
    cleaned = code.strip().replace("_", "-")
    return cleaned or None


@dataclass(frozen=True, slots=True)
class SplitText:
    """A text cut into pieces; ``join`` puts translated pieces back with the original spacing."""

    prefix: str
    pieces: tuple[str, ...]
    separators: tuple[str, ...]  # whitespace after each piece

    def join(self, translated: Sequence[str]) -> str:
        return self.prefix + "".join(t + sep for t, sep in zip(translated, self.separators, strict=True))


# Sentence ends: ". ! ? …" followed by spaces; CJK full stop / exclamation / question (no space
# needed); a line break.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?\u2026])\s+|(?<=[\u3002\uff01\uff1f])\s*|\s*\n\s*")


def split_for_limit(text: str, limit: int) -> SplitText | None:
    """Cut ``text`` on sentence boundaries into pieces of at most ``limit`` characters.

    Consecutive sentences are packed together while they fit. None when one sentence
    alone is longer than ``limit``.
    """
    if len(text) <= limit:
        return SplitText("", (text,), ("",))
    body = text.strip()
    prefix = text[: len(text) - len(text.lstrip())]
    suffix = text[len(text.rstrip()) :]
    sentences: list[tuple[str, str]] = []
    pos = 0
    for match in _SENTENCE_BREAK.finditer(body):
        if match.end() == len(body) and match.start() == match.end():
            break
        sentences.append((body[pos : match.start()], match.group()))
        pos = match.end()
    sentences.append((body[pos:], suffix))
    pieces: list[str] = []
    separators: list[str] = []
    current: str | None = None
    current_sep = ""
    for sentence, sep in sentences:
        if not sentence:
            current_sep += sep
            continue
        if len(sentence) > limit:
            return None
        if current is not None and len(current) + len(current_sep) + len(sentence) <= limit:
            current = current + current_sep + sentence
        else:
            if current is not None:
                pieces.append(current)
                separators.append(current_sep)
            current = sentence
        current_sep = sep
    if current is None:
        return None
    pieces.append(current)
    separators.append(current_sep)
    return SplitText(prefix, tuple(pieces), tuple(separators))


def validate_translation(source_text: str, result: Translation) -> Translation | BadProviderResponse:
    """A provider answer that must not be shown as a translation becomes an error."""
    translated = result.text
    if source_text.strip() and not translated.strip():
        return BadProviderResponse("empty translation for non-empty text")
    if looks_like_html_document(translated) and not looks_like_html_document(source_text):
        return BadProviderResponse("translation is an HTML document")
    if len(translated) > 8 * len(source_text) + 200:
        return BadProviderResponse("translation is far longer than the text")
    return result


# --- configuration ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TranslationConfig:
    """What ``Settings`` hands over; built once, validated here.

    ``url`` is the LibreTranslate server; ``endpoint`` overrides Google's API endpoint
    (tests, private gateways; with it and no key, Google providers use anonymous
    credentials). ``project``/``location`` are for v3, ``api_key`` for v2 and LibreTranslate.
    """

    provider: ProviderName = "none"
    project: str | None = None
    location: str = "global"
    api_key: str | None = None
    url: str | None = None
    endpoint: str | None = None
    timeout_s: float = 5.0
    cache_size: int = 10_000
    redis_cache_ttl_s: int = 7 * 24 * 3600
    batch_window_s: float = 0.005
    breaker_failure_threshold: int = 5
    breaker_cooldown_s: float = 30.0

    def __post_init__(self) -> None:
        if self.provider not in _PROVIDERS:
            raise ValueError(f"unknown translation provider {self.provider!r}")
        if self.provider == "google_v3" and not self.project:
            raise ValueError("translation provider google_v3 needs a project")
        if self.provider == "libretranslate" and not (self.url or self.endpoint):
            raise ValueError("translation provider libretranslate needs a url")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        if self.cache_size < 0 or self.redis_cache_ttl_s <= 0 or self.batch_window_s < 0:
            raise ValueError("cache_size, redis_cache_ttl_s and batch_window_s must be >= 0 (ttl > 0)")


def make_provider(
    config: TranslationConfig, *, http_client: httpx.AsyncClient | None = None
) -> TranslationProvider:
    """The provider ``config`` names. LibreTranslate uses ``http_client`` if given, else owns one."""
    if config.provider == "google_v3":
        from chatserver.translation.google_v3 import GoogleV3Provider

        assert config.project is not None  # checked in TranslationConfig
        return GoogleV3Provider(
            project=config.project,
            location=config.location,
            endpoint=config.endpoint,
            timeout_s=config.timeout_s,
        )
    if config.provider == "google_v2":
        from chatserver.translation.google_v2 import GoogleV2Provider

        return GoogleV2Provider(api_key=config.api_key, endpoint=config.endpoint, timeout_s=config.timeout_s)
    if config.provider == "libretranslate":
        from chatserver.translation.libretranslate import LibreTranslateProvider

        url = config.url or config.endpoint
        assert url is not None  # checked in TranslationConfig
        owns = http_client is None
        client = http_client if http_client is not None else httpx.AsyncClient(timeout=config.timeout_s)
        return LibreTranslateProvider(client, url=url, api_key=config.api_key, owns_client=owns)
    from chatserver.translation.none import NoneProvider

    return NoneProvider()


def build_translator(
    config: TranslationConfig,
    *,
    redis: aioredis.Redis | None = None,
    http_client: httpx.AsyncClient | None = None,
    redis_prefix: str = "chatserver:translation:",
) -> Translator:
    """Provider, cache (with Redis when a client is given) and breaker from ``config``."""
    layer = RedisCacheLayer(redis, ttl_s=config.redis_cache_ttl_s, prefix=redis_prefix) if redis else None
    return Translator(
        make_provider(config, http_client=http_client),
        cache=TranslationCache(config.cache_size, layer),
        breaker=CircuitBreaker(
            failure_threshold=config.breaker_failure_threshold, cooldown_s=config.breaker_cooldown_s
        ),
        timeout_s=config.timeout_s,
        batch_window_s=config.batch_window_s,
    )


# --- the facade ---------------------------------------------------------------------------

_Outcome = Translation | TranslationError


@dataclass(eq=False, slots=True)
class _Item:
    key: CacheKey
    text: str
    future: asyncio.Future[_Outcome]


@dataclass(eq=False, slots=True)
class _Lane:
    source: str | None
    target: str
    pending: deque[_Item] = field(default_factory=deque)
    pending_chars: int = 0
    in_flight: int = 0
    timer: asyncio.TimerHandle | None = None


class Translator:
    """Translate single texts; batching, caching, timeouts and the breaker are inside.

    ``aclose()`` (or ``async with``) stops it: queued texts are answered
    "provider_unavailable", requests in flight are cancelled, cache writes finish, and
    the provider is closed.
    """

    def __init__(
        self,
        provider: TranslationProvider,
        *,
        cache: TranslationCache | None = None,
        breaker: CircuitBreaker | None = None,
        timeout_s: float = 5.0,
        batch_window_s: float = 0.005,
        max_in_flight: int = 4,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        self._provider = provider
        self._cache = cache if cache is not None else TranslationCache()
        self._breaker = breaker if breaker is not None else CircuitBreaker()
        self._timeout_s = timeout_s
        self._window_s = batch_window_s
        self._max_in_flight = max_in_flight
        self._clock = clock
        self._deadline_s = timeout_s + batch_window_s + _DEADLINE_SLACK_S
        self._text_limit = min(provider.max_text_chars, provider.max_batch_chars)
        self._lanes: dict[tuple[str | None, str], _Lane] = {}
        self._queued: dict[CacheKey, asyncio.Future[_Outcome]] = {}
        self._unsupported: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._writes: set[asyncio.Task[None]] = set()
        self._metrics = TranslationMetrics()
        self._closed = False

    @property
    def provider(self) -> TranslationProvider:
        return self._provider

    async def __aenter__(self) -> Translator:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def metrics(self) -> TranslationMetrics:
        m = self._metrics
        return replace(
            m,
            errors=dict(m.errors),
            untranslated=dict(m.untranslated),
            cache_errors=self._cache.redis_errors,
            breaker_state=self._breaker.state(self._clock()).value,
            breaker_opened=self._breaker.times_opened,
        )

    async def translate(self, text: str, source: str | None, target: str) -> TranslationResult:
        """``text`` from ``source`` (None: the provider detects it) into ``target``."""
        self._metrics.calls += 1
        result = await self._translate(text, _normalize_code(source), _normalize_code(target) or target)
        if result.untranslated_reason is not None:
            _bump(self._metrics.untranslated, result.untranslated_reason)
        return result

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        for lane in self._lanes.values():
            if lane.timer is not None:
                lane.timer.cancel()
                lane.timer = None
            while lane.pending:
                self._resolve(lane.pending.popleft(), ProviderUnavailable("translator closed"))
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*self._writes, return_exceptions=True)
        await self._provider.aclose()

    # -- per call --

    async def _translate(self, text: str, source: str | None, target: str) -> TranslationResult:
        if not self._provider.enabled:
            return _untranslated("disabled")
        if source is not None and same_language(source, target):
            return _untranslated("same_language")
        if not text.strip():
            return TranslationResult(text=text, untranslated_reason=None)
        if (source is not None and (source, target) in self._unsupported) or not self._provider.supports(
            source, target
        ):
            return _untranslated("unsupported_pair")
        split = split_for_limit(text, self._text_limit)
        if split is None:
            return _untranslated("too_long")
        try:
            async with asyncio.timeout(self._deadline_s):
                if len(split.pieces) == 1:
                    outcomes = [await self._translate_piece(split.pieces[0], source, target)]
                else:
                    outcomes = list(
                        await asyncio.gather(
                            *(self._translate_piece(p, source, target) for p in split.pieces)
                        )
                    )
        except TimeoutError:
            self._metrics.deadline_exceeded += 1
            return _untranslated("provider_unavailable")
        translations: list[Translation] = []
        for outcome, _cached in outcomes:
            if isinstance(outcome, TranslationError):
                return _untranslated(outcome.reason)
            translations.append(outcome)
        cached = all(c for _, c in outcomes)
        return TranslationResult(
            text=split.join([t.text for t in translations]),
            untranslated_reason=None,
            cached=cached,
            detected_source=translations[0].detected_source,
        )

    async def _translate_piece(self, text: str, source: str | None, target: str) -> tuple[_Outcome, bool]:
        key = CacheKey.for_text(self._provider.name, text, source, target)
        hit = await self._cache.get(key)
        if hit is not None:
            self._metrics.cache_hits += 1
            return Translation(hit.text, hit.detected_source), True
        self._metrics.cache_misses += 1
        future = self._queued.get(key)
        if future is None:
            if self._closed:
                return ProviderUnavailable("translator closed"), False
            if not self._breaker.would_allow(self._clock()):
                self._metrics.breaker_rejected += 1
                return ProviderUnavailable("circuit breaker open"), False
            future = asyncio.get_running_loop().create_future()
            self._queued[key] = future
            self._enqueue(_Item(key, text, future), source, target)
        return await asyncio.shield(future), False

    # -- batching --

    def _enqueue(self, item: _Item, source: str | None, target: str) -> None:
        lane = self._lanes.get((source, target))
        if lane is None:
            lane = self._lanes[(source, target)] = _Lane(source, target)
        lane.pending.append(item)
        lane.pending_chars += len(item.text)
        if lane.in_flight >= self._max_in_flight:
            return  # sent when a request returns
        full = (
            len(lane.pending) >= self._provider.max_batch_items
            or lane.pending_chars >= self._provider.max_batch_chars
        )
        if full:
            self._flush(lane)
        elif lane.timer is None:
            lane.timer = asyncio.get_running_loop().call_later(self._window_s, self._flush, lane)

    def _flush(self, lane: _Lane) -> None:
        if lane.timer is not None:
            lane.timer.cancel()
            lane.timer = None
        while lane.pending and lane.in_flight < self._max_in_flight and not self._closed:
            batch = self._take_batch(lane)
            lane.in_flight += 1
            task = asyncio.get_running_loop().create_task(self._send(lane, batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _take_batch(self, lane: _Lane) -> list[_Item]:
        max_items, max_chars = self._provider.max_batch_items, self._provider.max_batch_chars
        batch: list[_Item] = []
        chars = 0
        while lane.pending and len(batch) < max_items:
            size = len(lane.pending[0].text)
            if batch and chars + size > max_chars:
                break
            batch.append(lane.pending.popleft())
            chars += size
        lane.pending_chars -= chars
        return batch

    async def _send(self, lane: _Lane, batch: list[_Item]) -> None:
        outcomes: list[_Outcome] = [ProviderUnavailable("translator closed")] * len(batch)
        fresh: list[tuple[CacheKey, CachedTranslation]] = []
        try:
            outcomes = await self._request(lane, batch)
        finally:
            lane.in_flight -= 1
            for item, outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, Translation):
                    value = CachedTranslation(outcome.text, outcome.detected_source)
                    self._cache.put_local(item.key, value)
                    fresh.append((item.key, value))
                self._resolve(item, outcome)
            if lane.pending and not self._closed:
                self._flush(lane)
        if fresh and self._cache.redis is not None:
            # Written behind, in its own task: close() cancels requests but lets writes finish.
            write = asyncio.get_running_loop().create_task(self._cache.put_many(fresh))
            self._writes.add(write)
            write.add_done_callback(self._writes.discard)

    def _resolve(self, item: _Item, outcome: _Outcome) -> None:
        if self._queued.get(item.key) is item.future:
            del self._queued[item.key]
        if not item.future.done():
            item.future.set_result(outcome)

    async def _request(self, lane: _Lane, batch: list[_Item]) -> list[_Outcome]:
        if not self._breaker.allow(self._clock()):
            self._metrics.breaker_rejected += len(batch)
            return [ProviderUnavailable("circuit breaker open")] * len(batch)
        texts = [item.text for item in batch]
        m = self._metrics
        m.requests += 1
        m.items += len(texts)
        m.chars += sum(len(t) for t in texts)
        error: TranslationError | None = None
        results: list[Translation] = []
        try:
            async with asyncio.timeout(self._timeout_s):
                results = await self._provider.translate(texts, lane.source, lane.target)
            if len(results) != len(texts):
                error = BadProviderResponse(f"{len(results)} translations for {len(texts)} texts")
        except TimeoutError:
            error = ProviderTimeout(f"no answer within {self._timeout_s}s")
        except TranslationError as exc:
            error = exc
        except asyncio.CancelledError:
            self._breaker.record_failure(self._clock())
            raise
        except Exception as exc:  # a provider bug must not reach the caller either
            log.exception("translation provider %s raised", self._provider.name)
            error = BadProviderResponse(f"provider raised {type(exc).__name__}")
        if error is not None:
            self._count_error(error)
            if isinstance(error, UnsupportedLanguagePair):
                self._breaker.record_success(self._clock())  # the provider itself is fine
                if lane.source is not None:
                    self._unsupported.add((lane.source, lane.target))
            else:
                self._breaker.record_failure(self._clock())
            return [error] * len(batch)
        outcomes: list[_Outcome] = [
            validate_translation(text, result) for text, result in zip(texts, results, strict=True)
        ]
        failed = [o for o in outcomes if isinstance(o, TranslationError)]
        for bad in failed:
            self._count_error(bad)
        if len(failed) == len(outcomes):
            self._breaker.record_failure(self._clock())
        else:
            self._breaker.record_success(self._clock())
        return outcomes

    def _count_error(self, error: TranslationError) -> None:
        _bump(self._metrics.errors, error.kind)
        if isinstance(error, QuotaExceeded):
            self._metrics.quota_errors += 1
        log.warning("translation via %s failed: %s: %s", self._provider.name, error.kind, error)
