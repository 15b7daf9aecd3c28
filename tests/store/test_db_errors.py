"""The database layer maps SQLAlchemy/driver errors to the store's own, over SQLite and PostgreSQL."""

from __future__ import annotations

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
