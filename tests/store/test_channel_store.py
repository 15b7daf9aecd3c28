"""Channel queries on SQLite and PostgreSQL: identities, dedupe by platform id, polling cursors."""

from __future__ import annotations

import asyncio

from chatserver.model.types import Author, AuthorKind, MessageKind
from chatserver.store.store import Store
from chatserver.store.writer import PendingMessage


async def test_inbox_config_round_trips(store: Store) -> None:
    inbox = await store.create_inbox("Bot", "telegram", (), {"bot_token": "1:a", "mode": "polling"})
    assert (await store.get_inbox(inbox.id)).config == {"bot_token": "1:a", "mode": "polling"}
    widget = await store.create_inbox("Web")
    assert (await store.get_inbox(widget.id)).config == {}


async def test_ensure_contact_is_one_contact_per_identity(store: Store) -> None:
    made = await asyncio.gather(
        *(store.ensure_contact("telegram", "42", name="Ann", language="de") for _ in range(5))
    )
    assert len({c.id for c in made}) == 1
    again = await store.ensure_contact("telegram", "42", name="Other", phone="+49123")
    assert (again.id, again.name, again.language, again.phone) == (made[0].id, "Ann", "de", "+49123")
    assert (await store.contact_by_identity("telegram", "42")) == again
    assert await store.contact_by_identity("whatsapp", "42") is None


async def test_identity_last_inbound_moves_forward_in_steps(store: Store) -> None:
    contact = await store.ensure_contact("whatsapp", "1555", name="S")
    assert await store.channel_identity(contact.id, "whatsapp") == ("1555", None)
    await store.ensure_contact("whatsapp", "1555", name="S", inbound_at_ms=200_000)
    await store.ensure_contact("whatsapp", "1555", name="S", inbound_at_ms=100_000)  # older: kept
    assert await store.channel_identity(contact.id, "whatsapp") == ("1555", 200_000)
    await store.ensure_contact("whatsapp", "1555", name="S", inbound_at_ms=230_000)  # < a minute later
    assert await store.channel_identity(contact.id, "whatsapp") == ("1555", 200_000)
    await store.ensure_contact("whatsapp", "1555", name="S", inbound_at_ms=260_000)
    assert await store.channel_identity(contact.id, "whatsapp") == ("1555", 260_000)
    assert await store.channel_identity(contact.id, "sms") is None
    fresh = await store.ensure_contact("whatsapp", "1666", name="T", inbound_at_ms=5_000)
    assert await store.channel_identity(fresh.id, "whatsapp") == ("1666", 5_000)


async def test_message_by_external_id_is_per_inbox(store: Store) -> None:
    a = await store.create_inbox("A", "sms", (), {"account_sid": "x"})
    b = await store.create_inbox("B", "sms", (), {"account_sid": "y"})
    contact = await store.ensure_contact("sms", "+1", name="C")
    conv = await store.create_conversation(inbox=a, contact_id=contact.id)
    author = Author(AuthorKind.CONTACT, contact.id, "C")
    stored, _ = await store.append_message(
        PendingMessage(conv.id, author, MessageKind.TEXT, "hi", client_id="ext:1", external_id="SM1")
    )
    found = await store.message_by_external_id(a.id, "SM1")
    assert found is not None and found.id == stored.id
    assert await store.message_by_external_id(b.id, "SM1") is None
    assert await store.message_by_external_id(a.id, "SM2") is None


async def test_channel_cursor_never_moves_back(store: Store) -> None:
    inbox = await store.create_inbox("Bot", "telegram", (), {"bot_token": "1:a"})
    assert await store.channel_cursor(inbox.id) is None
    await store.set_channel_cursor(inbox.id, 10)
    await store.set_channel_cursor(inbox.id, 5)
    assert await store.channel_cursor(inbox.id) == 10
    await store.set_channel_cursor(inbox.id, 11)
    assert await store.channel_cursor(inbox.id) == 11
