"""SQLite statements on the loop thread (chatserver/store/sqlite_inline.py): another process's write lock
never blocks the event loop, and the write waiting for it goes through once the lock is free."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import sqlalchemy as sa

from chatserver.store.db import Database, make_engine

TABLE = sa.Table("t", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.Text))


async def test_a_write_waits_for_another_process_lock_off_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    db = Database(make_engine(f"sqlite+aiosqlite:///{path}"))
    try:
        async with db.write() as conn:
            await conn.run_sync(TABLE.metadata.create_all)
        other = sqlite3.connect(path, isolation_level=None)  # "another process": its own connection
        other.execute("BEGIN IMMEDIATE")  # holds the write lock
        other.execute("INSERT INTO t (id, v) VALUES (1, 'other')")

        async def write() -> None:
            async with db.write() as conn:
                await conn.execute(TABLE.insert().values(id=2, v="ours"))

        loop = asyncio.get_running_loop()
        started = loop.time()
        writing = asyncio.create_task(write())
        for _ in range(5):  # the loop keeps running while the write waits for the lock
            await asyncio.sleep(0.02)
        # a wait on the loop thread would have frozen it for the 30 s busy timeout: not a speed figure
        assert loop.time() - started < 10 and not writing.done()
        async with db.read() as conn:  # reads do not wait for a writer (WAL)
            assert (await conn.execute(sa.select(sa.func.count()).select_from(TABLE))).scalar() == 0
        other.execute("COMMIT")
        await asyncio.wait_for(writing, 30)
        async with db.read() as conn:
            rows = (await conn.execute(sa.select(TABLE.c.id, TABLE.c.v).order_by(TABLE.c.id))).all()
        assert [tuple(r) for r in rows] == [(1, "other"), (2, "ours")]
        other.close()
    finally:
        await db.dispose()


async def test_a_rolled_back_transaction_leaves_nothing_and_frees_the_lock(tmp_path: Path) -> None:
    db = Database(make_engine(f"sqlite+aiosqlite:///{tmp_path / 'y.db'}"))
    try:
        async with db.write() as conn:
            await conn.run_sync(TABLE.metadata.create_all)
        try:
            async with db.write() as conn:
                await conn.execute(TABLE.insert().values(id=1, v="gone"))
                raise RuntimeError("abort")
        except RuntimeError:
            pass
        async with db.write() as conn:  # the lock is free again
            await conn.execute(TABLE.insert().values(id=2, v="kept"))
        async with db.read() as conn:
            assert (await conn.execute(sa.select(TABLE.c.id))).scalars().all() == [2]
    finally:
        await db.dispose()
