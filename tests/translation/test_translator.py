"""The Translator over every provider's real client and its fake server."""

from __future__ import annotations

import asyncio
import time

import pytest

from chatserver.translation.breaker import CircuitBreaker
from chatserver.translation.cache import RedisCacheLayer, TranslationCache
from chatserver.translation.none import NoneProvider
from chatserver.translation.service import Translator

from .fakes import HTML_PAGE, LOGIN_PAGE
from .helpers import RedisTarget, Wire


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_translates_with_the_right_languages(wire: Wire) -> None:
    translator = wire.translator()
    result = await translator.translate("Guten Morgen, ich habe eine Frage zu meiner Bestellung.", "de", "es")
    assert result.text == "Buenos días, tengo una pregunta sobre mi pedido."
    assert result.untranslated_reason is None
    assert result.translated
    assert not result.cached
    (job,) = [wire.fake.parse(r.body) for r in wire.fake.requests]
    assert (job.source, job.target) == ("de", "es")


async def test_auto_source_gives_detected_language(wire: Wire) -> None:
    translator = wire.translator()
    result = await translator.translate("Claro, ¿cuál es el número de pedido?", None, "de")
    assert result.text == "Natürlich, wie lautet die Bestellnummer?"
    assert result.detected_source == "es"
    assert wire.fake.parse(wire.fake.requests[0].body).source is None


async def test_concurrent_calls_are_batched(wire: Wire) -> None:
    translator = wire.translator(batch_window_s=0.02)
    texts = [f"Message number {i}." for i in range(20)]
    results = await asyncio.gather(*(translator.translate(t, "en", "de") for t in texts))
    assert [r.text for r in results] == [f"[de] {t}" for t in texts]
    assert wire.posts == 1
    assert wire.fake.texts_sent[0] == texts
    m = translator.metrics()
    assert (m.calls, m.requests, m.items) == (20, 1, 20)
    assert m.chars == sum(len(t) for t in texts)


async def test_batches_respect_item_and_char_limits(wire: Wire) -> None:
    translator = wire.translator(max_batch_items=3, max_batch_chars=40, max_text_chars=40)
    texts = [f"Short text {i:02d}" for i in range(10)]  # 13 characters each
    results = await asyncio.gather(*(translator.translate(t, "en", "es") for t in texts))
    assert [r.text for r in results] == [f"[es] {t}" for t in texts]
    batches = wire.fake.texts_sent
    assert len(batches) < len(texts)
    assert all(len(b) <= 3 and sum(map(len, b)) <= 40 for b in batches)
    assert sorted(t for b in batches for t in b) == texts


async def test_whatever_arrives_while_in_flight_goes_in_the_next_request(wire: Wire) -> None:
    wire.fake.delay_s = 0.3
    translator = wire.translator(max_in_flight=1)
    first = asyncio.create_task(translator.translate("First message.", "en", "de"))
    await asyncio.sleep(0.1)  # the first request is now in flight
    later = [f"Later message {i}." for i in range(5)]
    results = await asyncio.gather(first, *(translator.translate(t, "en", "de") for t in later))
    assert all(r.translated for r in results)
    assert wire.fake.texts_sent == [["First message."], later]


async def test_identical_concurrent_texts_are_sent_once(wire: Wire) -> None:
    translator = wire.translator()
    results = await asyncio.gather(*(translator.translate("Thanks a lot!", "en", "de") for _ in range(5)))
    assert {r.text for r in results} == {"[de] Thanks a lot!"}
    assert wire.fake.texts_sent == [["Thanks a lot!"]]


async def test_second_call_is_a_cache_hit_without_a_request(wire: Wire) -> None:
    translator = wire.translator()
    first = await translator.translate("Where is my parcel?", "en", "de")
    second = await translator.translate("Where is my parcel?", "en", "de")
    assert (first.cached, second.cached) == (False, True)
    assert second.text == first.text == "[de] Where is my parcel?"
    assert wire.posts == 1
    other_pair = await translator.translate("Where is my parcel?", "en", "es")
    assert not other_pair.cached
    assert wire.posts == 2
    m = translator.metrics()
    assert (m.cache_hits, m.cache_misses) == (1, 2)


async def test_timeout_leaves_message_untranslated_in_time(wire: Wire) -> None:
    wire.fake.mode = "hang"
    translator = wire.translator(timeout_s=0.3)
    started = time.monotonic()
    result = await translator.translate("Hello?", "en", "de")
    assert time.monotonic() - started < 0.3 + 0.3  # the timeout, the batch window, some slack
    assert (result.text, result.untranslated_reason) == (None, "provider_unavailable")
    m = translator.metrics()
    assert m.errors.get("timeout", 0) + m.deadline_exceeded >= 1
    assert m.untranslated == {"provider_unavailable": 1}


@pytest.mark.parametrize("mode", ["quota", "rate_limit"])
async def test_quota_errors_are_counted(wire: Wire, mode: str) -> None:
    wire.fake.mode = mode
    translator = wire.translator()
    result = await translator.translate("Hello", "en", "de")
    assert (result.text, result.untranslated_reason) == (None, "quota_exceeded")
    m = translator.metrics()
    assert m.quota_errors == 1
    assert m.errors == {"quota": 1}


async def test_server_error_is_provider_unavailable(wire: Wire) -> None:
    wire.fake.mode = "server_error"
    translator = wire.translator()
    result = await translator.translate("Hello", "en", "de")
    assert (result.text, result.untranslated_reason) == (None, "provider_unavailable")
    assert translator.metrics().errors == {"unavailable": 1}


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("html_error", "provider_unavailable"),
        ("html_200", "bad_response"),
        ("garbage", "bad_response"),
        ("html_items", "bad_response"),
        ("empty", "bad_response"),
        ("wrong_count", "bad_response"),
    ],
)
async def test_garbage_is_never_shown_as_a_translation(wire: Wire, mode: str, reason: str) -> None:
    wire.fake.mode = mode
    translator = wire.translator(batch_window_s=0.02)
    results = await asyncio.gather(
        translator.translate("Can you help me?", "en", "de"),
        translator.translate("It is urgent.", "en", "de"),
    )
    for result in results:
        assert result.text is None
        assert result.untranslated_reason == reason
    assert wire.posts == 1
    # nothing bad was cached either
    wire.fake.mode = "ok"
    again = await translator.translate("Can you help me?", "en", "de")
    assert (again.text, again.cached) == ("[de] Can you help me?", False)
    assert HTML_PAGE not in (again.text or "") and LOGIN_PAGE not in (again.text or "")


async def test_entities_in_results_are_unescaped(wire: Wire) -> None:
    wire.fake.mode = "entities"
    translator = wire.translator()
    result = await translator.translate("It's Tom & Jerry", "en", "de")
    assert result.text == "[de] It's Tom & Jerry"


async def test_unsupported_pair_is_reported_and_remembered(wire: Wire) -> None:
    wire.fake.mode = "unsupported"
    translator = wire.translator()
    first = await translator.translate("Hello", "en", "xx")
    second = await translator.translate("Hello again", "en", "xx")
    assert first.untranslated_reason == second.untranslated_reason == "unsupported_pair"
    assert wire.posts == 1
    assert translator.metrics().breaker_state == "closed"


async def test_breaker_opens_after_threshold_then_half_open_probe_recovers(wire: Wire) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=30.0)
    translator = wire.translator(breaker=breaker, clock=clock)
    wire.fake.mode = "server_error"
    for i in range(3):
        result = await translator.translate(f"Attempt {i}", "en", "de")
        assert result.untranslated_reason == "provider_unavailable"
    assert wire.posts == 3
    assert translator.metrics().breaker_state == "open"

    # while open: no request at all, answered at once
    for i in range(5):
        result = await translator.translate(f"During outage {i}", "en", "de")
        assert result.untranslated_reason == "provider_unavailable"
    assert wire.posts == 3
    assert translator.metrics().breaker_rejected == 5

    # cool-down over, the provider is back: one probe goes out and closes the breaker
    wire.fake.mode = "ok"
    clock.now += 31.0
    assert translator.metrics().breaker_state == "half_open"
    probe = await translator.translate("Probe", "en", "de")
    assert probe.text == "[de] Probe"
    assert wire.posts == 4
    m = translator.metrics()
    assert (m.breaker_state, m.breaker_opened) == ("closed", 1)
    assert (await translator.translate("Back to normal", "en", "de")).translated


async def test_failed_half_open_probe_reopens_the_breaker(wire: Wire) -> None:
    clock = FakeClock()
    translator = wire.translator(breaker=CircuitBreaker(failure_threshold=1, cooldown_s=10.0), clock=clock)
    wire.fake.mode = "quota"
    await translator.translate("One", "en", "de")
    assert translator.metrics().breaker_state == "open"
    clock.now += 11.0
    # a call and a concurrent one: both ride in the one probe request
    results = await asyncio.gather(
        translator.translate("Two", "en", "de"), translator.translate("Three", "en", "de")
    )
    assert {r.untranslated_reason for r in results} == {"quota_exceeded"}
    assert wire.posts == 2
    assert translator.metrics().breaker_state == "open"
    assert (await translator.translate("Four", "en", "de")).untranslated_reason == "provider_unavailable"
    assert wire.posts == 2
    assert translator.metrics().breaker_opened == 2


async def test_cache_hits_are_served_while_the_breaker_is_open(wire: Wire) -> None:
    clock = FakeClock()
    translator = wire.translator(breaker=CircuitBreaker(failure_threshold=1, cooldown_s=60.0), clock=clock)
    assert (await translator.translate("Known phrase", "en", "de")).translated
    wire.fake.mode = "server_error"
    await translator.translate("Something new", "en", "de")
    cached = await translator.translate("Known phrase", "en", "de")
    assert (cached.text, cached.cached) == ("[de] Known phrase", True)


async def test_long_text_is_split_on_sentence_boundaries(wire: Wire) -> None:
    translator = wire.translator(max_text_chars=60, max_batch_chars=200)
    sentences = [
        "The first sentence is here.",
        "A second one follows it!",
        "Does a third one fit?",
        "The fourth ends the text.",
    ]
    text = " ".join(sentences[:2]) + "\n\n" + " ".join(sentences[2:])
    result = await translator.translate(text, "en", "de")
    sent = [t for batch in wire.fake.texts_sent for t in batch]
    assert all(len(t) <= 60 for t in sent)
    assert sent == [" ".join(sentences[:2]), " ".join(sentences[2:])]
    assert result.text == f"[de] {sent[0]}\n\n[de] {sent[1]}"


async def test_sentence_over_the_limit_is_left_untranslated(wire: Wire) -> None:
    translator = wire.translator(max_text_chars=30)
    result = await translator.translate("Short one. " + "x" * 40 + " and no full stop", "en", "de")
    assert (result.text, result.untranslated_reason) == (None, "too_long")
    assert wire.posts == 0


async def test_same_language_and_blank_text_make_no_request(wire: Wire) -> None:
    translator = wire.translator()
    assert (await translator.translate("Hello", "en", "en")).untranslated_reason == "same_language"
    assert (await translator.translate("Hello", "en-GB", "en_US")).untranslated_reason == "same_language"
    blank = await translator.translate("  \n", "en", "de")
    assert (blank.text, blank.untranslated_reason) == ("  \n", None)
    assert wire.posts == 0
    assert translator.metrics().untranslated == {"same_language": 2}


@pytest.mark.redis
async def test_redis_layer_is_shared_between_translators(wire: Wire, redis_target: RedisTarget) -> None:
    def make() -> Translator:
        layer = RedisCacheLayer(redis_target.client, ttl_s=120, prefix=redis_target.prefix)
        return wire.translator(cache=TranslationCache(100, layer))

    first, second = make(), make()
    assert not (await first.translate("See you tomorrow", "en", "de")).cached
    keys = [key async for key in redis_target.client.scan_iter(match=redis_target.prefix + "*")]
    assert len(keys) == 1
    assert 0 < await redis_target.client.ttl(keys[0]) <= 120
    assert b"See you tomorrow" not in keys[0]  # the key holds a hash, not the text
    hit = await second.translate("See you tomorrow", "en", "de")
    assert (hit.text, hit.cached) == ("[de] See you tomorrow", True)
    assert wire.posts == 1


async def test_disabled_provider_never_translates() -> None:
    async with Translator(NoneProvider()) as translator:
        result = await translator.translate("Hallo", "de", "en")
    assert (result.text, result.untranslated_reason) == (None, "disabled")
    assert translator.metrics().requests == 0
