"""The database layer maps SQLAlchemy/driver errors to the store's own, over SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from chatserver.errors import Conflict, Duplicate, Internal, StoreError, Unavailable, api_error
from chatserver.store.db import Database, make_engine
from chatserver.store.schema import teams
from chatserver.store.store import Store


async def test_an_integrity_violation_is_a_duplicate_conflict(store: Store) -> None:
    row = {"id": "tm_x", "name": "Billing", "timezone": "UTC", "hours": {}, "holidays": [], "created_at": 1}
    async with store.db.write() as conn:
        await conn.execute(teams.insert().values(**row))
    with pytest.raises(Duplicate) as info:
        async with store.db.write() as conn:
            await conn.execute(teams.insert().values(**row))
    assert isinstance(info.value, Conflict) and api_error(info.value).code == "conflict"
    assert isinstance(info.value.__cause__, sa.exc.IntegrityError)
    # and the store's own message where it knows the meaning
    with pytest.raises(Conflict, match="exists"):
        await store.create_team("Billing", "UTC", {}, [])


async def test_other_database_errors_are_store_errors(store: Store) -> None:
    with pytest.raises(StoreError) as info:
        async with store.db.read() as conn:
            await conn.execute(sa.text("SELECT * FROM no_such_table"))
    assert isinstance(info.value.__cause__, sa.exc.SQLAlchemyError)
    assert api_error(info.value).code == "unavailable"


async def test_an_unreachable_database_is_a_store_error_and_unavailable() -> None:
    db = Database(make_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none", pool_size=1))
    try:
        with pytest.raises(StoreError) as info:
            await db.ping()
        err = api_error(info.value)
        assert isinstance(err, Unavailable) and err.status == 503
    finally:
        await db.dispose()


def test_api_error_passes_api_errors_through_and_hides_bugs() -> None:
    conflict = Conflict("taken")
    assert api_error(conflict) is conflict
    bug = api_error(ZeroDivisionError("oops"))
    assert isinstance(bug, Internal) and bug.message == "internal error"


async def _backend_pid(db: Database) -> int:
    async with db.read() as conn:
        return int((await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one())


async def test_a_pooled_connection_that_died_while_idle_is_replaced_unseen(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL restarted, or a proxy cut an idle connection: the next transaction gets a live one."""
    db = Database(make_engine(pg_url, pool_size=1))
    try:
        first = await _backend_pid(db)
        assert await _backend_pid(db) == first  # the pool hands the same connection back
        other = Database(make_engine(pg_url, pool_size=1))
        try:
            async with other.write() as conn:
                killed = await conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
                assert killed.scalar_one() is True
        finally:
            await other.dispose()
        monkeypatch.setattr("chatserver.store.db.IDLE_PING_S", 0.0)  # it has been idle "long enough"
        replaced = await _backend_pid(db)  # no error reaches the caller
        assert replaced != first
        async with db.write() as conn:
            assert (await conn.execute(sa.text("SELECT 1"))).scalar_one() == 1
    finally:
        await db.dispose()


async def test_a_connection_that_died_in_use_fails_that_transaction_only(pg_url: str) -> None:
    """Used a moment ago, so not pinged: the transaction that finds it dead is ``unavailable``, the next
    one gets a fresh connection."""
    db = Database(make_engine(pg_url, pool_size=1))
    try:
        first = await _backend_pid(db)
        other = Database(make_engine(pg_url, pool_size=1))
        try:
            async with other.write() as conn:
                await conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        finally:
            await other.dispose()
        with pytest.raises(StoreError):
            await _backend_pid(db)
        assert await _backend_pid(db) != first
    finally:
        await db.dispose()


async def test_reads_on_postgresql_open_no_transaction_and_writes_still_do(pg_url: str) -> None:
    """A transaction id taken by one statement is still assigned at the next one only inside a
    transaction block: each read statement runs on its own (no BEGIN ... ROLLBACK round trips)."""
    take, still = sa.text("SELECT txid_current()"), sa.text("SELECT txid_current_if_assigned()")
    db = Database(make_engine(pg_url, pool_size=1))
    try:
        async with db.read() as conn:
            await conn.execute(take)
            assert (await conn.execute(still)).scalar_one() is None
        async with db.write() as conn:
            taken = (await conn.execute(take)).scalar_one()
            assert (await conn.execute(still)).scalar_one() == taken
    finally:
        await db.dispose()


async def test_the_pool_is_fixed_a_burst_waits_for_a_connection_instead_of_opening_one(pg_url: str) -> None:
    db = Database(make_engine(pg_url, pool_size=2))
    pid_of = sa.text("SELECT pg_backend_pid()")
    try:
        held = [await db.engine.connect() for _ in range(2)]
        pids = [(await conn.execute(pid_of)).scalar_one() for conn in held]
        waiting = asyncio.create_task(_backend_pid(db))
        await asyncio.sleep(0.2)
        assert not waiting.done()  # no third connection was opened for it
        await held[0].close()
        assert await asyncio.wait_for(waiting, 5) == pids[0]  # it got the one given back
        await held[1].close()
    finally:
        await db.dispose()
