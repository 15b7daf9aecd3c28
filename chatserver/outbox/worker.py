"""The outbox worker: claims due deliveries, hands each to its kind's sender, records the outcome.

Any number of workers may run (every ``chatserver serve`` in embedded mode, and ``chatserver
worker``): a row is sent by the one that holds its lease (see :mod:`chatserver.outbox.store`). Each
state change is published as a :class:`~chatserver.model.events.DeliveryEvent` on the conversation's
topic, which agents receive as ``message.status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

from chatserver.errors import DeliveryError, TemporaryDeliveryError
from chatserver.model.events import DeliveryEvent, Event, conversation_topic
from chatserver.model.ids import now_ms
from chatserver.outbox.backoff import Fail, after_failure
from chatserver.outbox.registry import Delivery, DeliveryState, SenderRegistry
from chatserver.outbox.store import OutboxQueries

log = logging.getLogger(__name__)

Publish = Callable[[list[tuple[str, Event]]], None]


def delivery_event(d: Delivery) -> list[tuple[str, Event]]:
    if d.conversation_id is None:
        return []
    event = DeliveryEvent(d.conversation_id, d.message_id, d.id, d.kind, d.state.value, d.reason)
    return [(conversation_topic(d.conversation_id), event)]


class OutboxWorker:
    def __init__(
        self,
        queries: OutboxQueries,
        registry: SenderRegistry,
        publish: Publish | None,
        *,
        retry_s: float,
        max_attempts: int,
        lease_s: float = 120.0,
        poll_s: float = 1.0,
        batch: int = 20,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.queries = queries
        self.registry = registry
        self.publish = publish
        self.retry_s = retry_s
        self.max_attempts = max_attempts
        self.lease_ms = int(lease_s * 1000)
        self.poll_s = poll_s
        self.batch = batch
        self._jitter = jitter
        self.max_attempts_by_kind: dict[str, int] = {}
        """Kinds retried longer than ``max_attempts`` (webhooks: for a day)."""
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        self.failed = 0
        self.retried = 0

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="outbox-worker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        """Something was enqueued: look now rather than at the next poll."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                busy = await self.run_once()
            except Exception:
                log.exception("outbox cycle failed")
                busy = 0
            if busy >= self.batch:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_s):
                    await self._wake.wait()
            self._wake.clear()

    async def run_once(self) -> int:
        """Claim and attempt what is due now; returns how many were attempted."""
        claimed = await self.queries.claim(
            self.registry.kinds, now=now_ms(), lease_ms=self.lease_ms, limit=self.batch
        )
        if claimed:
            await asyncio.gather(*(self._attempt(d, token) for d, token in claimed))
        return len(claimed)

    async def _attempt(self, d: Delivery, token: str) -> None:
        sender = self.registry.get(d.kind)
        attempts = d.attempts + 1
        error: DeliveryError | None = None
        if sender is None:  # unregistered since the claim: leave it for a worker that has one
            error = TemporaryDeliveryError(f"no sender for {d.kind}")
        else:
            try:
                await sender(d)
            except DeliveryError as exc:
                error = exc
            except Exception as exc:  # a sender bug must not lose the delivery: retry it
                log.exception("sender for %s raised", d.kind)
                error = TemporaryDeliveryError(f"sender error: {type(exc).__name__}")
        if error is None:
            recorded = await self.queries.record(
                d.id, token, state=DeliveryState.SENT, attempts=attempts, reason=None
            )
            self.sent += 1
        else:
            now = now_ms()
            decision = after_failure(
                error,
                attempts=attempts,
                max_attempts=self.max_attempts_by_kind.get(d.kind, self.max_attempts),
                now_ms=now,
                base_s=self.retry_s,
                jitter=self._jitter(),
            )
            if isinstance(decision, Fail):
                recorded = await self.queries.record(
                    d.id,
                    token,
                    state=DeliveryState.FAILED,
                    attempts=attempts,
                    reason=decision.reason,
                    now=now,
                )
                self.failed += 1
                log.warning("delivery %s (%s) failed: %s", d.id, d.kind, decision.reason)
            else:
                recorded = await self.queries.record(
                    d.id,
                    token,
                    state=DeliveryState.QUEUED,
                    attempts=attempts,
                    reason=decision.reason,
                    next_attempt_at=decision.at_ms,
                    now=now,
                )
                self.retried += 1
                log.info("delivery %s (%s) will retry: %s", d.id, d.kind, decision.reason)
        if recorded is None:
            log.warning("delivery %s: lease lost before the outcome was recorded", d.id)
            return
        if self.publish is not None:
            items = delivery_event(recorded)
            if items:
                self.publish(items)

    def stats(self) -> dict[str, int]:
        return {"sent": self.sent, "failed": self.failed, "retried": self.retried}
