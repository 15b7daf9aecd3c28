"""Language detection: the pure decision fed data, then lingua itself."""

from __future__ import annotations

import pytest

from chatserver.translation.detect import (
    DetectionPolicy,
    DetectionResult,
    LanguageDetector,
    choose_language,
    is_short_text,
    normalize_language,
)

# --- pure decision -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "short"),
    [
        ("ok", True),
        ("thanks", True),
        ("👍", True),
        ("👍👍👍 !!!", True),
        ("thank you", True),
        ("ok ok ok", True),  # three words but too few letters
        ("Thanks a lot", False),
        ("Guten Morgen zusammen", False),
    ],
)
def test_is_short_text(text: str, short: bool) -> None:
    assert is_short_text(text) is short


@pytest.mark.parametrize(
    ("code", "normalized"),
    [("de-DE", "de"), ("pt_BR", "pt"), ("EN", "en"), ("", None), (None, None)],
)
def test_normalize_language(code: str | None, normalized: str | None) -> None:
    assert normalize_language(code) == normalized


def test_clear_winner_is_detected() -> None:
    result = choose_language([("de", 0.92), ("nl", 0.05), ("en", 0.03)], prior="en", current="en")
    assert result == DetectionResult("de", 0.92, "detected")


def test_prior_breaks_a_near_tie() -> None:
    confidences = [("es", 0.46), ("pt", 0.44), ("it", 0.10)]
    assert choose_language(confidences, prior="pt", current=None) == DetectionResult(
        "pt", 0.44, "prior_tiebreak"
    )
    assert choose_language(confidences, prior=None, current=None).lang == "es"


def test_prior_outside_the_tie_does_not_count() -> None:
    result = choose_language([("es", 0.80), ("pt", 0.15), ("en", 0.05)], prior="pt", current=None)
    assert result == DetectionResult("es", 0.80, "detected")


def test_current_language_breaks_a_tie_when_the_prior_cannot() -> None:
    result = choose_language([("es", 0.45), ("pt", 0.42), ("it", 0.13)], prior="de", current="pt")
    assert result == DetectionResult("pt", 0.42, "current_tiebreak")


def test_low_confidence_keeps_the_current_language() -> None:
    confidences = [("de", 0.35), ("pt", 0.20), ("es", 0.16), ("en", 0.15), ("fr", 0.14)]
    assert choose_language(confidences, prior=None, current="en") == DetectionResult(
        "en", 0.15, "low_confidence"
    )
    assert choose_language(confidences, prior="fr", current=None).lang == "fr"
    assert choose_language(confidences, prior=None, current=None) == DetectionResult(
        "de", 0.35, "low_confidence"
    )


def test_nothing_scored_is_undetermined() -> None:
    assert choose_language([("en", 0.0), ("de", 0.0)], prior=None, current="de") == DetectionResult(
        "de", 0.0, "undetermined"
    )
    assert choose_language([], prior=None, current=None) == DetectionResult(None, 0.0, "undetermined")


def test_policy_thresholds_are_honoured() -> None:
    strict = DetectionPolicy(min_confidence=0.95, tie_margin=0.0)
    result = choose_language([("de", 0.9), ("nl", 0.1)], prior=None, current="en", policy=strict)
    assert result.reason == "low_confidence"
    assert result.lang == "en"


# --- lingua --------------------------------------------------------------------------------

LANGUAGES = ["en", "de", "es", "fr", "it", "pt", "nl"]


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector(LANGUAGES)  # built lazily, once for this module


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Guten Morgen, ich habe eine Frage zu meiner Bestellung.", "de"),
        ("Hola, necesito ayuda con mi pedido por favor.", "es"),
        ("Hi, I need help with my order please.", "en"),
        ("Ik heb een vraag over mijn bestelling", "nl"),
    ],
)
async def test_sentences_are_detected(detector: LanguageDetector, text: str, lang: str) -> None:
    result = await detector.detect(text, prior=None, current="en" if lang != "en" else "de")
    assert result.lang == lang
    assert result.reason == "detected"
    assert result.confidence > 0.5
    assert detector.built


@pytest.mark.parametrize("text", ["ok", "thanks", "👍", "Danke schön", "gracias amigo"])
async def test_short_texts_keep_the_current_language(detector: LanguageDetector, text: str) -> None:
    result = await detector.detect(text, prior="en", current="fr")
    assert (result.lang, result.reason) == ("fr", "short_text")


async def test_short_text_without_a_conversation_language_takes_the_prior(detector: LanguageDetector) -> None:
    result = await detector.detect("ok", prior="de-AT", current=None)
    assert (result.lang, result.reason) == ("de", "short_text")


async def test_prior_breaks_a_real_tie(detector: LanguageDetector) -> None:
    text = "Hotel Taxi Restaurant Pizza"  # international words: en, pt, it score alike
    without = await detector.detect(text, prior=None, current=None)
    assert without.reason == "low_confidence"
    with_prior = await detector.detect(text, prior="it-IT", current=None)
    assert (with_prior.lang, with_prior.reason) == ("it", "prior_tiebreak")


async def test_restricted_language_set_is_honoured() -> None:
    narrow = LanguageDetector(["en", "de"], low_accuracy=True)
    result = await narrow.detect("Hola, necesito ayuda con mi pedido por favor.", prior="es", current=None)
    assert result.lang in {"en", "de"}
    assert {code for code, _ in narrow.confidences("Bonjour tout le monde")} == {"en", "de"}


async def test_single_language_needs_no_model() -> None:
    only = LanguageDetector(["de"])
    assert await only.detect("Whatever this is, really.") == DetectionResult("de", 1.0, "detected")
    assert not only.built


def test_unknown_languages_are_refused() -> None:
    with pytest.raises(ValueError, match="xx"):
        LanguageDetector(["en", "xx"])
    with pytest.raises(ValueError):
        LanguageDetector([])


async def test_warm_up_builds_in_a_thread() -> None:
    detector = LanguageDetector(["en", "de"], low_accuracy=True, preload=True)
    assert not detector.built
    await detector.warm_up()
    assert detector.built
