"""The group commit's statements: the idempotency lookup, the conversations' heads (locked), their new
heads and the new messages, once per batch whatever its size.

Two implementations of one small interface, chosen per dialect by :func:`batch_statements`:

- :class:`SqliteBatch` runs them on the driver connection of the writer's SQLAlchemy transaction (the
  same sqlite3 connection, so the same transaction and the same commit or rollback) as fixed SQL text
  with ``executemany``. Through SQLAlchemy Core each of them cost about as much CPU as a whole batch's
  SQLite work (statement construction, cache key, parameter processing per row); this is the
  hot path of every message.
- :class:`CoreBatch` builds them with SQLAlchemy Core (PostgreSQL: ``SELECT ... FOR UPDATE`` in id
  order, so that two processes' batches cannot deadlock).

Both read and write exactly the columns ``chatserver/store/schema.py`` declares (JSON columns as JSON
text on SQLite, as SQLAlchemy's JSON type stores them), and a test runs the store suite over both.
Driver errors are mapped here as ``chatserver/store/db.py`` maps SQLAlchemy's: an integrity violation
is :class:`~chatserver.errors.Duplicate`, anything else :class:`~chatserver.errors.StoreError`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from chatserver.errors import Duplicate, StoreError
from chatserver.model.system_lines import SystemLine
from chatserver.model.types import Author, AuthorKind, Message, MessageKind
from chatserver.store import rows
from chatserver.store.schema import conversations, messages

Head = tuple[int, int | None]
"""A conversation's ``(last_seq, first_response_at)``."""
HeadUpdate = tuple[str, int, int, int | None]
"""``(conversation_id, last_seq, last_message_at, first_response_at)``."""

MESSAGE_COLUMNS = (
    "id",
    "conversation_id",
    "seq",
    "author_kind",
    "author_id",
    "author_name",
    "kind",
    "text",
    "lang",
    "translations",
    "client_id",
    "external_id",
    "attachments",
    "event",
    "created_at",
)
"""The columns a new message row is written with (``untranslated`` starts NULL)."""


class BatchStatements(Protocol):
    async def existing(self, conn: AsyncConnection, keys: Sequence[tuple[str, str]]) -> list[Message]:
        """Stored messages with one of these ``(conversation_id, client_id)`` pairs (or a superset: the
        caller matches the author too)."""
        ...

    async def heads(self, conn: AsyncConnection, conversation_ids: Sequence[str]) -> dict[str, Head]:
        """The conversations' heads, locked until the end of the transaction (ids in sorted order)."""
        ...

    async def update_heads(self, conn: AsyncConnection, updates: Sequence[HeadUpdate]) -> None: ...

    async def insert(self, conn: AsyncConnection, new_rows: Sequence[tuple[Any, ...]]) -> None:
        """New message rows, each a tuple in :data:`MESSAGE_COLUMNS` order (JSON values as Python)."""
        ...


def batch_statements(dialect: str) -> BatchStatements:
    return SqliteBatch() if dialect == "sqlite" else CoreBatch()


class CoreBatch:
    """SQLAlchemy Core statements, built once (any dialect; PostgreSQL in practice)."""

    def __init__(self) -> None:
        self._existing = sa.select(messages).where(
            messages.c.conversation_id.in_(sa.bindparam("b_convs", expanding=True)),
            messages.c.client_id.in_(sa.bindparam("b_clients", expanding=True)),
        )
        self._heads = (
            sa.select(conversations.c.id, conversations.c.last_seq, conversations.c.first_response_at)
            .where(conversations.c.id.in_(sa.bindparam("b_ids", expanding=True)))
            .order_by(conversations.c.id)
            .with_for_update()
        )
        self._update = (
            conversations.update()
            .where(conversations.c.id == sa.bindparam("b_id"))
            .values(
                last_seq=sa.bindparam("b_seq"),
                last_message_at=sa.bindparam("b_at"),
                first_response_at=sa.bindparam("b_first"),
            )
        )
        self._insert = messages.insert()

    async def existing(self, conn: AsyncConnection, keys: Sequence[tuple[str, str]]) -> list[Message]:
        found = await conn.execute(
            self._existing,
            {"b_convs": sorted({c for c, _ in keys}), "b_clients": sorted({k for _, k in keys})},
        )
        return [rows.message(r) for r in found]

    async def heads(self, conn: AsyncConnection, conversation_ids: Sequence[str]) -> dict[str, Head]:
        locked = await conn.execute(self._heads, {"b_ids": list(conversation_ids)})
        return {r.id: (r.last_seq, r.first_response_at) for r in locked}

    async def update_heads(self, conn: AsyncConnection, updates: Sequence[HeadUpdate]) -> None:
        await conn.execute(
            self._update,
            [{"b_id": c, "b_seq": s, "b_at": at, "b_first": first} for c, s, at, first in updates],
        )

    async def insert(self, conn: AsyncConnection, new_rows: Sequence[tuple[Any, ...]]) -> None:
        await conn.execute(self._insert, [dict(zip(MESSAGE_COLUMNS, r, strict=True)) for r in new_rows])


_EXISTING_COLUMNS = (
    "id, conversation_id, seq, author_kind, author_id, author_name, kind, text, created_at, client_id,"
    " lang, translations, untranslated, attachments, event"
)
_UPDATE_HEAD = (
    "UPDATE conversations SET last_seq = ?, last_message_at = ?, first_response_at = ? WHERE id = ?"
)
_INSERT = (
    f"INSERT INTO messages ({', '.join(MESSAGE_COLUMNS)}) VALUES ({', '.join('?' for _ in MESSAGE_COLUMNS)})"
)
_TRANSLATIONS = MESSAGE_COLUMNS.index("translations")
_ATTACHMENTS = MESSAGE_COLUMNS.index("attachments")
_EVENT = MESSAGE_COLUMNS.index("event")


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class SqliteBatch:
    """The same statements as SQL text on the transaction's sqlite3 connection (store/sqlite_inline.py)."""

    async def existing(self, conn: AsyncConnection, keys: Sequence[tuple[str, str]]) -> list[Message]:
        # One index probe per pair. "conversation_id IN (...) AND client_id IN (...)" probes every
        # combination: 50 conversations x 196 client ids is 9,800 probes (2.7 ms) for a full batch,
        # against 196 (0.14 ms) here.
        sql = (
            f"WITH k(c, k) AS (VALUES {', '.join('(?, ?)' for _ in keys)})"
            f" SELECT {_EXISTING_COLUMNS} FROM k CROSS JOIN messages"
            " ON messages.conversation_id = k.c AND messages.client_id = k.k"
        )
        found = await _run(conn, "execute_fetchall", sql, tuple(v for pair in keys for v in pair))
        return [
            Message(
                id=r[0],
                conversation_id=r[1],
                seq=r[2],
                author=Author(AuthorKind(r[3]), r[4], r[5]),
                kind=MessageKind(r[6]),
                text=r[7],
                created_at=r[8],
                client_id=r[9],
                lang=r[10],
                translations=dict(_json(r[11]) or {}),
                untranslated=dict(_json(r[12]) or {}),
                attachments=tuple(_json(r[13]) or ()),
                event=SystemLine.from_stored(_json(r[14])),
            )
            for r in found
        ]

    async def heads(self, conn: AsyncConnection, conversation_ids: Sequence[str]) -> dict[str, Head]:
        # SQLite has one writer at a time (the database's lock, and in process Database.write's lock)
        sql = (
            "SELECT id, last_seq, first_response_at FROM conversations"
            f" WHERE id IN ({_marks(len(conversation_ids))}) ORDER BY id"
        )
        found = await _run(conn, "execute_fetchall", sql, tuple(conversation_ids))
        return {r[0]: (r[1], r[2]) for r in found}

    async def update_heads(self, conn: AsyncConnection, updates: Sequence[HeadUpdate]) -> None:
        params = [(s, at, first, c) for c, s, at, first in updates]
        await _run(conn, "executemany", _UPDATE_HEAD, params)

    async def insert(self, conn: AsyncConnection, new_rows: Sequence[tuple[Any, ...]]) -> None:
        params = []
        for r in new_rows:
            row = list(r)
            translations = row[_TRANSLATIONS]
            row[_TRANSLATIONS] = json.dumps(translations) if translations else "{}"
            for col in (_ATTACHMENTS, _EVENT):
                if row[col] is not None:
                    row[col] = json.dumps(row[col])
            params.append(row)
        await _run(conn, "executemany", _INSERT, params)


async def _run(conn: AsyncConnection, method: str, sql: str, params: Any) -> Any:
    """One statement on the transaction's driver connection (on the event loop's thread, without
    SQLAlchemy's per-statement work), its errors mapped to the store's."""
    try:
        driver = (await conn.get_raw_connection()).driver_connection
        return await getattr(driver, method)(sql, params)
    except sqlite3.IntegrityError as exc:
        raise Duplicate("that conflicts with data already stored") from exc
    except sqlite3.Error as exc:
        raise StoreError(f"the database is unavailable ({type(exc).__name__})") from exc


__all__ = ["MESSAGE_COLUMNS", "BatchStatements", "CoreBatch", "SqliteBatch", "batch_statements"]
