"""Delivery states of channel replies: the platform ids of what was sent, and the platforms' reports.

Every part of a reply a platform accepts is recorded at once (``channel_receipts``: inbox, platform id,
delivery, part number, recipient), before the next part is sent: a retry skips what is recorded, and a
status callback (WhatsApp ``statuses``, Messenger ``delivery``/``read`` watermarks, Twilio) finds its
delivery by the platform id, or by recipient and time for a watermark.

:func:`next_state` is the one rule, pure: states only move forward (sent -> delivered -> read); a
platform's ``failed`` after it accepted a message (WhatsApp, Twilio ``undelivered``) ends the delivery as
failed with the platform's reason, unless it was already read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from adapters.base import DeliveryStatus
from chatserver.errors import Duplicate, NotFound
from chatserver.model.ids import now_ms
from chatserver.outbox.registry import Delivery, DeliveryState
from chatserver.outbox.store import OutboxQueries
from chatserver.store.db import Database
from chatserver.store.schema import channel_receipts, outbox

RANK = {DeliveryState.SENT: 1, DeliveryState.DELIVERED: 2, DeliveryState.READ: 3}


def next_state(current: DeliveryState, reported: DeliveryState) -> DeliveryState | None:
    """The state after a platform reported ``reported`` for a delivery in ``current``; None: no change.

    A delivery still ``queued`` (being sent: the report overtook the worker's record) or already
    ``failed`` is left alone, and nothing moves backwards."""
    if current not in RANK:
        return None
    if reported is DeliveryState.FAILED:
        return None if current is DeliveryState.READ else DeliveryState.FAILED
    if reported in RANK and RANK[reported] > RANK[current]:
        return reported
    return None


class ReceiptQueries:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.outbox = OutboxQueries(db)

    async def sent_parts(self, delivery_id: str) -> list[str]:
        """The platform ids of the parts already sent for this delivery, in order."""
        r = channel_receipts.c
        async with self.db.read() as conn:
            found = await conn.execute(
                sa.select(r.part, r.external_id).where(r.delivery_id == delivery_id).order_by(r.part)
            )
            parts = list(found)
        ids: list[str] = []
        for part, external_id in parts:
            if part != len(ids):
                break  # a gap cannot happen (parts are recorded in order); stop at the first
            ids.append(external_id)
        return ids

    async def record_part(
        self, inbox_id: str, delivery_id: str, part: int, external_id: str, thread: str
    ) -> None:
        values: dict[str, Any] = {
            "inbox_id": inbox_id,
            "external_id": external_id or f"{delivery_id}:{part}",  # a platform that returned no id
            "delivery_id": delivery_id,
            "part": part,
            "thread": thread[:200],
            "sent_at": now_ms(),
        }
        try:
            async with self.db.write() as conn:
                await conn.execute(channel_receipts.insert().values(**values))
        except (IntegrityError, Duplicate):
            pass  # recorded already (a resend the platform deduplicated)

    async def remember_text(self, delivery: Delivery, text: str) -> None:
        """Keep the text of the first attempt (a translation), so a retry sends the rest of the same text."""
        payload = {**delivery.payload, "sent_text": text}
        async with self.db.write() as conn:
            await conn.execute(
                outbox.update().where(outbox.c.id == delivery.id).values(payload=payload, updated_at=now_ms())
            )

    async def deliveries_for(self, inbox_id: str, status: DeliveryStatus) -> list[str]:
        """The deliveries a report is about: by platform id, or (a watermark) everything sent to the
        recipient up to the watermark."""
        r = channel_receipts.c
        q = sa.select(r.delivery_id).where(r.inbox_id == inbox_id).distinct()
        if status.external_id is not None:
            q = q.where(r.external_id == status.external_id)
        elif status.thread is not None and status.watermark_ms is not None:
            q = q.where(r.thread == status.thread, r.sent_at <= status.watermark_ms)
        else:
            return []
        async with self.db.read() as conn:
            return list(await conn.scalars(q.limit(1000)))

    async def apply(self, inbox_id: str, status: DeliveryStatus) -> tuple[list[Delivery], bool]:
        """Apply one report: the deliveries whose state changed (to publish), and whether the report is
        about a delivery still being sent (its worker has not recorded ``sent`` yet: apply it again
        later, see :class:`~chatserver.channels.inbound.Inbound`)."""
        changed: list[Delivery] = []
        early = False
        reported = DeliveryState(status.state)
        for delivery_id in await self.deliveries_for(inbox_id, status):
            moved = await self._move(delivery_id, reported, status.reason)
            if isinstance(moved, Delivery):
                changed.append(moved)
            elif moved is DeliveryState.QUEUED and reported is not DeliveryState.SENT:
                early = True
        return changed, early

    async def _move(
        self, delivery_id: str, reported: DeliveryState, reason: str | None
    ) -> Delivery | DeliveryState | None:
        """Compare-and-set: the state changes only from the one the decision was made on. The changed
        delivery; or, when nothing changed, its state (None when it is gone)."""
        for _ in range(3):
            try:
                current = await self.outbox.get(delivery_id)
            except NotFound:
                return None
            target = next_state(current.state, reported)
            if target is None:
                return current.state
            values: dict[str, Any] = {"state": target.value, "updated_at": now_ms()}
            if target is DeliveryState.FAILED:
                values["reason"] = (reason or "the platform reported the message as not delivered")[:500]
            async with self.db.write() as conn:
                res = await conn.execute(
                    outbox.update()
                    .where(outbox.c.id == delivery_id, outbox.c.state == current.state.value)
                    .values(**values)
                )
            if res.rowcount == 1:
                return await self.outbox.get(delivery_id)
        return None

    async def states_for(self, message_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """The outbound deliveries of these messages as message history shows them (any kind)."""
        if not message_ids:
            return {}
        o = outbox.c
        q = (
            sa.select(o.id, o.message_id, o.kind, o.state, o.reason)
            .where(o.message_id.in_(list(message_ids)))
            .order_by(o.created_at, o.id)
        )
        out: dict[str, list[dict[str, Any]]] = {}
        async with self.db.read() as conn:
            for r in await conn.execute(q):
                out.setdefault(r.message_id, []).append(
                    {"id": r.id, "kind": r.kind, "state": r.state, "reason": r.reason}
                )
        return out

    async def apply_all(
        self, inbox_id: str, statuses: Sequence[DeliveryStatus]
    ) -> tuple[list[Delivery], list[DeliveryStatus]]:
        """Apply the reports: the changed deliveries, and the reports that came too early."""
        changed: list[Delivery] = []
        early: list[DeliveryStatus] = []
        for status in statuses:
            moved, too_early = await self.apply(inbox_id, status)
            changed += moved
            if too_early:
                early.append(status)
        return changed, early
