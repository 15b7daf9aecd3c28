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
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError, IntegrityError, SQLAlchemyError
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


POOL_TIMEOUT_S = 10.0
"""How long a transaction waits for a pooled connection before it fails as ``unavailable``."""


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An engine with a fixed pool of ``pool_size`` connections.

    No connection is opened beyond the pool: under load a transaction waits for one (a few
    milliseconds) instead. On PostgreSQL, overflow connections were opened and closed by the hundred
    when a burst pushed concurrency past the pool, each costing the server and PostgreSQL a
    connection's setup, which slowed everything down and pushed concurrency further up.
    """
    if url.startswith("sqlite"):
        database = sa.make_url(url).database or ":memory:"
        if database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        return create_async_engine(
            url,
            async_creator=lambda: InlineConnection.open(database),  # sqlite_inline.py: no thread per call
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=POOL_TIMEOUT_S,
        )
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=POOL_TIMEOUT_S,
        connect_args={"server_settings": {"synchronous_commit": "on", "application_name": "chatserver"}},
    )
    _ping_when_idle(engine)
    return engine


IDLE_PING_S = 5.0
"""A pooled PostgreSQL connection idle for longer than this is pinged before it is handed out."""


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Pessimistic disconnect handling that costs nothing under load.

    ``pool_pre_ping`` pings on every checkout: one more round trip per transaction, which under load
    is most of them. A connection that was in use a moment ago is almost certainly alive; one that sat
    in the pool (across a database restart, a network blip, an idle timeout) may not be. So only a
    connection idle for more than :data:`IDLE_PING_S` is pinged, and a dead one is replaced before the
    caller sees it (raising ``DisconnectionError`` in ``checkout`` makes the pool retry with a fresh
    connection). A connection that dies while busy fails that one transaction (``unavailable``), and
    SQLAlchemy then invalidates the rest of the pool's older connections.
    """
    sync_engine = engine.sync_engine
    dialect = sync_engine.dialect

    @event.listens_for(sync_engine, "checkin")
    def checkin(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(sync_engine, "checkout")
    def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since <= IDLE_PING_S:
            return  # new, or used a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:  # any failure means "not this connection"
            raise DisconnectionError("a pooled connection did not answer its ping") from exc


class Database:
    """An engine plus the write discipline: :meth:`write` for transactions that change data."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._write_lock: asyncio.Lock | None = asyncio.Lock() if self.is_sqlite else None
        self._reader: AsyncEngine = (
            engine if self.is_sqlite else engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        """Reads on PostgreSQL run without BEGIN/ROLLBACK: under READ COMMITTED each statement sees
        its own snapshot inside a transaction too, so the two round trips bought nothing."""
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
        """A connection for reading; nothing written through it is guaranteed atomic (use :meth:`write`)."""
        async with _mapped(), self._reader.connect() as conn:
            yield conn

    async def ping(self) -> None:
        async with self.read() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
