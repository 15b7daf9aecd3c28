"""Database round trips per conversation change: ``conversation.start``, ``offer.accept`` and
``conversation.close`` each cost a small, fixed number of statements and transactions.

A :class:`~chatserver.store.statements.StatementCounter` on the running server's engine counts what the
acting connection runs (its frame handling, its sender task, the group commit of the system message)
from the frame until the ``pong`` of a ``ping`` sent after the ack: a connection handles its frames in
order and its sender sends in order, so by then everything the frame caused on that connection is done.
The router's share is counted by bench/routing_offer.py --count (its cycles also run on a timer, so a
test cannot pin them down). Counts, not timings: they do not depend on the machine's load.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatserver.store.statements import StatementCounter, Tally, total
from tests.e2e.harness import Client, run_server, seed, settings_for, visitor_token
from tests.services import create_pg_database, drop_pg_database

BUDGET = {
    # (statements, transactions) for the first conversation of the process (inbox and rules not cached)
    "conversation.start": (9, 7),
    "offer.accept": (11, 6),  # one more read transaction when a slow run outlives the 5 s rules cache
    "conversation.close": (8, 4),
}
"""What each costs now plus one statement of headroom for a row written in the change's own transaction
(an outbox row): 8/7, 10/5 and 7/4, on SQLite and PostgreSQL alike. Before the payload, the router's view
and the status writes were batched they were 11/11, 14/9 and 11/9 (docs/benchmarks.md)."""


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of this test's own: in the run's shared PostgreSQL database the router would also offer
    other tests' waiting conversations to this test's agent."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"
        return
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


async def cost(
    counter: StatementCounter, client: Client, session_id: str, frame: dict[str, Any]
) -> tuple[Tally, dict[str, Any]]:
    """What ``frame`` cost the connection, and its ack."""
    before = counter.snapshot()
    ack = await client.request(frame, timeout=15)
    assert ack["type"] == "ack", ack
    ref = await client.send({"type": "ping"})
    await client.next(lambda f: f.get("type") == "pong" and f.get("ref") == ref, timeout=15)
    mine = {f"sender-{session_id}", "message-writer"}
    spent = total(counter.since(before), where=lambda name: name in mine or name.startswith("Task-"))
    return spent, ack


async def test_start_accept_and_close_cost_a_fixed_number_of_round_trips(
    database_url: str, tmp_path: Path, http: httpx.AsyncClient
) -> None:
    s = await seed(database_url)
    settings = settings_for(database_url, tmp_path, routing="offers", offer_timeout_s=120.0)
    async with run_server(settings) as server:
        counter = StatementCounter(server.app.state.ctx.store.db.engine, keep_sql=True).attach()
        try:
            async with Client.connect(f"{server.ws}/ws/agent", token=s.agent_token, origin=None) as bob:
                agent_session = (await bob.expect("hello"))["session_id"]
                await bob.expect("snapshot")
                tok = (await visitor_token(http, server.url, s.inbox_key))["token"]
                async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
                    visitor_session = (await v.expect("hello"))["session_id"]
                    await v.expect("snapshot")
                    start, ack = await cost(counter, v, visitor_session, {"type": "conversation.start"})
                    cid = ack["conversation_id"]
                    offer = await bob.expect("offer", timeout=15, conversation__id=cid)
                    accept, _ = await cost(
                        counter, bob, agent_session, {"type": "offer.accept", "offer_id": offer["offer_id"]}
                    )
                    close, _ = await cost(
                        counter, bob, agent_session, {"type": "conversation.close", "conversation_id": cid}
                    )
                    await v.expect("conversation", conversation__status="resolved", timeout=15)
        finally:
            counter.detach()
    got = {"conversation.start": start, "offer.accept": accept, "conversation.close": close}
    for step, tally in got.items():
        statements, transactions = BUDGET[step]
        assert tally.commits >= 1, (step, tally)  # the change was written (and counted)
        assert tally.statements <= statements, (step, tally, _sql(counter))
        assert tally.begins <= transactions, (step, tally, _sql(counter))


def _sql(counter: StatementCounter) -> list[str]:
    """What ran, for the failure message (the background's too: tell them apart by task)."""
    return [f"{task}: {sql}" for task, sql in counter.sql or ()][-80:]
