"""The inbox's own texts (title, subtitle, greeting, pre-chat labels) in the visitor's language: the admin's
text for that language, else the default text translated once through the translation provider and kept
in memory (a failed translation is not kept: the default text is shown and the next request tries again)."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

from chatserver.chat import ChatService
from chatserver.widgetcfg.model import WidgetSettings, texts_for

log = logging.getLogger(__name__)
CACHE_MAX = 2000


class TextCache:
    def __init__(self) -> None:
        self._done: OrderedDict[tuple[str, str, str, str], str] = OrderedDict()
        self._lock = asyncio.Lock()

    async def texts(
        self, service: ChatService, inbox_id: str, settings: WidgetSettings, lang: str
    ) -> dict[str, str]:
        own, missing = texts_for(settings, lang)
        out = dict(own)
        delivery = service.translation
        translator = delivery.translator if delivery is not None else None
        source = settings.default_language
        for key, text in missing.items():
            cache_key = (inbox_id, lang, source, text)
            found = self._done.get(cache_key)
            if found is None and translator is not None:
                async with self._lock:  # one translation per text at a time, even with many visitors
                    found = self._done.get(cache_key)
                    if found is None:
                        try:
                            result = await asyncio.wait_for(translator.translate(text, source, lang), 10)
                        except Exception:
                            log.warning(
                                "translating the widget's %s into %s failed", key, lang, exc_info=True
                            )
                            result = None
                        if result is not None and result.text is not None:
                            found = result.text
                            self._done[cache_key] = found
                            while len(self._done) > CACHE_MAX:
                                self._done.popitem(last=False)
            if found is not None:
                self._done.move_to_end(cache_key)
            out[key] = found if found is not None else text
        return out


CACHE = TextCache()
