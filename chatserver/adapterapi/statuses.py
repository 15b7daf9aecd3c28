"""Delivery states a custom channel reports for agents' replies (``message.status``), kept where the
built-in channels keep theirs: one outbox row (kind ``adapter``) per reply and adapter.

A reply sent while the adapter had no socket open already has that row (the signed POST to its URL);
a reply it got as a ``delivery`` frame gets one on the first report. States follow the built-in
channels' one rule (:func:`chatserver.channels.receipts.next_state`): forward only (sent -> delivered ->
read), ``failed`` ends it unless it was read; anything else changes nothing. Message history lists the
row in ``deliveries`` and each change is published as ``message.status``, so the console shows a custom
channel's reply like a Telegram one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from chatserver.channels.receipts import next_state
from chatserver.errors import Conflict, Duplicate
from chatserver.model.ids import now_ms
from chatserver.outbox.registry import Delivery, DeliveryState, NewDelivery
from chatserver.outbox.store import OutboxQueries, delivery_values, insert_deliveries
from chatserver.store.db import Database
from chatserver.store.schema import outbox
from chatserver.webhooks.setup import ADAPTER_KIND as KIND

MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class Applied:
    """What a report did: the delivery as it is now, and whether the report changed it. ``early``: the
    delivery is still being POSTed to the adapter (``queued``), so the report waits for that to end."""

    delivery: Delivery
    changed: bool
    early: bool = False


def status_key(adapter_id: str, message_id: str) -> str:
    """The idempotency key of the row a first report creates (one per adapter and message)."""
    return f"adapter-status:{adapter_id}:{message_id}"


class StatusQueries:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.outbox = OutboxQueries(db)

    async def find(self, adapter_id: str, message_id: str) -> Delivery | None:
        """This adapter's delivery of this message (the POST to its URL, or an earlier report's)."""
        for d in await self.outbox.deliveries(message_id=message_id, limit=50):
            if d.kind == KIND and d.payload.get("adapter_id") == adapter_id:
                return d
        return None

    async def apply(
        self,
        adapter_id: str,
        *,
        conversation_id: str,
        message_id: str,
        state: DeliveryState,
        reason: str | None,
    ) -> Applied:
        """Apply one report (a compare-and-set on the stored state; a few tries under contention)."""
        reason = reason[:MAX_REASON] if reason else None
        for _ in range(5):
            current = await self.find(adapter_id, message_id)
            if current is None:
                created = await self._create(adapter_id, conversation_id, message_id, state, reason)
                if created is not None:
                    return Applied(created, True)
                continue  # another report created it at the same time: apply to that one
            target = next_state(current.state, state)
            if target is None:
                return Applied(current, False, early=current.state is DeliveryState.QUEUED)
            now = now_ms()
            values: dict[str, Any] = {"state": target.value, "updated_at": now}
            if target is DeliveryState.FAILED:
                values["reason"] = reason or "the channel reported the message as not delivered"
            async with self.db.write() as conn:
                res = await conn.execute(
                    outbox.update()
                    .where(outbox.c.id == current.id, outbox.c.state == current.state.value)
                    .values(**values)
                )
            if res.rowcount == 1:
                return Applied(await self.outbox.get(current.id), True)
        raise Conflict("the delivery state changed at the same time; report it again")

    async def _create(
        self,
        adapter_id: str,
        conversation_id: str,
        message_id: str,
        state: DeliveryState,
        reason: str | None,
    ) -> Delivery | None:
        """The row of a reply the adapter got over its socket, in the reported state (never ``queued``:
        the outbox worker has nothing to send). None if one appeared meanwhile."""
        now = now_ms()
        new = NewDelivery(
            KIND,
            status_key(adapter_id, message_id),
            {"adapter_id": adapter_id, "via": "socket"},
            conversation_id=conversation_id,
            message_id=message_id,
        )
        failed = state is DeliveryState.FAILED
        values = delivery_values(
            new,
            now,
            state=state.value,
            reason=(reason or "the channel reported the message as not delivered") if failed else None,
            sent_at=now,
        )
        try:
            async with self.db.write() as conn:
                await insert_deliveries(conn, [values])
        except (IntegrityError, Duplicate):
            return None
        return await self.outbox.get(str(values["id"]))


def status_result(applied: Applied) -> dict[str, Any]:
    """What a report answers (the ``ack`` of ``message.status`` and ``POST /api/v1/adapter/statuses``):
    the state stored now, which is not the reported one when the report changed nothing."""
    d = applied.delivery
    return {
        "message_id": d.message_id,
        "delivery_id": d.id,
        "state": d.state.value,
        "reason": d.reason,
        "changed": applied.changed,
    }
