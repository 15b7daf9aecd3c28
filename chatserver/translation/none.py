"""The provider that never translates: translation switched off."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from chatserver.translation.provider import Translation, TranslationDisabled, TranslationProvider

__all__ = ["NoneProvider"]


class NoneProvider(TranslationProvider):
    """Never translates; the ``Translator`` answers ``untranslated_reason="disabled"`` without calling it."""

    name: ClassVar[str] = "none"
    enabled: ClassVar[bool] = False

    def supports(self, source: str | None, target: str) -> bool:
        return False

    async def translate(self, texts: Sequence[str], source: str | None, target: str) -> list[Translation]:
        raise TranslationDisabled("translation is disabled")
