"""Receipts, forward-only delivery states and contact merge on SQLite and PostgreSQL (the run's shared
PostgreSQL database: every query here is scoped to rows this test made)."""

from __future__ import annotations

import pytest

from adapters.base import DeliveryStatus
from chatserver.channels.merge import merge_contacts
from chatserver.channels.receipts import ReceiptQueries
from chatserver.channels.sender import CHANNEL_KIND, reply_payload
from chatserver.errors import Conflict, NotFound
from chatserver.model.ids import new_id
from chatserver.outbox import DeliveryState, NewDelivery, OutboxQueries
from chatserver.store.schema import outbox as outbox_table
from chatserver.store.store import Store


async def sent_delivery(store: Store, inbox_id: str, thread: str, ids: list[str]) -> str:
    outbox = OutboxQueries(store.db)
    payload = reply_payload(inbox_id=inbox_id, to=thread, text="hi")
    (delivery_id,) = await outbox.enqueue([NewDelivery(CHANNEL_KIND, new_id("chr_"), payload)])
    receipts = ReceiptQueries(store.db)
    for i, external_id in enumerate(ids):
        await receipts.record_part(inbox_id, delivery_id, i, external_id, thread)
    async with store.db.write() as conn:  # as the worker records it once the platform accepted it all
        await conn.execute(outbox_table.update().where(outbox_table.c.id == delivery_id).values(state="sent"))
    return delivery_id


async def test_receipts_and_forward_only_states(store: Store) -> None:
    inbox = await store.create_inbox("WA", "whatsapp", (), {"phone_number_id": "1"})
    receipts = ReceiptQueries(store.db)
    tag = new_id("x")
    delivery = await sent_delivery(store, inbox.id, "1555", [f"wamid.{tag}.1", f"wamid.{tag}.2"])
    assert await receipts.sent_parts(delivery) == [f"wamid.{tag}.1", f"wamid.{tag}.2"]
    await receipts.record_part(inbox.id, delivery, 0, f"wamid.{tag}.1", "1555")  # again: no error

    changed, early = await receipts.apply(inbox.id, DeliveryStatus("delivered", 0, f"wamid.{tag}.2"))
    assert [d.state for d in changed] == [DeliveryState.DELIVERED] and not early
    changed, _ = await receipts.apply(inbox.id, DeliveryStatus("read", 0, f"wamid.{tag}.1"))
    assert [d.state for d in changed] == [DeliveryState.READ]
    changed, _ = await receipts.apply(inbox.id, DeliveryStatus("delivered", 0, f"wamid.{tag}.1"))
    assert changed == []
    changed, _ = await receipts.apply(inbox.id, DeliveryStatus("read", 0, "wamid.someone-else"))
    assert changed == []
    other = await store.create_inbox("WA2", "whatsapp", (), {"phone_number_id": "2"})
    assert (await receipts.apply(other.id, DeliveryStatus("failed", 0, f"wamid.{tag}.1")))[0] == []


async def test_watermarks_cover_what_was_sent_to_that_person_before_them(store: Store) -> None:
    inbox = await store.create_inbox("FB", "messenger", (), {"page_id": "P"})
    receipts = ReceiptQueries(store.db)
    psid = new_id("psid")
    first = await sent_delivery(store, inbox.id, psid, [new_id("m_")])
    second = await sent_delivery(store, inbox.id, psid, [new_id("m_")])
    elsewhere = await sent_delivery(store, inbox.id, new_id("psid"), [new_id("m_")])
    changed, _ = await receipts.apply(inbox.id, DeliveryStatus("read", 0, None, psid, 10**15))
    assert sorted(d.id for d in changed) == sorted([first, second])
    assert (await OutboxQueries(store.db).get(elsewhere)).state is DeliveryState.SENT
    assert (await receipts.apply(inbox.id, DeliveryStatus("read", 0, None, None, None)))[0] == []


async def test_a_report_for_a_delivery_still_being_sent_is_early(store: Store) -> None:
    inbox = await store.create_inbox("TG", "telegram", (), {"bot_token": "1:a"})
    outbox = OutboxQueries(store.db)
    payload = reply_payload(inbox_id=inbox.id, to="42", text="hi")
    (delivery,) = await outbox.enqueue([NewDelivery(CHANNEL_KIND, new_id("chr_"), payload)])
    receipts = ReceiptQueries(store.db)
    external_id = new_id("42:")
    await receipts.record_part(inbox.id, delivery, 0, external_id, "42")
    changed, early = await receipts.apply(inbox.id, DeliveryStatus("delivered", 0, external_id))
    assert changed == [] and early
    assert (await outbox.get(delivery)).state is DeliveryState.QUEUED


async def test_merge_moves_everything_or_nothing(store: Store) -> None:
    inbox = await store.create_inbox("TG", "telegram", (), {"bot_token": "1:a"})
    ann = await store.ensure_contact("telegram", new_id("tg"), name="Ann", language="de")
    wa_id = new_id("wa")
    sheena = await store.ensure_contact("whatsapp", wa_id, name="Sheena", phone="+1555")
    conv = await store.create_conversation(inbox=inbox, contact_id=sheena.id)

    for source, into, error in (
        (sheena.id, sheena.id, Conflict),
        (sheena.id, "ct_nobody", NotFound),
        ("ct_nobody", ann.id, NotFound),
    ):
        with pytest.raises(error):
            await merge_contacts(store.db, source, into)
    assert (await store.get_conversation(conv.id)).contact_id == sheena.id

    survivor, moved = await merge_contacts(store.db, sheena.id, ann.id)
    assert (survivor.id, survivor.phone, survivor.language) == (ann.id, "+1555", "de")
    assert moved == [conv.id]
    after = await store.get_conversation(conv.id)
    assert after.contact_id == ann.id and after.version > conv.version
    assert (await store.get_contact(sheena.id)).merged_into == ann.id
    assert (await store.contact_by_identity("whatsapp", wa_id)) == survivor
    assert await store.channel_identity(ann.id, "whatsapp") == (wa_id, None)
    with pytest.raises(Conflict):
        await merge_contacts(store.db, sheena.id, ann.id)  # merged already
    third = await store.ensure_contact("sms", new_id("+1"), name="T")
    with pytest.raises(Conflict):
        await merge_contacts(store.db, third.id, sheena.id)  # into a merged contact
