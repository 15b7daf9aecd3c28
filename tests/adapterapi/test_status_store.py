"""Custom channels' delivery states in the outbox table, over SQLite and PostgreSQL: the first report
makes the row, later ones move it forward only, two first reports at once make one row, a row still
being POSTed (queued) waits, and each adapter has its own row."""

from __future__ import annotations

import asyncio

from chatserver.adapterapi.statuses import StatusQueries
from chatserver.outbox.registry import DeliveryState, NewDelivery
from chatserver.outbox.store import OutboxQueries
from chatserver.store.store import Store
from chatserver.webhooks.setup import ADAPTER_KIND

S = DeliveryState


async def test_reports_make_one_row_and_move_it_forward_only(store: Store) -> None:
    q = StatusQueries(store.db)

    async def report(
        state: DeliveryState, adapter: str = "ad_1", reason: str | None = None
    ) -> tuple[str, bool]:
        applied = await q.apply(
            adapter, conversation_id="cv_1", message_id="msg_1", state=state, reason=reason
        )
        return applied.delivery.state.value, applied.changed

    first, second = await asyncio.gather(
        q.apply("ad_1", conversation_id="cv_1", message_id="msg_1", state=S.SENT, reason=None),
        q.apply("ad_1", conversation_id="cv_1", message_id="msg_1", state=S.SENT, reason=None),
    )
    assert first.delivery.id == second.delivery.id and [first.changed, second.changed].count(True) == 1
    assert await report(S.DELIVERED) == ("delivered", True)
    assert await report(S.SENT) == ("delivered", False)
    assert await report(S.READ) == ("read", True)
    assert await report(S.FAILED, reason="blocked") == ("read", False)
    rows = await OutboxQueries(store.db).deliveries(message_id="msg_1")
    assert [(d.kind, d.state, d.payload["adapter_id"]) for d in rows] == [(ADAPTER_KIND, S.READ, "ad_1")]

    # another adapter serving the same inbox has its own row; failed keeps the reason
    assert await report(S.FAILED, adapter="ad_2", reason="x" * 600) == ("failed", True)
    rows = await OutboxQueries(store.db).deliveries(message_id="msg_1")
    other = next(d for d in rows if d.payload["adapter_id"] == "ad_2")
    assert other.reason == "x" * 500 and len(rows) == 2
    # no state leaves failed
    assert await report(S.READ, adapter="ad_2") == ("failed", False)


async def test_a_report_on_a_delivery_still_being_posted_waits(store: Store) -> None:
    outbox = OutboxQueries(store.db)
    [posting] = await outbox.enqueue(
        [NewDelivery(ADAPTER_KIND, "adapter:dv_1", {"adapter_id": "ad_1"}, "cv_1", "msg_2")]
    )
    q = StatusQueries(store.db)
    applied = await q.apply(
        "ad_1", conversation_id="cv_1", message_id="msg_2", state=S.DELIVERED, reason=None
    )
    assert applied.early and not applied.changed and applied.delivery.id == posting
    assert (await outbox.get(posting)).state is S.QUEUED  # the worker's claim is not disturbed
