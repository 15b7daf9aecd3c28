"""The group commit's statements (chatserver/store/batch_sql.py) over SQLite (driver SQL) and PostgreSQL
(SQLAlchemy Core): what they write reads back the same through the rest of the store, duplicates are
found with everything they stored, and a conflicting row fails only its own message, changing nothing."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from chatserver.errors import StoreError
from chatserver.model.ids import new_id, now_ms
from chatserver.model.system_lines import SystemLine
from chatserver.model.types import SYSTEM_AUTHOR, Author, AuthorKind, MessageKind
from chatserver.store.batch_sql import CoreBatch, SqliteBatch
from chatserver.store.schema import conversations, messages
from chatserver.store.store import Store
from chatserver.store.writer import PendingMessage


async def _conversation(store: Store) -> tuple[str, Author]:
    inbox = await store.create_inbox("Web")
    contact = await store.create_contact(name="Visitor", channel="widget")
    conv = await store.create_conversation(inbox=inbox, contact_id=contact.id)
    return conv.id, Author(AuthorKind.CONTACT, contact.id, contact.name)


def test_each_dialect_gets_its_statements(store: Store) -> None:
    expected = SqliteBatch if store.db.is_sqlite else CoreBatch
    assert isinstance(store.writer._sql, expected)


async def test_a_batch_reads_back_through_the_store(store: Store) -> None:
    conv_id, visitor = await _conversation(store)
    agent = Author(AuthorKind.AGENT, "ag_1", "Ann O'Neil")
    joined = SystemLine.of("agent_joined", name="Anna")
    files = ({"id": "up_1", "name": 'a "b".png', "content_type": "image/png", "size": 3},)
    items = [
        PendingMessage(conv_id, visitor, MessageKind.TEXT, "hällo 😀", client_id="c1", lang="de"),
        PendingMessage(conv_id, agent, MessageKind.NOTE, "private", client_id="c2"),
        PendingMessage(conv_id, agent, MessageKind.TEXT, "", attachments=files, external_id="ext-1"),
        PendingMessage(conv_id, SYSTEM_AUTHOR, MessageKind.EVENT, "Anna joined", event=joined),
    ]
    before = now_ms()
    out = await asyncio.gather(*(store.append_message(i) for i in items))
    assert [m.seq for m, _ in out] == [1, 2, 3, 4] and not any(dup for _, dup in out)
    stored = await store.messages_after(conv_id, 0)
    assert stored == [m for m, _ in out]  # every field as the writer returned it
    assert stored[0].text == "hällo 😀" and stored[0].lang == "de" and stored[0].translations == {}
    assert stored[2].attachments == files and stored[1].attachments == ()
    assert stored[3].event == joined and stored[0].event is None
    conv = await store.get_conversation(conv_id)
    assert conv.last_seq == 4
    async with store.db.read() as conn:
        row = (
            await conn.execute(
                sa.select(conversations.c.last_message_at, conversations.c.first_response_at).where(
                    conversations.c.id == conv_id
                )
            )
        ).one()
        ext = (
            await conn.execute(
                sa.select(messages.c.external_id).where(
                    messages.c.conversation_id == conv_id, messages.c.seq == 3
                )
            )
        ).scalar_one()
    assert row.last_message_at >= before
    assert row.first_response_at == out[2][0].created_at  # the agent's text, not the note
    assert ext == "ext-1"


async def test_a_duplicate_comes_back_with_what_was_stored(store: Store) -> None:
    conv_id, visitor = await _conversation(store)
    files = ({"id": "up_2", "name": "x.pdf", "content_type": "application/pdf", "size": 9},)
    first, _ = await store.append_message(
        PendingMessage(conv_id, visitor, MessageKind.TEXT, "orig", client_id="k", attachments=files)
    )
    await store.record_translation(first.id, "en", text="original", reason=None)
    await store.record_translation(first.id, "fr", text=None, reason="quota")
    again, dup = await store.append_message(
        PendingMessage(conv_id, visitor, MessageKind.TEXT, "resent", client_id="k")
    )
    assert dup and again.id == first.id and again.text == "orig" and again.attachments == files
    assert again.translations == {"en": "original"} and again.untranslated == {"fr": "quota"}


async def test_a_client_id_is_a_duplicate_only_in_its_own_conversation(store: Store) -> None:
    """The idempotency lookup of one batch spans conversations: a client id stored in one conversation
    does not make another conversation's message with that client id a duplicate."""
    (a, va), (b, vb) = await _conversation(store), await _conversation(store)
    await asyncio.gather(
        store.append_message(PendingMessage(a, va, MessageKind.TEXT, "a1", client_id="k1")),
        store.append_message(PendingMessage(b, vb, MessageKind.TEXT, "b2", client_id="k2")),
    )
    out = await asyncio.gather(  # one batch: (a, k2), (b, k1) are new; (a, k1) is the stored one
        store.append_message(PendingMessage(a, va, MessageKind.TEXT, "a2", client_id="k2")),
        store.append_message(PendingMessage(b, vb, MessageKind.TEXT, "b1", client_id="k1")),
        store.append_message(PendingMessage(a, va, MessageKind.TEXT, "again", client_id="k1")),
    )
    assert [(m.text, dup) for m, dup in out] == [("a2", False), ("b1", False), ("a1", True)]
    assert [m.text for m in await store.messages_after(a, 0)] == ["a1", "a2"]
    assert [m.text for m in await store.messages_after(b, 0)] == ["b2", "b1"]


async def test_a_conflicting_row_fails_its_message_alone_and_changes_nothing(store: Store) -> None:
    """A row the writer did not expect (another process's write, seq taken) is a Duplicate inside the
    batch: the batch is retried one by one, the conflicting message fails as unavailable (its sender
    retries), the others commit."""
    bad_conv, visitor = await _conversation(store)
    good_conv, other = await _conversation(store)
    async with store.db.write() as conn:  # seq 1 of bad_conv is taken, but last_seq still says 0
        await conn.execute(
            messages.insert().values(
                id=new_id("msg_"),
                conversation_id=bad_conv,
                seq=1,
                author_kind="contact",
                author_id=visitor.id,
                author_name=visitor.name,
                kind="text",
                text="planted",
                translations={},
                created_at=now_ms(),
            )
        )
    bad, good = await asyncio.gather(
        store.append_message(PendingMessage(bad_conv, visitor, MessageKind.TEXT, "lost", client_id="b")),
        store.append_message(PendingMessage(good_conv, other, MessageKind.TEXT, "kept", client_id="g")),
        return_exceptions=True,
    )
    assert isinstance(bad, StoreError)
    assert not isinstance(good, BaseException) and good[0].seq == 1
    assert (await store.get_conversation(bad_conv)).last_seq == 0
    assert [m.text for m in await store.messages_after(bad_conv, 0)] == ["planted"]
    assert [m.text for m in await store.messages_after(good_conv, 0)] == ["kept"]


@pytest.mark.parametrize("n", [1, 300])
async def test_batches_of_any_size_keep_seq_gapless(store: Store, n: int) -> None:
    conv_id, visitor = await _conversation(store)
    out = await asyncio.gather(
        *(
            store.append_message(PendingMessage(conv_id, visitor, MessageKind.TEXT, str(i), client_id=str(i)))
            for i in range(n)
        )
    )
    assert sorted(m.seq for m, _ in out) == list(range(1, n + 1))
    assert len({m.id for m, _ in out}) == n
    assert [m.seq for m in await store.messages_after(conv_id, 0)] == list(range(1, n + 1))
