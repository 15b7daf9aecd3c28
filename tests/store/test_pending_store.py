"""What routing reads about pending conversations: which are pending (by arrival) and when their
visitor last wrote. Over SQLite and PostgreSQL."""

from __future__ import annotations

from chatserver.model.status import Status
from chatserver.model.types import SYSTEM_AUTHOR, Author, AuthorKind, MessageKind
from chatserver.store.store import Store
from chatserver.store.writer import PendingMessage


async def test_pending_and_the_visitors_last_message(store: Store) -> None:
    inbox = await store.create_inbox("Pending")
    token = await store.fence_token() + 1
    contact = await store.create_contact(name="V", channel="widget")
    first, second, queued = [
        await store.create_conversation(inbox=inbox, contact_id=contact.id) for _ in range(3)
    ]
    for conv in (second, first):
        assert await store.escalate(conv, "no_agent_eligible", token) is not None
    mine = {first.id, second.id, queued.id}  # the PostgreSQL database is shared by the run's other tests
    pending = [c for c in await store.pending() if c.id in mine]
    assert [c.id for c in pending] == [first.id, second.id]  # by arrival
    assert all(c.status is Status.PENDING for c in pending)
    visitor = Author(AuthorKind.CONTACT, contact.id, "V")
    wrote, _ = await store.append_message(PendingMessage(first.id, visitor, MessageKind.TEXT, "hello?"))
    await store.append_message(PendingMessage(first.id, SYSTEM_AUTHOR, MessageKind.EVENT, "later"))
    await store.append_message(PendingMessage(second.id, SYSTEM_AUTHOR, MessageKind.EVENT, "nobody"))
    activity = await store.visitor_activity([first.id, second.id, queued.id])
    assert activity == {first.id: wrote.created_at}  # only what the visitor wrote counts
    assert await store.visitor_activity([]) == {}
