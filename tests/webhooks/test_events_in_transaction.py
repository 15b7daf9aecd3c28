"""Webhook events are outbox rows written by the change's own transaction, over SQLite and PostgreSQL:
every store path that changes a conversation's status writes its before/after, messages add their
rows to the batch's one insert, tickets their state as of the change; a change that does not commit
writes no event, and nothing is written (or queried) when no webhook subscribes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event as sa_event

from chatserver.adapterapi.store import AdapterQueries
from chatserver.errors import Conflict, NotFound
from chatserver.model.ids import new_id, now_ms
from chatserver.model.status import Status
from chatserver.model.types import SYSTEM_AUTHOR, Agent, Author, AuthorKind, Conversation, MessageKind, Role
from chatserver.store.changes import NO_EVENTS
from chatserver.store.schema import outbox
from chatserver.store.store import Store
from chatserver.store.writer import PendingMessage
from chatserver.tickets.model import Actor, Change, Priority
from chatserver.tickets.store import TicketQueries
from chatserver.webhooks.service import WebhookService
from chatserver.webhooks.store import KIND, WebhookQueries

ACTOR = Actor("agent", "ag_x", "Ann")


@pytest.fixture
async def hooks(store: Store) -> AsyncIterator[WebhookService]:
    queries = WebhookQueries(store.db)
    for left in await queries.all():  # (PostgreSQL: one database for the session's tests)
        await queries.delete(left.id)
    async with store.db.write() as conn:
        await conn.execute(outbox.delete().where(outbox.c.kind == KIND))
    service = WebhookService(queries, refresh_s=0.05)
    await service.start()
    store.db.changes = service
    try:
        yield service
    finally:
        store.db.changes = NO_EVENTS
        await service.stop()


async def subscribe(hooks: WebhookService, *events: str) -> str:
    hook = await hooks.queries.create("http://127.0.0.1:9/hook", list(events), "s" * 20)
    await hooks.reload()
    return hook.id


async def events(store: Store, webhook_id: str | None = None) -> list[dict[str, Any]]:
    """The webhook events in the outbox (of one webhook). Rows written in the same millisecond have no
    order among them: tests sort by the objects' own order (seq, version)."""
    async with store.db.read() as conn:
        found = list(await conn.execute(sa.select(outbox).where(outbox.c.kind == KIND).order_by(outbox.c.id)))
    return [
        dict(r.payload["event"]) for r in found if webhook_id is None or r.payload["webhook_id"] == webhook_id
    ]


async def _conv(store: Store, status: Status = Status.QUEUED) -> Conversation:
    inbox = await store.create_inbox(f"In {new_id()}")
    contact = await store.create_contact(name="Vera", channel="widget")
    return await store.create_conversation(inbox=inbox, contact_id=contact.id, status=status)


async def _agent(store: Store) -> Agent:
    return await store.create_agent(
        email=f"{new_id()}@x.test", name="Ann", role=Role.AGENT, password_hash=None
    )


@contextmanager
def statements(store: Store) -> Iterator[list[str]]:
    """The SQL statements sent to the database while the block runs (an executemany counts once)."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM webhooks" not in statement:  # (the list's periodic re-read: per CACHE_S, not per change)
            seen.append(statement)

    sa_event.listen(store.db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa_event.remove(store.db.engine.sync_engine, "before_cursor_execute", record)


async def one_batch(store: Store, conv: Conversation, n: int, tag: str) -> None:
    """``n`` messages queued before the writer runs, so they commit in one batch."""
    author = Author(AuthorKind.CONTACT, conv.contact_id, "Vera")
    before = store.writer.batches
    futures = [
        await store.writer.submit(
            PendingMessage(conv.id, author, MessageKind.TEXT, f"{tag}{i}", client_id=f"{tag}{i}")
        )
        for i in range(n)
    ]
    await asyncio.gather(*futures)
    assert store.writer.batches == before + 1


async def test_no_webhook_writes_no_row_and_adds_no_statement(store: Store, hooks: WebhookService) -> None:
    conv = await _conv(store)
    await one_batch(store, conv, 5, "warm")  # (caches warmed)
    store.db.changes = NO_EVENTS  # no webhook service at all
    with statements(store) as none_running:
        await one_batch(store, conv, 5, "a")
        await store.change_conversation(conv.id, Status.RESOLVED)
        await _conv(store)
    store.db.changes = hooks
    with statements(store) as unsubscribed:  # the webhook service running, no webhook
        await one_batch(store, conv, 5, "b")
        await store.change_conversation(conv.id, Status.QUEUED)
        await _conv(store)
    await subscribe(hooks, "ticket.updated")  # someone, but not for messages or conversations
    with statements(store) as others:
        await one_batch(store, conv, 5, "c")
        await store.change_conversation(conv.id, Status.RESOLVED)
        await _conv(store)
    assert len(none_running) == len(unsubscribed) == len(others)
    assert await events(store) == []


async def test_a_batch_of_messages_writes_its_events_in_its_one_insert(
    store: Store, hooks: WebhookService
) -> None:
    conv = await _conv(store)
    await one_batch(store, conv, 5, "warm")
    with statements(store) as before:
        await one_batch(store, conv, 5, "a")
    first = await subscribe(hooks, "message.created")
    second = await subscribe(hooks, "message.created", "csat.submitted")
    with statements(store) as after:
        await one_batch(store, conv, 5, "b")
    assert len(after) == len(before) + 1  # one more statement for the whole batch, not one per message
    assert sum("INSERT INTO outbox" in s for s in after) == 1
    for hook_id in (first, second):
        got = sorted(await events(store, hook_id), key=lambda e: int(e["data"]["seq"]))
        assert [e["data"]["message"]["text"] for e in got] == [f"b{i}" for i in range(5)]
        assert [e["data"]["seq"] for e in got] == [11 + i for i in range(5)]
        assert all(e["type"] == "message.created" and e["data"]["conversation_id"] == conv.id for e in got)
    # the same event (one id) for both webhooks; each row keyed by webhook and event
    assert {e["id"] for e in await events(store, first)} == {e["id"] for e in await events(store, second)}


async def test_notes_and_system_lines_are_not_sent_csat_is(store: Store, hooks: WebhookService) -> None:
    conv = await _conv(store)
    messages_only = await subscribe(hooks, "message.created")
    csat_only = await subscribe(hooks, "csat.submitted")
    tickets_only = await subscribe(hooks, "ticket.updated")
    agent = Author(AuthorKind.AGENT, "ag_1", "Ann")
    await store.append_message(PendingMessage(conv.id, agent, MessageKind.NOTE, "private"))
    await store.append_message(PendingMessage(conv.id, SYSTEM_AUTHOR, MessageKind.EVENT, "Ann joined"))
    said, _ = await store.append_message(PendingMessage(conv.id, agent, MessageKind.TEXT, "Hello"))
    rated, _ = await store.append_message(
        PendingMessage(conv.id, Author(AuthorKind.CONTACT, conv.contact_id, "Vera"), MessageKind.CSAT, "5/5")
    )
    sent = await events(store, messages_only)
    assert [(e["type"], e["data"]["message"]["id"]) for e in sent] == [("message.created", said.id)]
    assert sent[0]["data"]["message"]["text"] == "Hello" and sent[0]["data"]["seq"] == said.seq
    got = await events(store, csat_only)
    assert [(e["type"], e["data"]["message"]["id"]) for e in got] == [("csat.submitted", rated.id)]
    assert got[0]["data"] == {"conversation_id": conv.id, "message": rated.to_wire()}
    assert await events(store, tickets_only) == []


async def test_a_message_that_is_not_stored_has_no_event(store: Store, hooks: WebhookService) -> None:
    await subscribe(hooks, "message.created")
    author = Author(AuthorKind.CONTACT, "ct_x", "Vera")
    with pytest.raises(NotFound):
        await store.append_message(PendingMessage("cv_missing", author, MessageKind.TEXT, "lost"))
    conv = await _conv(store)
    item = PendingMessage(
        conv.id, Author(AuthorKind.CONTACT, conv.contact_id, "V"), MessageKind.TEXT, "x", client_id="k"
    )
    first, dup = await store.append_message(item)
    again, dup2 = await store.append_message(
        PendingMessage(
            conv.id, Author(AuthorKind.CONTACT, conv.contact_id, "V"), MessageKind.TEXT, "x", client_id="k"
        )
    )
    assert (dup, dup2) == (False, True) and again.id == first.id
    assert [e["data"]["message"]["id"] for e in await events(store)] == [first.id]  # a retry is no new event


async def test_every_status_path_writes_its_before_and_after(store: Store, hooks: WebhookService) -> None:
    """The paths of tests/store/test_status_moves.py, plus a bot's handoff: each change that moved the
    status has one event saying from what, with the conversation as the change left it."""
    hook_id = await subscribe(hooks, "conversation.created", "conversation.status_changed")
    agent = await _agent(store)
    token = await store.fence_token() + 1
    later = now_ms() + 60_000
    conv = await _conv(store)
    expected: list[tuple[str, str, int]] = []  # (previous, status, version)

    def moved(after: Conversation | None, previous: Conversation) -> Conversation:
        assert after is not None
        if after.status is not previous.status:
            expected.append((previous.status.value, after.status.value, after.version))
        return after

    conv = moved(await store.offer(conv, agent.id, 5, later, token), conv)
    conv = moved((await store.expire_offer(conv, token) or (None, 0))[0], conv)
    conv = moved(await store.escalate(conv, "no_agent_eligible", token), conv)
    conv = moved(await store.return_to_queue(conv, token), conv)
    conv = moved(await store.offer(conv, agent.id, 5, later, token), conv)
    assert conv.offer_id is not None
    conv = moved(await store.accept_offer(conv.offer_id, agent.id), conv)
    conv = moved(await store.requeue(conv, token), conv)
    conv = moved(await store.offer(conv, agent.id, 5, later, token), conv)
    assert conv.offer_id is not None
    conv = moved(await store.decline_offer(conv.offer_id, agent.id), conv)
    conv = moved(await store.route_again(conv, dict(conv.routing), team=None, skills=None), conv)  # unchanged
    conv = moved(await store.change_conversation(conv.id, Status.ASSIGNED, assignee_id=agent.id), conv)
    assigned = conv
    conv = moved(await store.route_again(conv, dict(conv.routing), team=None, skills={"x": 2}), conv)
    conv = moved(await store.change_conversation(conv.id, Status.RESOLVED), conv)
    # what does not commit writes nothing: an illegal move, a stale compare-and-set, a fenced-off leader
    with pytest.raises(Conflict):
        await store.change_conversation(conv.id, Status.OFFERED)
    assert await store.move_conversation(assigned, Status.QUEUED) is None
    assert await store.escalate(conv, "stale", token - 1) is None
    conv = moved(await store.change_conversation(conv.id, Status.QUEUED), conv)
    bot_conv = await _conv(store, Status.BOT)
    handed = await AdapterQueries(store.db).hand_off(
        bot_conv, {"handoff": {"summary": "wants a human"}}, skills=None, priority=None, team=None
    )
    assert handed.status is Status.QUEUED

    got = await events(store, hook_id)
    created = [e for e in got if e["type"] == "conversation.created"]
    assert {e["data"]["conversation"]["id"]: e["data"]["conversation"]["status"] for e in created} == {
        conv.id: "queued",
        bot_conv.id: "bot",
    }
    changes = [e["data"] for e in got if e["type"] == "conversation.status_changed"]
    mine = sorted(
        (d["previous_status"], d["status"], d["conversation"]["version"])
        for d in changes
        if d["conversation"]["id"] == conv.id
    )
    expected.sort()
    assert mine == expected and len(expected) == 13
    for d in changes:  # each snapshot is the conversation as the change left it
        assert d["conversation"]["status"] == d["status"]
    accepted = next(d for d in changes if d["previous_status"] == "offered" and d["status"] == "assigned")
    assert accepted["conversation"]["assignee"] == {"kind": "agent", "id": agent.id, "name": "Ann"}
    assert accepted["conversation"]["contact"]["name"] == "Vera"
    handoff = next(d for d in changes if d["conversation"]["id"] == bot_conv.id)
    assert (handoff["previous_status"], handoff["status"]) == ("bot", "queued")
    assert handoff["conversation"]["handoff"] == {"summary": "wants a human"}
    assert len({e["id"] for e in got}) == len(got)


async def test_ticket_events_carry_the_ticket_as_of_each_change(store: Store, hooks: WebhookService) -> None:
    q = TicketQueries(store.db)
    conv = await _conv(store)
    other = await _conv(store)
    before = await q.create(
        subject="Late order",
        priority=Priority.NORMAL,
        requester_id=conv.contact_id,
        conversation_id=conv.id,
        actor=ACTOR,
    )
    assert await events(store) == []  # nobody subscribed yet
    hook_id = await subscribe(hooks, "ticket.updated")
    conv_only = await subscribe(hooks, "conversation.status_changed")
    ticket = await q.update(before, [Change("priority", "normal", "high")], ACTOR)
    with pytest.raises(Conflict):  # stale: no change, no event
        await q.update(before, [Change("subject", "Late order", "x")], ACTOR)
    ticket = await q.update(ticket, [Change("status", "new", "open")], ACTOR)
    target = await q.create(
        subject="Same",
        priority=Priority.LOW,
        requester_id=other.contact_id,
        conversation_id=other.id,
        actor=ACTOR,
    )
    source, target = await q.merge(ticket, target, ACTOR)
    got = await events(store, hook_id)
    assert all(e["type"] == "ticket.updated" for e in got)
    by = {(e["data"]["ticket"]["number"], e["data"]["ticket"]["version"]): e["data"]["ticket"] for e in got}
    assert len(got) == 5 and set(by) == {
        (ticket.number, 2),
        (ticket.number, 3),
        (target.number, 1),
        (source.number, 4),
        (target.number, 2),
    }
    assert by[(ticket.number, 2)]["priority"] == "high" and by[(ticket.number, 2)]["status"] == "new"
    assert by[(ticket.number, 3)]["status"] == "open"
    assert (
        by[(source.number, 4)]["status"] == "closed"
        and by[(source.number, 4)]["merged_into"] == target.number
    )
    assert await events(store, conv_only) == []


async def test_the_list_of_webhooks_follows_other_processes(store: Store, hooks: WebhookService) -> None:
    """A webhook made here is seen by the next change; one made elsewhere once the list is read again."""
    conv = await _conv(store)
    elsewhere = WebhookQueries(store.db)  # another process's view of the same database
    hook = await elsewhere.create("http://127.0.0.1:9/x", ["message.created"], "s" * 20)
    async with asyncio.timeout(30):
        while hook.id not in {h.id for h in hooks.webhooks}:  # noqa: ASYNC110 (polls another's list)
            await asyncio.sleep(0.01)
    said, _ = await store.append_message(
        PendingMessage(conv.id, Author(AuthorKind.CONTACT, conv.contact_id, "V"), MessageKind.TEXT, "hi")
    )
    assert [e["data"]["message"]["id"] for e in await events(store, hook.id)] == [said.id]
    await elsewhere.delete(hook.id)
    await hooks.reload()
    assert hooks.webhooks == ()
    await store.append_message(
        PendingMessage(conv.id, Author(AuthorKind.CONTACT, conv.contact_id, "V"), MessageKind.TEXT, "bye")
    )
    assert len(await events(store, hook.id)) == 1  # a deleted webhook gets nothing more
