"""Which sender delivers which kind of outbox row.

A sender is an async callable taking the :class:`Delivery`; it returns normally when the receiver
accepted it, and raises :class:`~chatserver.errors.TemporaryDeliveryError` (try again later) or
:class:`~chatserver.errors.PermanentDeliveryError` (never). New kinds (channel replies, webhooks) are
registered on the app's registry; the worker needs no change.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


class DeliveryState(enum.StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A delivery to write, in the same transaction as the change that causes it."""

    kind: str
    idempotency_key: str
    """Unique per delivery; receivers dedupe on it (for email, the Message-ID)."""
    payload: Mapping[str, Any]
    conversation_id: str | None = None
    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    kind: str
    idempotency_key: str
    payload: Mapping[str, Any]
    conversation_id: str | None
    message_id: str | None
    state: DeliveryState
    reason: str | None
    attempts: int
    next_attempt_at: int
    created_at: int
    sent_at: int | None = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "conversation_id": self.conversation_id,
            "message_id": self.message_id,
            "state": self.state.value,
            "reason": self.reason,
            "attempts": self.attempts,
            "created_at": self.created_at,
            "sent_at": self.sent_at,
        }


Sender = Callable[[Delivery], Awaitable[None]]


@dataclass
class SenderRegistry:
    """kind -> sender, one per app (never module-level state)."""

    _senders: dict[str, Sender] = field(default_factory=dict)

    def register(self, kind: str, sender: Sender) -> None:
        if kind in self._senders:
            raise ValueError(f"a sender for {kind!r} is already registered")
        self._senders[kind] = sender

    def get(self, kind: str) -> Sender | None:
        return self._senders.get(kind)

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(self._senders)
