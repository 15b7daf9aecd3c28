"""The provider interface: one small ABC and one exception tree.

A provider turns a batch of texts into a batch of translations, or raises one of
the errors below. Third-party errors (httpx, requests, google-api-core, protobuf)
are mapped to this tree inside each provider, with ``raise ... from exc``; nothing
else escapes a provider.

Exception tree::

    TranslationError                 (reason / kind)
     ├── ProviderUnavailable          provider_unavailable / unavailable: connection error, HTTP 5xx
     │    ├── ProviderTimeout         provider_unavailable / timeout: no answer within the timeout
     │    └── ProviderRejected        provider_unavailable / rejected: other 4xx (bad key, bad request)
     ├── QuotaExceeded                quota_exceeded / quota: HTTP 403 or 429 (rate or daily limit)
     ├── UnsupportedLanguagePair      unsupported_pair / unsupported: cannot do source -> target
     ├── TextTooLong                  too_long / too_long: a sentence over the per-text limit
     ├── BadProviderResponse          bad_response / bad_response: not JSON, HTML, wrong count, empty
     └── TranslationDisabled          disabled / disabled: the "none" provider

``reason`` is what a caller shows (``TranslationResult.untranslated_reason``);
``kind`` labels the error counters in ``TranslationMetrics``.
"""

from __future__ import annotations

import abc
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

__all__ = [
    "BadProviderResponse",
    "ProviderRejected",
    "ProviderTimeout",
    "ProviderUnavailable",
    "QuotaExceeded",
    "TextTooLong",
    "Translation",
    "TranslationDisabled",
    "TranslationError",
    "TranslationProvider",
    "UnsupportedLanguagePair",
    "UntranslatedReason",
    "error_for_status",
    "looks_like_html_document",
    "unescape_entities",
]

UntranslatedReason = Literal[
    "provider_unavailable",
    "quota_exceeded",
    "unsupported_pair",
    "bad_response",
    "too_long",
    "disabled",
    "same_language",
]


class TranslationError(Exception):
    """Root of every error a provider raises."""

    reason: ClassVar[UntranslatedReason] = "provider_unavailable"
    kind: ClassVar[str] = "error"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ProviderUnavailable(TranslationError):
    """The provider could not be reached or failed on its side (connection error, 5xx)."""

    kind = "unavailable"


class ProviderTimeout(ProviderUnavailable):
    """No answer within the request timeout."""

    kind = "timeout"


class ProviderRejected(ProviderUnavailable):
    """The provider refused the request (4xx other than quota): bad credentials, bad request."""

    kind = "rejected"


class QuotaExceeded(TranslationError):
    """Rate or daily limit reached (HTTP 403 or 429)."""

    reason = "quota_exceeded"
    kind = "quota"


class UnsupportedLanguagePair(TranslationError):
    """The provider does not translate from ``source`` into ``target``."""

    reason = "unsupported_pair"
    kind = "unsupported"


class TextTooLong(TranslationError):
    """A text (or one of its sentences) is over the provider's per-text limit."""

    reason = "too_long"
    kind = "too_long"


class BadProviderResponse(TranslationError):
    """The answer is not a usable translation: not JSON, an HTML page, the wrong item count, empty."""

    reason = "bad_response"
    kind = "bad_response"


class TranslationDisabled(TranslationError):
    """Translation is switched off (the ``none`` provider)."""

    reason = "disabled"
    kind = "disabled"


@dataclass(frozen=True, slots=True)
class Translation:
    """One translated text; ``detected_source`` is set when the provider detected the language."""

    text: str
    detected_source: str | None = None


class TranslationProvider(abc.ABC):
    """A translation backend.

    Subclasses set ``name`` and the size limits, and implement :meth:`translate`.
    ``translate`` gets at most ``max_batch_items`` texts totalling at most
    ``max_batch_chars`` code points, none longer than ``max_text_chars``; it returns
    exactly one :class:`Translation` per text, in order, or raises a
    :class:`TranslationError`.
    """

    name: ClassVar[str]
    #: False only for the provider that never translates.
    enabled: ClassVar[bool] = True

    max_batch_items: int = 128
    max_batch_chars: int = 5_000
    max_text_chars: int = 5_000

    def supports(self, source: str | None, target: str) -> bool:
        """Whether the pair can be translated; True when the provider cannot tell in advance."""
        return True

    @abc.abstractmethod
    async def translate(self, texts: Sequence[str], source: str | None, target: str) -> list[Translation]:
        """Translate ``texts`` from ``source`` (None: let the provider detect) into ``target``."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most providers own nothing
        """Release what the provider owns (threads, sessions). Idempotent."""


def error_for_status(status: int, message: str) -> TranslationError:
    """Map an HTTP error status (and the provider's message) to the exception tree."""
    lowered = message.lower()
    if status in (403, 429):
        return QuotaExceeded(message, status=status)
    if status >= 500:
        return ProviderUnavailable(message, status=status)
    if status == 400 and _UNSUPPORTED_HINTS.search(lowered):
        return UnsupportedLanguagePair(message, status=status)
    return ProviderRejected(message, status=status)


_UNSUPPORTED_HINTS = re.compile(
    r"not supported|unsupported|not available as a target|invalid (?:target|source) language"
    r"|language code is invalid|bad language pair|target language is invalid"
)

_HTML_DOCUMENT = re.compile(
    r"^\s*(?:<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>])|</html>", re.IGNORECASE
)
_ENTITY = re.compile(r"&(?:#\d+|#x[0-9a-f]+|[a-z][a-z0-9]*);", re.IGNORECASE)


def looks_like_html_document(text: str) -> bool:
    """True for an HTML page (an error page from a proxy, a login wall), not for text with a tag in it."""
    return _HTML_DOCUMENT.search(text) is not None


def unescape_entities(source: str, translated: str) -> str:
    """Undo HTML entities a provider added (``&#39;``, ``&amp;``), unless the source had entities itself."""
    if _ENTITY.search(translated) is None or _ENTITY.search(source) is not None:
        return translated
    return html.unescape(translated)
