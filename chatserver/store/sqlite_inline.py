"""SQLite statements on the event loop's own thread; the waits and the fsync on a worker thread.

aiosqlite runs every call on a thread of its own: a statement, its fetch, the cursor's creation and its
close are each a hop there and back (a queue put, a thread wake-up, a loop wake-up through the self-pipe).
For the small indexed reads and writes a chat server makes, those hops cost ten times the statement: about
240 us of CPU per statement against 25 us for the statement itself (``bench/writer.py`` and the
routing benchmark measure the difference end to end).

So :class:`InlineConnection` offers the part of aiosqlite's interface SQLAlchemy's aiosqlite dialect uses,
and runs statements directly on the calling (event loop) thread. Only what may wait goes to a worker thread:

- ``COMMIT``: its fsync (``synchronous=FULL``) is the slow part of a durable write.
- A statement that finds the database busy is retried there with the full timeout, instead of sleeping on
  the event loop. In-process writers take turns (the store's write lock), so this happens when another
  process writes the same file (``chatserver worker``, a CLI command), or, rarely in WAL mode, when a read
  meets another connection recovering the WAL index.

A transaction's first write is preceded by ``BEGIN IMMEDIATE``, which takes the write lock up front (or,
busy, waits for it on the worker thread), so the statements that follow never wait for it.

On the loop thread the connection's busy timeout is 0, so nothing there ever sleeps on a lock. The sqlite3
connection is opened with ``check_same_thread=False``; it is never used by two threads at once, because a
caller awaits the worker's result before its next statement (SQLAlchemy's per-connection execute mutex,
and the store's write lock for writes).

Transactions are this module's, not the sqlite3 module's: the connection runs in autocommit mode
(``isolation_level=None``) and a write statement outside a transaction begins one, as the sqlite3 module's
legacy mode did (which also left reads outside transactions: each read sees the latest commit).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

BUSY_TIMEOUT_MS = 30_000
"""How long a worker-thread call waits for another connection's lock (as aiosqlite's ``timeout=30``)."""

_READ_ONLY = frozenset({"SELECT", "PRAGMA", "EXPLAIN", "VALUES"})
_CONTROL = frozenset({"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"})
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")

_executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sqlite-wait")
"""Shared by every connection: only the calls that may wait (lock, fsync) run here."""


def _writes(sql: str) -> bool:
    """Whether a statement may write (and so must run in a transaction holding the write lock).
    Conservative: anything not plainly read-only counts as a write."""
    head = sql.lstrip()[:16].split(None, 1)
    first = head[0].upper() if head else ""
    if first == "WITH":
        upper = sql.upper()
        return any(w in upper for w in _WRITES)
    return first not in _READ_ONLY and first not in _CONTROL


def _busy(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class InlineCursor:
    """aiosqlite's cursor interface over a sqlite3 cursor."""

    __slots__ = ("_cursor", "_owner")

    def __init__(self, owner: InlineConnection, cursor: sqlite3.Cursor) -> None:
        self._owner = owner
        self._cursor = cursor

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Any = ()) -> InlineCursor:
        await self._owner._run(self._cursor.execute, sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> InlineCursor:
        await self._owner._run(self._cursor.executemany, sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class InlineConnection:
    """The part of ``aiosqlite.Connection`` SQLAlchemy's aiosqlite dialect and the store use."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn  # opened in autocommit mode (isolation_level=None): transactions are ours
        self._connection: sqlite3.Connection | None = conn  # what the dialect checks; None once closed

    @classmethod
    async def open(cls, path: str) -> InlineConnection:
        """Open ``path`` (on the worker thread: switching to WAL may wait) with the store's settings:
        WAL, ``synchronous=FULL`` (durability is never traded for speed), foreign keys on."""

        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False, isolation_level=None
            )
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA foreign_keys=ON")
                conn.execute("PRAGMA busy_timeout=0")
            except BaseException:
                conn.close()
                raise
            return conn

        return cls(await _off_loop(connect))

    # -- the calls that may wait ------------------------------------------------------------------

    def _waiting(self, fn: Callable[..., T], *args: Any) -> T:
        """On the worker thread: ``fn`` with the full busy timeout."""
        conn = self._conn
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        try:
            return fn(*args)
        finally:
            conn.execute("PRAGMA busy_timeout=0")

    async def _run(self, fn: Callable[..., T], sql: str, parameters: Any) -> T:
        if not self._conn.in_transaction and _writes(sql):
            await self._run(self._execute, "BEGIN IMMEDIATE", ())
        try:
            return fn(sql, parameters)
        except sqlite3.OperationalError as exc:
            if not _busy(exc):
                raise
        return await _off_loop(self._waiting, fn, sql, parameters)

    def _execute(self, sql: str, parameters: Any) -> sqlite3.Cursor:
        return self._conn.execute(sql, parameters)

    # -- aiosqlite's interface --------------------------------------------------------------------

    def cursor(self) -> InlineCursor:
        """A cursor (aiosqlite's is entered with ``async with``, which is how the dialect takes it)."""
        return InlineCursor(self, self._conn.cursor())

    async def execute(self, sql: str, parameters: Any = ()) -> InlineCursor:
        return await self.cursor().execute(sql, parameters)

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> InlineCursor:
        return await self.cursor().executemany(sql, parameters)

    async def execute_fetchall(self, sql: str, parameters: Any = ()) -> list[Any]:
        cursor = await self.execute(sql, parameters)
        try:
            return cursor._cursor.fetchall()
        finally:
            cursor._cursor.close()

    async def commit(self) -> None:
        if self._conn.in_transaction:
            await _off_loop(self._waiting, self._conn.execute, "COMMIT")

    async def rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    async def close(self) -> None:
        if self._connection is None:
            return
        self._connection = None
        await _off_loop(self._conn.close)

    def stop(self) -> None:
        """Terminate (the dialect's force close): close now, on this thread."""
        self._connection = None
        self._conn.close()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    @property
    def isolation_level(self) -> str | None:
        return None


async def _off_loop(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on the worker thread. A call there cannot be stopped, so a cancelled caller waits for
    it to end before the cancellation goes on: nothing else uses the connection while it runs (a rollback
    on the loop thread during a commit on the worker)."""
    fut = asyncio.get_running_loop().run_in_executor(_executor, fn, *args)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        await asyncio.wait({fut})
        raise


__all__ = ["InlineConnection"]
