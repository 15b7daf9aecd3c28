"""Translation in the message flow: the I/O shell around the Translator and the detector.

- Inbound visitor text is detected (only once the detector is loaded: a cold model never holds a
  message) and the language stored on the message; a confident new language becomes the
  conversation's language.
- The original is committed and delivered at once. Then, in the background, the text is translated
  for the other side (visitor -> assigned agent's language; agent -> the conversation's language), the
  translation is stored on the message, and ``message.translated`` is published.
- A failure stores the reason (the message shows as untranslated) and is retried with backoff, in
  this process and, after a restart, from the database; a translation never blocks or loses a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from chatserver.model.events import Event, TranslatedEvent, conversation_topic
from chatserver.model.ids import now_ms
from chatserver.model.types import AuthorKind, Message, MessageKind
from chatserver.store.store import Store
from chatserver.translation.detect import DetectionResult, LanguageDetector
from chatserver.translation.service import TranslationResult, Translator, same_language

log = logging.getLogger(__name__)

RETRYABLE = frozenset({"provider_unavailable", "quota_exceeded", "bad_response"})
MAX_ATTEMPTS = 12
Publish = Callable[[list[tuple[str, Event]]], None]


@dataclass
class _Retry:
    message: Message
    target: str
    attempts: int
    due: float


class TranslationDelivery:
    def __init__(
        self,
        store: Store,
        translator: Translator | None,
        detector: LanguageDetector | None,
        publish: Publish,
        *,
        agent_language: str,
        retry_s: float,
    ) -> None:
        self.store = store
        self.translator = translator
        self.detector = detector
        self._publish = publish
        self.agent_language = agent_language
        self._retry_s = retry_s
        self._tasks: set[asyncio.Task[None]] = set()
        self._retries: dict[tuple[str, str], _Retry] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._warming: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.translator is not None

    async def start(self) -> None:
        if not self.enabled:
            return
        self._warm_up()
        self._loop_task = asyncio.create_task(self._retry_loop(), name="translation-retry")
        # what a previous run could not translate (last 24 h) is retried too
        for message in await self.store.untranslated_since(now_ms() - 24 * 3600 * 1000):
            for target in message.untranslated:
                self._retries[(message.id, target)] = _Retry(message, target, 1, time.monotonic())

    async def stop(self) -> None:
        for task in [self._loop_task, self._warming, *self._tasks]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self.translator is not None:
            await self.translator.aclose()

    def _warm_up(self) -> None:
        if self.detector is not None and not self.detector.built and self._warming is None:
            self._warming = asyncio.create_task(self.detector.warm_up(), name="detector-warm-up")

    # -- detection ---------------------------------------------------------------------------------------

    async def detect(self, text: str, *, prior: str | None, current: str | None) -> DetectionResult | None:
        """The text's language, or None when detection is off or its model is still loading."""
        if self.detector is None or not self.enabled:
            return None
        if not self.detector.built:
            self._warm_up()
            return None
        return await self.detector.detect(text, prior=prior, current=current)

    # -- translation ---------------------------------------------------------------------------------------

    def schedule(self, message: Message, target: str | None) -> None:
        """Translate ``message`` into ``target`` in the background (if it needs it)."""
        if not self._needs(message, target):
            return
        assert target is not None
        self._spawn(self._translate(message, target, attempt=0))

    def _needs(self, message: Message, target: str | None) -> bool:
        return (
            self.enabled
            and target is not None
            and message.kind is MessageKind.TEXT
            and message.author.kind in (AuthorKind.CONTACT, AuthorKind.AGENT, AuthorKind.BOT)
            and target not in message.translations
            and not (message.lang is not None and same_language(message.lang, target))
        )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def translate_text(self, text: str, source: str | None, target: str) -> TranslationResult:
        assert self.translator is not None
        return await self.translator.translate(text, source, target)

    async def _translate(self, message: Message, target: str, *, attempt: int) -> None:
        assert self.translator is not None
        try:
            result = await self.translator.translate(message.text, message.lang, target)
            if result.text is None and result.untranslated_reason == "same_language":
                return
            stored = await self.store.record_translation(
                message.id, target, text=result.text, reason=result.untranslated_reason
            )
        except Exception:  # the database failed: try again later
            log.exception("storing the translation of %s failed", message.id)
            self._later(message, target, attempt + 1)
            return
        if result.text is None and target in stored.translations:
            return  # a concurrent attempt already succeeded
        if result.text is not None or attempt == 0:
            self._publish(
                [
                    (
                        conversation_topic(message.conversation_id),
                        TranslatedEvent(
                            message.conversation_id,
                            message.id,
                            message.seq,
                            target,
                            result.text,
                            result.untranslated_reason,
                            for_agents=message.author.kind is AuthorKind.CONTACT,
                        ),
                    )
                ]
            )
        if result.text is None and result.untranslated_reason in RETRYABLE:
            self._later(message, target, attempt + 1)
        else:
            self._retries.pop((message.id, target), None)

    def _later(self, message: Message, target: str, attempts: int) -> None:
        if attempts >= MAX_ATTEMPTS:
            log.warning("giving up translating %s into %s after %d attempts", message.id, target, attempts)
            self._retries.pop((message.id, target), None)
            return
        delay = self._retry_s * (2 ** min(attempts - 1, 5))
        self._retries[(message.id, target)] = _Retry(message, target, attempts, time.monotonic() + delay)

    async def _retry_loop(self) -> None:
        while True:
            await asyncio.sleep(max(self._retry_s / 4, 0.05))
            now = time.monotonic()
            due = [r for r in self._retries.values() if r.due <= now]
            for r in due:
                self._retries.pop((r.message.id, r.target), None)
                self._spawn(self._translate(r.message, r.target, attempt=r.attempts))

    async def backfill(self, conversation_id: str, target: str, *, authors: frozenset[AuthorKind]) -> None:
        """Translate the recent history into ``target`` (an agent who speaks another language took over)."""
        if not self.enabled:
            return
        conv = await self.store.get_conversation(conversation_id)
        recent = await self.store.messages_after(
            conversation_id, max(conv.last_seq - 100, 0), include_private=False
        )
        for message in recent:
            if message.author.kind in authors:
                self.schedule(message, target)

    @property
    def pending_retries(self) -> int:
        return len(self._retries)
