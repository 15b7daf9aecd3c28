"""The SLA worker on a real store: each warning and breach once, across a kill and restart; a stale
worker (an older fencing token) emits nothing."""

from __future__ import annotations

from chatserver.model.ids import new_id
from chatserver.model.status import Status
from chatserver.routing.lease import LocalLease
from chatserver.store.store import Store
from chatserver.tickets.model import SYSTEM, Priority, Ticket
from chatserver.tickets.policy import parse_policy
from chatserver.tickets.sla import SlaService, SlaWorker
from chatserver.tickets.store import TicketFilter, TicketQueries

MIN = 60_000


async def make_ticket(store: Store, queries: TicketQueries, subject: str) -> Ticket:
    inbox = (await store.list_inboxes() or [await store.create_inbox("Tickets", "ticket")])[0]
    contact = await store.create_contact(name="Ann", channel="ticket")
    conv = await store.create_conversation(inbox=inbox, contact_id=contact.id, status=Status.RESOLVED)
    return await queries.create(
        subject=subject,
        priority=Priority.HIGH,
        requester_id=contact.id,
        conversation_id=conv.id,
        actor=SYSTEM,
    )


async def test_each_alarm_once_across_a_restart_and_never_from_a_stale_worker(store: Store) -> None:
    queries = TicketQueries(store.db)
    sla = SlaService(store, queries)
    policy = parse_policy(
        new_id("sp_"),
        {
            "name": "High",
            "position": -50,
            "match": {"priority": "high"},
            "targets": {"first_response_s": 3600},
            "warn_before_s": 900,
            "calendar": {"timezone": "UTC"},
        },
    )
    await sla.save_policy(policy, create=True)
    first = await make_ticket(store, queries, "first")
    t0 = first.created_at
    await sla.recompute(first, t0)
    view = await sla.view(first)
    assert view is not None and view["targets"]["first_response"]["due_at"] == t0 + 60 * MIN
    assert first.number not in [t.number for t in await sla.due_tickets(t0)]

    a = SlaWorker(sla, LocalLease(sla.fence_token), None)
    assert await a.lease.refresh()
    assert await a.run_once(t0 + 30 * MIN) == []
    warned = await a.run_once(t0 + 50 * MIN)
    assert [(e.kind, e.target, e.number) for e in warned] == [("warning", "first_response", first.number)]
    assert await a.run_once(t0 + 55 * MIN) == []  # not again

    # a is "killed" (never releases); b takes over with a newer token
    b = SlaWorker(sla, LocalLease(sla.fence_token), None)
    assert await b.lease.refresh()
    assert b.lease.token is not None and a.lease.token is not None and b.lease.token > a.lease.token
    assert await b.run_once(t0 + 56 * MIN) == []  # the warning is not repeated
    second = await make_ticket(store, queries, "second")
    await sla.recompute(second, t0)
    breached = await b.run_once(t0 + 61 * MIN)
    assert sorted((e.kind, e.number) for e in breached) == sorted(
        [("breach", first.number), ("warning", second.number), ("breach", second.number)]
    )
    # the stale worker a wakes up: it can no longer write anything
    third = await make_ticket(store, queries, "third")
    await sla.recompute(third, t0)
    assert await a.run_once(t0 + 120 * MIN) == []
    assert [e["kind"] for e in await sla.emitted(third.id)] == []
    late = await b.run_once(t0 + 120 * MIN)
    assert {(e.kind, e.number) for e in late} >= {("warning", third.number), ("breach", third.number)}

    events = await sla.emitted(first.id)
    assert [(e["kind"], e["target"]) for e in events] == [
        ("warning", "first_response"),
        ("breach", "first_response"),
    ]
    view = await sla.view(await queries.get(first.number))
    assert view is not None and view["breached"] and len(view["events"]) == 2
    page = await queries.search(TicketFilter(breached=True), sort="due", limit=10, cursor=None)
    assert {t.number for t in page.items} >= {first.number, second.number, third.number}
    assert await b.run_once(t0 + 240 * MIN) == []


async def test_pending_pauses_alarms(store: Store) -> None:
    queries = TicketQueries(store.db)
    sla = SlaService(store, queries)
    await sla.save_policy(
        parse_policy(
            new_id("sp_"),
            {
                "name": "all",
                "position": -100,
                "targets": {"resolution_s": 3600},
                "calendar": {"timezone": "UTC"},
            },
        ),
        create=True,
    )
    t = await make_ticket(store, queries, "x")
    from chatserver.tickets.model import Change

    t = await queries.update(t, [Change("status", "new", "pending")], SYSTEM)
    await sla.recompute(t, t.created_at + 2 * 60 * MIN)
    view = await sla.view(t)
    assert view is not None and view["targets"]["resolution"]["paused"] is True
    worker = SlaWorker(sla, LocalLease(sla.fence_token), None)
    await worker.lease.refresh()
    assert await worker.run_once(t.created_at + 3 * 60 * MIN) == []
