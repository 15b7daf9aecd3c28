"""Webhooks (URL, events, secret) and their deliveries, which are outbox rows of kind ``webhook`` keyed
``wh:<webhook id>:<event id>``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row

from chatserver.errors import NotFound
from chatserver.model.ids import new_id, now_ms
from chatserver.outbox.registry import Delivery, DeliveryState
from chatserver.outbox.store import OutboxQueries, _delivery
from chatserver.store.db import Database
from chatserver.store.schema import outbox, webhooks

KIND = "webhook"
EVENTS = (
    "conversation.created",
    "message.created",
    "conversation.status_changed",
    "ticket.updated",
    "csat.submitted",
)


@dataclass(frozen=True, slots=True)
class Webhook:
    id: str
    url: str
    events: tuple[str, ...]
    secret: str
    created_at: int

    def to_wire(self) -> dict[str, Any]:
        from chatserver.model.types import iso

        return {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "created_at": iso(self.created_at),
        }


def _webhook(r: Row[Any]) -> Webhook:
    return Webhook(r.id, r.url, tuple(r.events), r.secret, r.created_at)


def delivery_key(webhook_id: str, event_id: str) -> str:
    return f"wh:{webhook_id}:{event_id}"


class WebhookQueries:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.outbox = OutboxQueries(db)

    async def create(self, url: str, events: Sequence[str], secret: str) -> Webhook:
        webhook_id = new_id("wh_")
        async with self.db.write() as conn:
            await conn.execute(
                webhooks.insert().values(
                    id=webhook_id, url=url, events=list(events), secret=secret, created_at=now_ms()
                )
            )
        return await self.get(webhook_id)

    async def get(self, webhook_id: str) -> Webhook:
        async with self.db.read() as conn:
            r = (
                await conn.execute(
                    sa.select(webhooks).where(webhooks.c.id == webhook_id, webhooks.c.deleted_at.is_(None))
                )
            ).first()
        if r is None:
            raise NotFound("webhook not found")
        return _webhook(r)

    async def all(self) -> list[Webhook]:
        async with self.db.read() as conn:
            found = await conn.execute(
                sa.select(webhooks).where(webhooks.c.deleted_at.is_(None)).order_by(webhooks.c.id)
            )
            return [_webhook(r) for r in found]

    async def delete(self, webhook_id: str) -> None:
        async with self.db.write() as conn:
            res = await conn.execute(
                webhooks.update()
                .where(webhooks.c.id == webhook_id, webhooks.c.deleted_at.is_(None))
                .values(deleted_at=now_ms())
            )
            if res.rowcount != 1:
                raise NotFound("webhook not found")

    async def deliveries(self, webhook_id: str, *, limit: int = 50) -> list[Delivery]:
        """The last deliveries of a webhook, newest first."""
        prefix = delivery_key(webhook_id, "")
        async with self.db.read() as conn:
            found = await conn.execute(
                sa.select(outbox)
                .where(outbox.c.kind == KIND, outbox.c.idempotency_key.startswith(prefix, autoescape=True))
                .order_by(outbox.c.created_at.desc(), outbox.c.id.desc())
                .limit(limit)
            )
            return [_delivery(r) for r in found]

    async def resend(self, webhook_id: str, delivery_id: str) -> Delivery:
        """Send a delivery again (the same event id: receivers dedupe), whatever its state was."""
        found = await self.outbox.get(delivery_id)
        if found.kind != KIND or not found.idempotency_key.startswith(delivery_key(webhook_id, "")):
            raise NotFound("delivery not found")
        now = now_ms()
        async with self.db.write() as conn:
            await conn.execute(
                outbox.update()
                .where(outbox.c.id == delivery_id)
                .values(
                    state=DeliveryState.QUEUED.value,
                    attempts=0,
                    reason="re-sent",
                    next_attempt_at=now,
                    lease_token=None,
                    lease_until=None,
                    updated_at=now,
                    created_at=now,
                )
            )
        return await self.outbox.get(delivery_id)
