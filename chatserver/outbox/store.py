"""Outbox queries: enqueue (inside the caller's transaction), claim with a lease, record outcomes.

Claiming is a compare-and-set per row: a row is taken only if it is queued, due and not leased by a
live claim; the claim writes a fresh ``lease_token``. Recording an outcome is fenced by that token, so
a worker whose lease ran out (paused, partitioned) changes nothing: whoever claimed after it owns the
row. A worker that crashes between sending and recording leaves the lease to expire, and the row is
sent once more (at-least-once; receivers dedupe on ``idempotency_key``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from chatserver.errors import NotFound
from chatserver.model.ids import new_id, now_ms
from chatserver.outbox.registry import Delivery, DeliveryState, NewDelivery
from chatserver.store.db import Database
from chatserver.store.schema import outbox


def _delivery(r: Row[Any]) -> Delivery:
    return Delivery(
        id=r.id,
        kind=r.kind,
        idempotency_key=r.idempotency_key,
        payload=r.payload,
        conversation_id=r.conversation_id,
        message_id=r.message_id,
        state=DeliveryState(r.state),
        reason=r.reason,
        attempts=r.attempts,
        next_attempt_at=r.next_attempt_at,
        created_at=r.created_at,
        sent_at=r.sent_at,
    )


def delivery_values(d: NewDelivery, now: int, **override: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": new_id("dl_"),
        "kind": d.kind,
        "idempotency_key": d.idempotency_key,
        "conversation_id": d.conversation_id,
        "message_id": d.message_id,
        "payload": dict(d.payload),
        "state": DeliveryState.QUEUED.value,
        "reason": None,
        "attempts": 0,
        "next_attempt_at": now,
        "lease_token": None,
        "lease_until": None,
        "created_at": now,
        "updated_at": now,
        "sent_at": None,
    }
    values.update(override)
    return values


async def insert_deliveries(conn: AsyncConnection, deliveries: Iterable[dict[str, Any]]) -> None:
    """Write deliveries inside the caller's transaction (the one that commits their cause)."""
    rows = list(deliveries)
    if rows:
        await conn.execute(outbox.insert(), rows)


class OutboxQueries:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def enqueue(self, deliveries: Sequence[NewDelivery]) -> list[str]:
        now = now_ms()
        rows = [delivery_values(d, now) for d in deliveries]
        async with self.db.write() as conn:
            await insert_deliveries(conn, rows)
        return [r["id"] for r in rows]

    async def get(self, delivery_id: str) -> Delivery:
        async with self.db.read() as conn:
            r = (await conn.execute(sa.select(outbox).where(outbox.c.id == delivery_id))).first()
        if r is None:
            raise NotFound("delivery not found")
        return _delivery(r)

    async def deliveries(
        self, *, conversation_id: str | None = None, message_id: str | None = None, limit: int = 200
    ) -> list[Delivery]:
        q = sa.select(outbox).order_by(outbox.c.created_at, outbox.c.id).limit(limit)
        if conversation_id is not None:
            q = q.where(outbox.c.conversation_id == conversation_id)
        if message_id is not None:
            q = q.where(outbox.c.message_id == message_id)
        async with self.db.read() as conn:
            return [_delivery(r) for r in await conn.execute(q)]

    async def claim(
        self, kinds: Iterable[str], *, now: int, lease_ms: int, limit: int
    ) -> list[tuple[Delivery, str]]:
        """Take up to ``limit`` due deliveries of these kinds; each comes with its lease token."""
        kinds = sorted(kinds)
        if not kinds:
            return []
        free = sa.or_(outbox.c.lease_until.is_(None), outbox.c.lease_until < now)
        due = sa.and_(
            outbox.c.state == DeliveryState.QUEUED.value,
            outbox.c.next_attempt_at <= now,
            outbox.c.kind.in_(kinds),
            free,
        )
        async with self.db.read() as conn:
            ids = list(
                await conn.scalars(
                    sa.select(outbox.c.id).where(due).order_by(outbox.c.next_attempt_at).limit(limit)
                )
            )
        claimed: list[tuple[Delivery, str]] = []
        for delivery_id in ids:
            token = new_id("ls_")
            async with self.db.write() as conn:
                res = await conn.execute(
                    outbox.update()
                    .where(outbox.c.id == delivery_id, due)
                    .values(lease_token=token, lease_until=now + lease_ms, updated_at=now)
                )
                if res.rowcount != 1:
                    continue  # another worker took it first
                r = (await conn.execute(sa.select(outbox).where(outbox.c.id == delivery_id))).one()
            claimed.append((_delivery(r), token))
        return claimed

    async def record(
        self,
        delivery_id: str,
        token: str,
        *,
        state: DeliveryState,
        attempts: int,
        reason: str | None,
        next_attempt_at: int | None = None,
        now: int | None = None,
    ) -> Delivery | None:
        """Store an attempt's outcome if ``token`` still holds the lease; None if it was lost."""
        now = now if now is not None else now_ms()
        values: dict[str, Any] = {
            "state": state.value,
            "attempts": attempts,
            "reason": reason,
            "lease_token": None,
            "lease_until": None,
            "updated_at": now,
        }
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        if state is DeliveryState.SENT:
            values["sent_at"] = now
        async with self.db.write() as conn:
            res = await conn.execute(
                outbox.update()
                .where(outbox.c.id == delivery_id, outbox.c.lease_token == token)
                .values(**values)
            )
            if res.rowcount != 1:
                return None
            r = (await conn.execute(sa.select(outbox).where(outbox.c.id == delivery_id))).one()
        return _delivery(r)

    async def advance(self, idempotency_key: str, state: DeliveryState) -> Delivery | None:
        """A receiver reported progress (delivered, read): move forward only, never back."""
        order = [DeliveryState.SENT, DeliveryState.DELIVERED, DeliveryState.READ]
        if state not in order[1:]:
            raise ValueError("only delivered and read are reported by receivers")
        earlier = [s.value for s in order[: order.index(state)]]
        now = now_ms()
        async with self.db.write() as conn:
            res = await conn.execute(
                outbox.update()
                .where(outbox.c.idempotency_key == idempotency_key, outbox.c.state.in_(earlier))
                .values(state=state.value, updated_at=now)
            )
            if res.rowcount != 1:
                return None
            r = (
                await conn.execute(sa.select(outbox).where(outbox.c.idempotency_key == idempotency_key))
            ).one()
        return _delivery(r)
