"""The inbox's own texts (title, subtitle, greeting, pre-chat labels) in the visitor's language: the admin's
text for that language, else the default text translated once through the translation provider and kept
in memory. The widget waits for a translation at most :data:`WAIT_S`; a slower one goes on in the background
and fills the cache for the next visitor, and a failed one is not kept (the default text is shown and the
next request tries again). One translation per text at a time, however many visitors ask."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

from chatserver.chat import ChatService
from chatserver.translation.service import Translator
from chatserver.widgetcfg.model import WidgetSettings, texts_for

log = logging.getLogger(__name__)
CACHE_MAX = 2000
WAIT_S = 2.0
TRANSLATE_TIMEOUT_S = 15.0
Key = tuple[str, str, str, str]
"""(inbox id, target language, source language, text)"""


class TextCache:
    def __init__(self) -> None:
        self._done: OrderedDict[Key, str] = OrderedDict()
        self._inflight: dict[Key, asyncio.Task[str | None]] = {}

    async def texts(
        self, service: ChatService, inbox_id: str, settings: WidgetSettings, lang: str
    ) -> dict[str, str]:
        own, missing = texts_for(settings, lang)
        out = dict(own)
        delivery = service.translation
        translator = delivery.translator if delivery is not None else None
        waiting: dict[str, asyncio.Task[str | None]] = {}
        for name, text in missing.items():
            key = (inbox_id, lang, settings.default_language, text)
            found = self._done.get(key)
            if found is not None:
                self._done.move_to_end(key)
            elif translator is not None:
                waiting[name] = self._start(translator, key)
            out[name] = found if found is not None else text
        if waiting:
            done, _ = await asyncio.wait(set(waiting.values()), timeout=WAIT_S)
            for name, task in waiting.items():
                if task in done and task.result() is not None:
                    out[name] = task.result() or out[name]
        return out

    def _start(self, translator: Translator, key: Key) -> asyncio.Task[str | None]:
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._translate(translator, key))
            self._inflight[key] = task
            task.add_done_callback(lambda _t: self._inflight.pop(key, None))
        return task

    async def _translate(self, translator: Translator, key: Key) -> str | None:
        _, lang, source, text = key
        try:
            result = await asyncio.wait_for(translator.translate(text, source, lang), TRANSLATE_TIMEOUT_S)
        except Exception:
            log.warning("translating a widget text into %s failed", lang, exc_info=True)
            return None
        if result.text is None:
            return None
        self._done[key] = result.text
        while len(self._done) > CACHE_MAX:
            self._done.popitem(last=False)
        return result.text


CACHE = TextCache()
