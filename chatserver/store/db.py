"""Engine construction and transactions for SQLite (aiosqlite) and PostgreSQL (asyncpg).

Durability is never traded for speed (guarantee 1): SQLite runs in WAL mode with synchronous=FULL,
PostgreSQL with synchronous_commit=on. SQLite has one writer at a time, so in-process writes are
serialized by an asyncio lock instead of colliding on the database lock; readers never wait (WAL).

This is also the one place where SQLAlchemy and driver errors become the store's own (``raise ... from``):
an integrity violation that reaches the end of a transaction is :class:`~chatserver.errors.Duplicate`
(``conflict``); anything else the database or the connection to it raises is
:class:`~chatserver.errors.StoreError` (``unavailable``). Nothing above the store sees a driver error.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from chatserver.errors import Duplicate, StoreError
from chatserver.store.changes import NO_EVENTS, ChangeEvents
from chatserver.store.sqlite_inline import InlineConnection

DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    SQLAlchemyError,
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)
"""What the database, its drivers and the network under them raise (sqlite3 and asyncpg errors
surface wrapped in SQLAlchemy's, except some raised while connecting)."""


def store_error(exc: BaseException) -> StoreError | Duplicate:
    """The store's error for one SQLAlchemy/driver error."""
    if isinstance(exc, IntegrityError | asyncpg.IntegrityConstraintViolationError):
        return Duplicate("that conflicts with data already stored")
    return StoreError(f"the database is unavailable ({type(exc).__name__})")


@contextlib.asynccontextmanager
async def _mapped() -> AsyncIterator[None]:
    try:
        yield
    except DRIVER_ERRORS as exc:
        raise store_error(exc) from exc


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    if url.startswith("sqlite"):
        database = sa.make_url(url).database or ":memory:"
        if database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        return create_async_engine(
            url,
            async_creator=lambda: InlineConnection.open(database),  # sqlite_inline.py: no thread per call
            pool_size=pool_size,
            max_overflow=0,
        )
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={"server_settings": {"synchronous_commit": "on", "application_name": "chatserver"}},
    )


class Database:
    """An engine plus the write discipline: :meth:`write` for transactions that change data."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._write_lock: asyncio.Lock | None = asyncio.Lock() if self.is_sqlite else None
        self.changes: ChangeEvents = NO_EVENTS
        """Who is told of changes, in their own transactions (store/changes.py; set by the app)."""

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that commits on exit (rolls back on error)."""
        lock = self._write_lock
        if lock is None:
            async with _mapped(), self.engine.begin() as conn:
                yield conn
            return
        async with lock, _mapped(), self.engine.begin() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with _mapped(), self.engine.connect() as conn:
            yield conn

    async def ping(self) -> None:
        async with self.read() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
