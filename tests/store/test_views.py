"""The batched reads behind payloads and ``conversation.start``, the router's one-transaction view, the
short-lived caches and the writes that return the changed row (RETURNING), over SQLite and PostgreSQL."""

from __future__ import annotations

from chatserver.model.ids import new_id, now_ms
from chatserver.model.status import Status
from chatserver.model.types import AuthorKind, Role
from chatserver.routing.config import Rule
from chatserver.store.statements import StatementCounter, total
from chatserver.store.store import Store
from chatserver.tickets.model import SYSTEM, Priority
from chatserver.tickets.store import TicketQueries


async def test_conversation_parts_reads_every_part_of_many_conversations_in_one_transaction(
    store: Store,
) -> None:
    inbox = await store.create_inbox("Views")
    ann = await store.create_contact(name="Ann", channel="widget")
    bob = await store.create_contact(name="Bob", channel="widget")
    agent = await store.create_agent(
        email=f"{new_id()}@x.test", name="Cy", role=Role.AGENT, password_hash=None
    )
    first = await store.create_conversation(inbox=inbox, contact_id=ann.id)
    first = await store.change_conversation(first.id, Status.ASSIGNED, assignee_id=agent.id)
    second = await store.create_conversation(inbox=inbox, contact_id=bob.id)
    await store.set_read(first.id, "contact", ann.id, 0)
    ticket = await TicketQueries(store.db).create(
        subject="Refund", priority=Priority.HIGH, requester_id=bob.id, conversation_id=second.id, actor=SYSTEM
    )
    counter = StatementCounter(store.db.engine).attach()
    try:
        parts = await store.conversation_parts([first, second])
    finally:
        counter.detach()
    spent = total(counter.by_task)
    assert spent.begins == 1 and spent.statements == 2 and spent.commits == 0  # joined parts, cursors
    assert parts[first.id].contact == ann and parts[second.id].contact == bob
    assignee = parts[first.id].assignee
    assert assignee is not None and (assignee.kind, assignee.id, assignee.name) == (
        AuthorKind.AGENT,
        agent.id,
        "Cy",
    )
    assert parts[second.id].assignee is None
    assert parts[first.id].reads == [("contact", ann.id, 0)] and parts[second.id].reads == []
    assert parts[second.id].ticket == {
        "number": ticket.number,
        "status": ticket.status.value,
        "subject": "Refund",
    }
    assert parts[first.id].ticket is None


async def test_conversation_parts_leaves_out_what_the_caller_has(store: Store) -> None:
    inbox = await store.create_inbox("Views")
    ann = await store.create_contact(name="Ann", channel="widget")
    conv = await store.create_conversation(inbox=inbox, contact_id=ann.id)
    counter = StatementCounter(store.db.engine).attach()
    try:
        parts = await store.conversation_parts([conv], skip_contacts=[ann.id], skip_reads=[conv.id])
    finally:
        counter.detach()
    assert total(counter.by_task).statements == 0  # nothing left to read: not even a transaction
    assert parts[conv.id].contact is None and parts[conv.id].reads == [] and parts[conv.id].ticket is None


async def test_the_parts_are_those_of_the_version_the_caller_holds(store: Store) -> None:
    inbox = await store.create_inbox("Views")
    ann = await store.create_contact(name="Ann", channel="widget")
    cy = await store.create_agent(email=f"{new_id()}@x.test", name="Cy", role=Role.AGENT, password_hash=None)
    di = await store.create_agent(email=f"{new_id()}@x.test", name="Di", role=Role.AGENT, password_hash=None)
    conv = await store.create_conversation(inbox=inbox, contact_id=ann.id)
    held = await store.change_conversation(conv.id, Status.ASSIGNED, assignee_id=cy.id)
    await store.change_conversation(conv.id, Status.ASSIGNED, assignee_id=di.id)  # the row moved on
    counter = StatementCounter(store.db.engine).attach()
    try:
        parts = (await store.conversation_parts([held]))[conv.id]
    finally:
        counter.detach()
    assert parts.assignee is not None and parts.assignee.name == "Cy" and parts.contact == ann
    assert total(counter.by_task).statements == 3  # the joined row named Di: Cy read by id


async def test_start_context_finds_the_open_conversation_of_that_inbox_and_the_last_agent(
    store: Store,
) -> None:
    web = await store.create_inbox("Web")
    mail = await store.create_inbox("Mail", "email")
    ann = await store.create_contact(name="Ann", channel="widget")
    agent = await store.create_agent(
        email=f"{new_id()}@x.test", name="Cy", role=Role.AGENT, password_hash=None
    )
    empty = await store.start_context(ann.id, web.id, reuse_open=True)
    assert empty.open_conversation is None and empty.contact == ann and empty.last_agent_id is None
    old = await store.create_conversation(inbox=web, contact_id=ann.id)
    await store.change_conversation(old.id, Status.ASSIGNED, assignee_id=agent.id)
    await store.change_conversation(old.id, Status.RESOLVED)
    in_mail = await store.create_conversation(inbox=mail, contact_id=ann.id)
    known = await store.start_context(ann.id, web.id, reuse_open=True)
    assert known.open_conversation is None  # the open one is in another inbox; the web one is resolved
    assert known.contact == ann and known.last_agent_id == agent.id
    assert (await store.start_context(ann.id, mail.id, reuse_open=True)).open_conversation == in_mail
    fresh = await store.start_context(ann.id, mail.id, reuse_open=False)  # a new email thread
    assert fresh.open_conversation is None and fresh.last_agent_id == agent.id


async def test_writes_return_the_row_as_a_read_would(store: Store) -> None:
    inbox = await store.create_inbox("Views")
    ann = await store.create_contact(name="Ann", channel="widget")
    agent = await store.create_agent(
        email=f"{new_id()}@x.test", name="Cy", role=Role.AGENT, password_hash=None
    )
    conv = await store.create_conversation(inbox=inbox, contact_id=ann.id)
    token = await store.fence_token() + 1
    [offered] = await store.offer_many([(conv, agent.id, 5, now_ms() + 60_000)], token)
    assert offered is not None and offered == await store.get_conversation(conv.id)
    assert offered.offer_id is not None and offered.status is Status.OFFERED
    accepted = await store.accept_offer(offered.offer_id, agent.id)
    assert accepted == await store.get_conversation(conv.id) and accepted.assignee_id == agent.id
    moved = await store.change_conversation(conv.id, Status.RESOLVED, current=accepted)
    assert moved == await store.get_conversation(conv.id) and moved.version == accepted.version + 1
    relabelled = await store.set_conversation_language(conv.id, "de")
    assert relabelled == await store.get_conversation(conv.id) and relabelled.language == "de"
    kinds = [k for c, _, k in await store.assignment_log() if c == conv.id]
    assert kinds == ["offer", "accept"]


async def test_a_stale_current_still_loses_the_compare_and_set(store: Store) -> None:
    inbox = await store.create_inbox("Views")
    ann = await store.create_contact(name="Ann", channel="widget")
    conv = await store.create_conversation(inbox=inbox, contact_id=ann.id)
    await store.set_conversation_language(conv.id, "fr")  # a change the caller has not seen
    assert await store.move_conversation(conv, Status.RESOLVED) is None
    assert (await store.get_conversation(conv.id)).status is Status.QUEUED


async def test_routing_view_reads_everything_in_one_transaction(store: Store) -> None:
    inbox = await store.create_inbox("Views")
    ann = await store.create_contact(name="Ann", channel="widget")
    agent = await store.create_agent(
        email=f"{new_id()}@x.test", name="Cy", role=Role.AGENT, password_hash=None
    )
    team = await store.create_team(f"T{new_id()}", "UTC", None, [])
    await store.set_team_members(team.id, [agent.id])
    queued = await store.create_conversation(inbox=inbox, contact_id=ann.id)
    pending = await store.create_conversation(inbox=inbox, contact_id=ann.id)
    pending = await store.change_conversation(pending.id, Status.PENDING)
    token = await store.fence_token() + 1
    [offered] = await store.offer_many(
        [(await store.create_conversation(inbox=inbox, contact_id=ann.id), agent.id, 5, now_ms() + 60_000)],
        token,
    )
    assert offered is not None
    counter = StatementCounter(store.db.engine).attach()
    try:
        view = await store.routing_view()
    finally:
        counter.detach()
    assert total(counter.by_task).begins == 1
    waiting = {c.id for c in view.waiting}
    assert {queued.id, offered.id} <= waiting and pending.id not in waiting
    assert pending.id in {c.id for c in view.pending}
    assert [c.id for c in view.waiting] == sorted(c.id for c in view.waiting)
    load = next(x for x in view.loads if x.agent.id == agent.id)
    assert load.active == 1 and load.teams == frozenset({team.id})
    assert next(t for t in view.teams if t.id == team.id).members == frozenset({agent.id})
    assert [(x.agent.id, x.active, x.teams) for x in view.loads] == [
        (x.agent.id, x.active, x.teams) for x in await store.agent_loads()
    ]


async def test_cached_rules_and_inbox_follow_this_process_s_own_changes_at_once(store: Store) -> None:
    inbox = await store.create_inbox("Cached")
    assert (await store.get_inbox_cached(inbox.id)).name == "Cached"
    await store.update_inbox(inbox.id, name="Renamed", allowed_origins=None)
    assert (await store.get_inbox_cached(inbox.id)).name == "Renamed"
    before = await store.list_rules_cached()
    rule = Rule(id=new_id("rr_"), name="VIP", skills={"vip": 3})
    await store.save_rule(rule)
    assert rule.id in {r.id for r in await store.list_rules_cached()}
    assert len(await store.list_rules_cached()) == len(before) + 1
    await store.delete_rule(rule.id)
    assert rule.id not in {r.id for r in await store.list_rules_cached()}


async def test_cached_rules_are_read_once_within_their_lifetime(store: Store) -> None:
    await store.list_rules_cached()
    counter = StatementCounter(store.db.engine).attach()
    try:
        for _ in range(5):
            await store.list_rules_cached()
    finally:
        counter.detach()
    assert total(counter.by_task).statements == 0
