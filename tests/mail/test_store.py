"""The email channel's queries for outgoing mail, over SQLite and PostgreSQL: the thread's chain (what
References are made of), our own Message-IDs and the per-sender count of automatic mail."""

from __future__ import annotations

import uuid

from chatserver.mail.config import parse_email_config
from chatserver.mail.store import MailStore
from chatserver.model.ids import now_ms
from chatserver.outbox import NewDelivery, OutboxQueries
from chatserver.outbox.email import EMAIL_KIND
from chatserver.store.store import Store


async def _thread(store: Store, mail: MailStore, address: str) -> tuple[str, str]:
    inbox = await mail.create_email_inbox("Support", parse_email_config(address=address))
    contact = await store.create_contact(name="Ann", channel="email")
    conv = await store.create_conversation(inbox=inbox, contact_id=contact.id)
    await mail.create_thread(conv.id, inbox.id, uuid.uuid4().hex[:20], "Hi", f"ann-{inbox.id}@example.org")
    return inbox.id, conv.id


async def received(mail: MailStore, inbox_id: str, cid: str, rfc: str) -> None:
    await mail.begin_email(
        inbox_id=inbox_id, rfc_message_id=rfc, conversation_id=cid, sender="ann@example.org",
        subject="Hi", thread_kind="new", loop={}, attachments=[], problems=[], raw_path=None, source="smtp",
    )  # fmt: skip


async def test_the_chain_holds_received_and_queued_mail_in_order(store: Store) -> None:
    mail = MailStore(store.db)
    outbox = OutboxQueries(store.db)
    domain = f"{uuid.uuid4().hex[:8]}.example"
    inbox_id, cid = await _thread(store, mail, f"support@{domain}")
    await received(mail, inbox_id, cid, "first@example.org")
    for rfc, queued in (("chat.a@x", True), ("chat.lost@x", False), ("chat.b@x", True)):
        await mail.record_outgoing(
            inbox_id=inbox_id,
            conversation_id=cid,
            rfc_message_id=rfc,
            sender="s",
            subject="Hi",
            automatic=False,
        )
        if queued:
            await outbox.enqueue([NewDelivery(EMAIL_KIND, f"<{rfc}>", {}, conversation_id=cid)])
    await received(mail, inbox_id, cid, "answer@example.org")
    # the reply whose message was never committed (no outbox row) is not part of the thread
    assert await mail.thread_chain(cid) == ["first@example.org", "chat.a@x", "chat.b@x", "answer@example.org"]
    assert await mail.thread_chain(cid, limit=2) == ["first@example.org", "chat.b@x", "answer@example.org"]
    assert await mail.is_own_message_id("chat.lost@x") and not await mail.is_own_message_id(
        "first@example.org"
    )
    assert await mail.count_emails(inbox_id) == 2  # received mail only
    # and replies to our Message-IDs find the conversation
    assert await mail.conversations_for_message_ids(inbox_id, ["chat.a@x"]) == {"chat.a@x": cid}


async def test_automatic_mail_is_counted_per_recipient(store: Store) -> None:
    mail = MailStore(store.db)
    domain = f"{uuid.uuid4().hex[:8]}.example"
    inbox_id, cid = await _thread(store, mail, f"support@{domain}")
    thread = await mail.thread(cid)
    assert thread is not None
    since = now_ms() - 1000
    for automatic in (True, True, False):
        await mail.record_outgoing(
            inbox_id=inbox_id, conversation_id=cid, rfc_message_id=f"chat.{uuid.uuid4().hex}@x",
            sender="s", subject="Hi", automatic=automatic,
        )  # fmt: skip
    assert len(await mail.automatic_sent_at(thread.contact_address, since)) == 2
    assert await mail.automatic_sent_at("someone-else@example.org", since) == []
    assert await mail.automatic_sent_at(thread.contact_address, now_ms() + 1000) == []
