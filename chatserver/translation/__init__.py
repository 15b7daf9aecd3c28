"""Machine translation and language detection for conversations.

The message pipeline uses two objects, both built once from settings:

* :class:`LanguageDetector` -- ``await detector.detect(text, prior, current)`` gives a
  :class:`DetectionResult` (``lang``, ``confidence``, ``reason``); lingua, restricted to
  the configured languages, loaded lazily in a thread.
* :class:`Translator` -- ``await translator.translate(text, source, target)`` gives a
  :class:`TranslationResult` (``text`` or ``untranslated_reason``, ``cached``); it never
  raises for provider failures. Build it with :func:`build_translator` from a
  :class:`TranslationConfig`, or from parts (:func:`make_provider`,
  :class:`TranslationCache`, :class:`CircuitBreaker`). ``metrics()`` returns
  :class:`TranslationMetrics`.

Providers (``google_v3``, ``google_v2``, ``libretranslate``, ``none``) implement
:class:`TranslationProvider` and raise only :class:`TranslationError` subclasses (the
tree is drawn in :mod:`chatserver.translation.provider`). The Google providers are
imported on demand, so the google-cloud packages load only when configured.
"""

from chatserver.translation.breaker import BreakerState, CircuitBreaker
from chatserver.translation.cache import (
    CachedTranslation,
    CacheKey,
    LruCache,
    RedisCacheLayer,
    TranslationCache,
)
from chatserver.translation.detect import (
    DetectionPolicy,
    DetectionReason,
    DetectionResult,
    LanguageDetector,
    choose_language,
    is_short_text,
    normalize_language,
)
from chatserver.translation.libretranslate import LibreTranslateProvider
from chatserver.translation.none import NoneProvider
from chatserver.translation.provider import (
    BadProviderResponse,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    QuotaExceeded,
    TextTooLong,
    Translation,
    TranslationDisabled,
    TranslationError,
    TranslationProvider,
    UnsupportedLanguagePair,
    UntranslatedReason,
)
from chatserver.translation.service import (
    ProviderName,
    TranslationConfig,
    TranslationMetrics,
    TranslationResult,
    Translator,
    build_translator,
    make_provider,
)

__all__ = [
    "BadProviderResponse",
    "BreakerState",
    "CacheKey",
    "CachedTranslation",
    "CircuitBreaker",
    "DetectionPolicy",
    "DetectionReason",
    "DetectionResult",
    "LanguageDetector",
    "LibreTranslateProvider",
    "LruCache",
    "NoneProvider",
    "ProviderName",
    "ProviderRejected",
    "ProviderTimeout",
    "ProviderUnavailable",
    "QuotaExceeded",
    "RedisCacheLayer",
    "TextTooLong",
    "Translation",
    "TranslationCache",
    "TranslationConfig",
    "TranslationDisabled",
    "TranslationError",
    "TranslationMetrics",
    "TranslationProvider",
    "TranslationResult",
    "Translator",
    "UnsupportedLanguagePair",
    "UntranslatedReason",
    "build_translator",
    "choose_language",
    "is_short_text",
    "make_provider",
    "normalize_language",
]
