"""`chatserver worker` sends what the outbox holds and emits due SLA events, as its own process."""

from __future__ import annotations

import asyncio
from pathlib import Path

from chatserver.model.ids import new_id
from chatserver.model.status import Status
from chatserver.outbox import DeliveryState, NewDelivery, OutboxQueries
from chatserver.outbox.email import EMAIL_KIND, email_payload
from chatserver.store.db import Database, make_engine
from chatserver.store.migrate import upgrade
from chatserver.store.store import Store
from chatserver.tickets.model import SYSTEM, Priority
from chatserver.tickets.policy import parse_policy
from chatserver.tickets.sla import SlaService
from chatserver.tickets.store import TicketQueries
from tests.e2e.harness import run_cli
from tests.outbox.smtp_server import smtp_server


async def test_worker_once_sends_mail_and_emits_sla_events(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'chatserver.db'}"
    engine = make_engine(url)
    await upgrade(engine)
    store = Store(Database(engine))
    queries = TicketQueries(store.db)
    sla = SlaService(store, queries)
    try:
        await sla.save_policy(
            parse_policy(
                new_id("sp_"),
                {"name": "x", "targets": {"first_response_s": 1}, "calendar": {"timezone": "UTC"}},
            ),
            create=True,
        )
        inbox = await store.create_inbox("Tickets", "ticket")
        contact = await store.create_contact(name="Ann", channel="ticket")
        conv = await store.create_conversation(inbox=inbox, contact_id=contact.id, status=Status.RESOLVED)
        ticket = await queries.create(
            subject="x", priority=Priority.LOW, requester_id=contact.id, conversation_id=conv.id, actor=SYSTEM
        )
        await sla.recompute(ticket, ticket.created_at)
        await asyncio.sleep(1.1)  # the first-response target (1 s) has passed
        outbox = OutboxQueries(store.db)
        payload = email_payload(to="ann@example.com", subject="[#1] hi", text="hello", message_id="<w1@x>")
        (delivery_id,) = await outbox.enqueue([NewDelivery(EMAIL_KIND, "<w1@x>", payload)])
        with smtp_server() as smtp:
            env = {"CHATSERVER_DATA_DIR": str(tmp_path), "CHATSERVER_SMTP_URL": smtp.url}
            run_cli(env, "worker", "--once")
            assert [m["Message-ID"] for m in smtp.mailbox.received] == ["<w1@x>"]
            run_cli(env, "worker", "--once")  # nothing twice
            assert len(smtp.mailbox.received) == 1
        assert (await outbox.get(delivery_id)).state is DeliveryState.SENT
        assert [(e["kind"], e["target"]) for e in await sla.emitted(ticket.id)] == [
            ("breach", "first_response")
        ]
    finally:
        await store.close()
