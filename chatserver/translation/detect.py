"""Language detection: lingua restricted to the configured languages, plus a pure decision.

Two halves:

* :func:`is_short_text` and :func:`choose_language` are pure: given the text's size and
  lingua's confidence values (plain ``(code, value)`` pairs), the prior and the
  conversation's current language, they decide. Tests feed them data.
* :class:`LanguageDetector` builds the lingua detector lazily, on first use, in a worker
  thread, and runs each detection in a worker thread, so the event loop never blocks on
  model loading (hundreds of ms and ~30 MB per language in high-accuracy mode).

The decision, in order:

1. a very short text ("ok", "thanks", "👍": under ``min_words`` words or ``min_letters``
   letters) keeps the conversation's current language (else the prior);
2. no language scored at all: current, else prior ("undetermined");
3. a near-tie (two or more languages within ``tie_margin`` of the best) that includes
   the prior goes to the prior; otherwise one that includes the current language goes
   to it;
4. a best score under ``min_confidence`` keeps the current language (else the prior,
   else the best guess), reason "low_confidence";
5. otherwise the best-scoring language.

The prior is the widget's browser locale, a channel's hint (Telegram ``language_code``)
or the contact's known language; region subtags are dropped (``de-AT`` -> ``de``) and a
prior outside the configured languages is ignored.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from lingua import IsoCode639_1, LanguageDetectorBuilder
from lingua import LanguageDetector as _LinguaDetector

__all__ = [
    "DetectionPolicy",
    "DetectionReason",
    "DetectionResult",
    "LanguageDetector",
    "choose_language",
    "is_short_text",
    "normalize_language",
]

DetectionReason = Literal[
    "detected", "prior_tiebreak", "current_tiebreak", "short_text", "low_confidence", "undetermined"
]


@dataclass(frozen=True, slots=True)
class DetectionResult:
    #: ISO 639-1 code, or None when nothing could be decided.
    lang: str | None
    #: lingua's relative confidence for ``lang`` (0.0 when ``lang`` was not scored).
    confidence: float
    reason: DetectionReason


@dataclass(frozen=True, slots=True)
class DetectionPolicy:
    min_words: int = 3
    min_letters: int = 8
    min_confidence: float = 0.5
    tie_margin: float = 0.1


def normalize_language(code: str | None) -> str | None:
    """``"de-DE"``, ``"pt_BR"``, ``"EN"`` -> ``"de"``, ``"pt"``, ``"en"``; empty -> None."""
    if not code:
        return None
    primary = code.replace("_", "-").split("-", 1)[0].strip().lower()
    return primary or None


def is_short_text(text: str, policy: DetectionPolicy = DetectionPolicy()) -> bool:
    """Too little text to tell the language reliably."""
    words = sum(1 for token in text.split() if any(ch.isalpha() for ch in token))
    letters = sum(1 for ch in text if ch.isalpha())
    return words < policy.min_words or letters < policy.min_letters


def choose_language(
    confidences: Sequence[tuple[str, float]],
    *,
    prior: str | None,
    current: str | None,
    policy: DetectionPolicy = DetectionPolicy(),
) -> DetectionResult:
    """Decide from lingua's confidence values (any order; codes as ISO 639-1).

    ``prior`` and ``current`` must already be normalized and within the configured set.
    """
    scores = {code: value for code, value in confidences}
    ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
    if not ranked or ranked[0][1] <= 0.0:
        return _fallback(current, prior, scores, "undetermined", best=None)
    best_code, best_value = ranked[0]
    near = {code for code, value in ranked if best_value - value <= policy.tie_margin}
    if len(near) > 1:
        if prior is not None and prior in near:
            return DetectionResult(prior, scores[prior], "prior_tiebreak")
        if current is not None and current in near:
            return DetectionResult(current, scores[current], "current_tiebreak")
    if best_value < policy.min_confidence:
        return _fallback(current, prior, scores, "low_confidence", best=best_code)
    return DetectionResult(best_code, best_value, "detected")


def _fallback(
    current: str | None,
    prior: str | None,
    scores: dict[str, float],
    reason: DetectionReason,
    *,
    best: str | None,
) -> DetectionResult:
    lang = current or prior or best
    return DetectionResult(lang, scores.get(lang, 0.0) if lang else 0.0, reason)


class LanguageDetector:
    """lingua, restricted to ``languages`` (ISO 639-1), built on first use in a thread.

    ``low_accuracy`` uses trigrams only: ~8x less memory and faster, worse on short
    texts. ``preload`` loads every model at build time instead of per language on demand.
    The object holds no event-loop state, so one instance can be shared.
    """

    def __init__(
        self,
        languages: Iterable[str],
        *,
        policy: DetectionPolicy = DetectionPolicy(),
        low_accuracy: bool = False,
        preload: bool = False,
    ) -> None:
        codes: dict[str, IsoCode639_1] = {}
        for code in languages:
            normalized = normalize_language(code)
            if normalized is None:
                raise ValueError(f"empty language code in {code!r}")
            try:
                codes[normalized] = IsoCode639_1.from_str(normalized)
            except ValueError as exc:
                raise ValueError(f"lingua does not know the language {code!r}") from exc
        if not codes:
            raise ValueError("at least one language is needed")
        self.languages = frozenset(codes)
        self.policy = policy
        self._iso = tuple(codes.values())
        self._low_accuracy = low_accuracy
        self._preload = preload
        self._detector: _LinguaDetector | None = None
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        return self._detector is not None

    async def warm_up(self) -> None:
        """Build the detector now (in a thread) instead of on the first message."""
        await asyncio.to_thread(self._get_detector)

    async def detect(
        self, text: str, prior: str | None = None, current: str | None = None
    ) -> DetectionResult:
        """The language of ``text``; see the module docstring for how the prior and current count."""
        prior = self._known(prior)
        current = self._known(current)
        if len(self.languages) == 1:
            (only,) = self.languages
            return DetectionResult(only, 1.0, "detected")
        if is_short_text(text, self.policy):
            lang = current or prior
            return DetectionResult(lang, 0.0, "short_text")
        confidences = await asyncio.to_thread(self.confidences, text)
        return choose_language(confidences, prior=prior, current=current, policy=self.policy)

    def confidences(self, text: str) -> list[tuple[str, float]]:
        """lingua's confidence values (blocking; builds the detector on first call)."""
        values = self._get_detector().compute_language_confidence_values(text)
        return [(value.language.iso_code_639_1.name.lower(), value.value) for value in values]

    def _known(self, code: str | None) -> str | None:
        normalized = normalize_language(code)
        return normalized if normalized in self.languages else None

    def _get_detector(self) -> _LinguaDetector:
        with self._lock:
            if self._detector is None:
                builder = LanguageDetectorBuilder.from_iso_codes_639_1(*self._iso)
                if self._low_accuracy:
                    builder = builder.with_low_accuracy_mode()
                if self._preload:
                    builder = builder.with_preloaded_language_models()
                self._detector = builder.build()
            return self._detector
