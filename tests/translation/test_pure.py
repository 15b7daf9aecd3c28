"""Pure pieces, fed data: breaker, LRU, splitting, validation, error mapping."""

from __future__ import annotations

import hashlib

import pytest

from chatserver.translation.breaker import BreakerState, CircuitBreaker
from chatserver.translation.cache import CachedTranslation, CacheKey, LruCache
from chatserver.translation.provider import (
    BadProviderResponse,
    ProviderRejected,
    ProviderUnavailable,
    QuotaExceeded,
    Translation,
    UnsupportedLanguagePair,
    error_for_status,
    looks_like_html_document,
    unescape_entities,
)
from chatserver.translation.service import same_language, split_for_limit, validate_translation

# --- breaker -------------------------------------------------------------------------------


def test_breaker_opens_at_threshold_of_consecutive_failures() -> None:
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=10.0)
    breaker.record_failure(0.0)
    breaker.record_failure(1.0)
    breaker.record_success(2.0)  # resets the count
    breaker.record_failure(3.0)
    breaker.record_failure(4.0)
    assert breaker.state(4.0) is BreakerState.CLOSED
    assert breaker.allow(4.0)
    breaker.record_failure(5.0)
    assert breaker.state(5.0) is BreakerState.OPEN
    assert not breaker.allow(5.0)
    assert not breaker.would_allow(14.9)
    assert breaker.times_opened == 1


def test_breaker_half_open_lets_exactly_one_probe_through() -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=10.0)
    breaker.record_failure(0.0)
    assert breaker.state(10.0) is BreakerState.HALF_OPEN
    assert breaker.would_allow(10.0)
    assert breaker.allow(10.0)  # the probe
    assert not breaker.would_allow(10.1)
    assert not breaker.allow(10.1)  # everyone else waits for it
    breaker.record_success(10.5)
    assert breaker.state(10.5) is BreakerState.CLOSED
    assert breaker.allow(10.6)


def test_breaker_failed_probe_restarts_the_cooldown() -> None:
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=10.0)
    breaker.record_failure(0.0)
    breaker.record_failure(0.0)
    assert breaker.allow(10.0)
    breaker.record_failure(11.0)
    assert breaker.state(11.0) is BreakerState.OPEN
    assert not breaker.allow(20.9)
    assert breaker.allow(21.0)
    assert breaker.times_opened == 2


@pytest.mark.parametrize(("threshold", "cooldown"), [(0, 1.0), (1, -1.0)])
def test_breaker_rejects_bad_settings(threshold: int, cooldown: float) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=threshold, cooldown_s=cooldown)


# --- cache ---------------------------------------------------------------------------------


def test_cache_key_hashes_text_and_separates_pairs_and_providers() -> None:
    key = CacheKey.for_text("google_v3", "Hallo", "de", "en")
    assert key.digest == hashlib.sha256(b"Hallo").hexdigest()
    assert "Hallo" not in key.redis_key("p:")
    assert key.redis_key("p:") == f"p:google_v3:de:en:{key.digest}"
    assert CacheKey.for_text("google_v3", "Hallo", None, "en").source == "auto"
    assert key != CacheKey.for_text("google_v3", "Hallo", "de", "es")
    assert key != CacheKey.for_text("libretranslate", "Hallo", "de", "en")


def test_lru_evicts_least_recently_used() -> None:
    cache = LruCache(2)
    a, b, c = (CacheKey.for_text("p", t, "en", "de") for t in "abc")
    cache.put(a, CachedTranslation("A"))
    cache.put(b, CachedTranslation("B"))
    assert cache.get(a) == CachedTranslation("A")  # a is now the most recent
    cache.put(c, CachedTranslation("C"))
    assert cache.get(b) is None
    assert cache.get(a) is not None and cache.get(c) is not None
    assert len(cache) == 2


def test_lru_of_size_zero_stores_nothing() -> None:
    cache = LruCache(0)
    key = CacheKey.for_text("p", "x", "en", "de")
    cache.put(key, CachedTranslation("X"))
    assert cache.get(key) is None


# --- splitting -----------------------------------------------------------------------------


def test_short_text_is_one_piece() -> None:
    split = split_for_limit("Hello there. How are you?", 100)
    assert split is not None
    assert split.pieces == ("Hello there. How are you?",)
    assert split.join(["X"]) == "X"


def test_split_packs_sentences_and_keeps_spacing() -> None:
    text = "  One two three. Four five six! Seven eight?\nNine ten.  "
    packed = split_for_limit(text, 32)
    assert packed is not None
    assert packed.pieces == ("One two three. Four five six!", "Seven eight?\nNine ten.")
    assert packed.join(["A", "B"]) == "  A B  "
    split = split_for_limit(text, 20)
    assert split is not None
    assert split.pieces == ("One two three.", "Four five six!", "Seven eight?", "Nine ten.")
    assert split.join(list(split.pieces)) == text
    assert split.join(["A", "B", "C", "D"]) == "  A B C\nD  "


def test_split_handles_cjk_full_stops_without_spaces() -> None:
    text = "你好。" * 10 + "再见\uff01"
    split = split_for_limit(text, 10)
    assert split is not None
    assert split.join(list(split.pieces)) == text
    assert all(len(p) <= 10 for p in split.pieces)


def test_split_gives_up_on_a_sentence_over_the_limit() -> None:
    assert split_for_limit("Fine. " + "y" * 50, 20) is None


# --- validation and mapping ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "translated", "ok"),
    [
        ("Hello", "Hallo", True),
        ("Use <b>bold</b>", "Nutze <b>fett</b>", True),
        ("Hello", "", False),
        ("Hello", "   ", False),
        ("Hello", "<!DOCTYPE html><html><body>Error</body></html>", False),
        ("Hello", "<html lang='en'><body>Sign in</body></html>", False),
        ("Hello", "x" * 500, False),
        ("<!doctype html><html></html>", "<!doctype html><html></html>", True),
    ],
)
def test_validate_translation(source: str, translated: str, ok: bool) -> None:
    result = validate_translation(source, Translation(translated))
    assert isinstance(result, Translation) is ok
    if not ok:
        assert isinstance(result, BadProviderResponse)
        assert result.reason == "bad_response"


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (403, "Daily Limit Exceeded", QuotaExceeded),
        (429, "Too Many Requests", QuotaExceeded),
        (500, "Internal error", ProviderUnavailable),
        (503, "Unavailable", ProviderUnavailable),
        (400, "Target language is invalid.", UnsupportedLanguagePair),
        (400, "fr is not supported", UnsupportedLanguagePair),
        (400, "Invalid request: missing q parameter", ProviderRejected),
        (401, "Unauthorized", ProviderRejected),
    ],
)
def test_error_for_status(status: int, message: str, expected: type[Exception]) -> None:
    error = error_for_status(status, message)
    assert type(error) is expected
    assert error.status == status


def test_rejected_counts_as_unavailable_for_callers() -> None:
    assert ProviderRejected.reason == "provider_unavailable"
    assert issubclass(ProviderRejected, ProviderUnavailable)


def test_html_document_detection() -> None:
    assert looks_like_html_document("<!DOCTYPE html><html>")
    assert looks_like_html_document("\n <HTML>\n<body>")
    assert looks_like_html_document("stuff</html>")
    assert not looks_like_html_document("I wrote <html> in my CSS question")
    assert not looks_like_html_document("a < b and c > d")


def test_unescape_entities_only_when_the_provider_added_them() -> None:
    assert unescape_entities("It's", "Es&#39;s") == "Es's"
    assert unescape_entities("A & B", "A &amp; B") == "A & B"
    assert unescape_entities("Type &amp; please", "Tippe &amp; bitte") == "Tippe &amp; bitte"
    assert unescape_entities("plain", "plain") == "plain"


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("en", "en", True),
        ("en-GB", "en-us", True),
        ("pt-BR", "pt", True),
        ("zh-CN", "zh-TW", False),
        ("sr-Latn", "sr-Cyrl", False),
        ("de", "en", False),
    ],
)
def test_same_language(a: str, b: str, same: bool) -> None:
    assert same_language(a, b) is same
