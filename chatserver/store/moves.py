"""Conversation status writes: the one way a stored status changes.

:func:`status_update` builds the UPDATE for a :class:`~chatserver.model.status.Move` (legal by
construction): it compares the row's status with the move's sources in the same statement, bumps
``version`` and marks the statement; :func:`versioned_move` is the same for one conversation at a known
version, built once per shape with its values bound. :func:`guard_status_writes` makes the engine
refuse any other UPDATE of ``conversations.status`` (a raw write that would bypass the state machine)
with a ``RawStatusWrite`` error before it reaches the database.
"""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ColumnElement, Update
from sqlalchemy.sql.base import Executable

from chatserver.model.ids import now_ms
from chatserver.model.status import Move
from chatserver.store.schema import conversations

MOVE_OPTION = "status_move"


class RawStatusWrite(RuntimeError):
    """A conversation's status was written without a Move (a programming error, never user input)."""


def status_update(
    conversation_id: str | None, move: Move, *where: ColumnElement[bool], **values: Any
) -> Update:
    """``UPDATE conversations SET status = move.target, version = version + 1, ...`` for one conversation,
    only while its status is one of ``move.sources`` (and ``where`` holds): a compare-and-set whose
    rowcount tells whether it applied. ``conversation_id`` None: ``where`` picks the conversation by a
    unique key of its own (an offer id)."""
    if "status" in values:
        raise RawStatusWrite("the status comes from the move, not from values")
    values.setdefault("updated_at", now_ms())
    values.setdefault("version", conversations.c.version + 1)
    if conversation_id is None and not where:
        raise ValueError("a status write without a conversation id needs a where clause that picks one")
    by_id = () if conversation_id is None else (conversations.c.id == conversation_id,)
    return (
        conversations.update()
        .where(
            *by_id,
            conversations.c.status.in_(move.source_values),
            *where,
        )
        .values(status=move.target.value, **values)
        .execution_options(**{MOVE_OPTION: move})
    )


@functools.cache
def _versioned_move(move: Move, keys: tuple[str, ...]) -> Update:
    return status_update(
        None,
        move,
        conversations.c.id == sa.bindparam("b_id"),
        conversations.c.version == sa.bindparam("b_version"),
        **{k: sa.bindparam(f"v_{k}", type_=conversations.c[k].type) for k in keys},
    ).returning(conversations)


def versioned_move(
    conversation_id: str, version: int, move: Move, values: dict[str, Any]
) -> tuple[Update, dict[str, Any]]:
    """:func:`status_update` of one conversation as of ``version`` (a compare-and-set on it), setting
    ``values`` (``updated_at`` now and ``version`` + 1 unless given), ``RETURNING`` the row: the statement
    and its parameters. The statement is built once per (move, columns set), the values are bound: the
    moves routing and agents make on every conversation cost no statement building. A ``status`` in
    ``values`` raises RawStatusWrite (from :func:`status_update`)."""
    bound = {"updated_at": now_ms(), "version": version + 1, **values}
    params = {"b_id": conversation_id, "b_version": version}
    params.update({f"v_{k}": v for k, v in bound.items()})
    return _versioned_move(move, tuple(sorted(bound))), params


def _writes_status(stmt: Update, params: list[dict[str, Any]]) -> bool:
    keys = {getattr(k, "key", k) for k in (stmt._values or {})}
    for row in stmt._multi_values or ():
        for item in row:
            keys |= {getattr(k, "key", k) for k in item}
    for p in params:
        keys |= set(p)
    return "status" in keys


def _check(
    conn: Connection,
    clause: Executable,
    multiparams: Any,
    params: Any,
    execution_options: Any,
) -> None:
    if not isinstance(clause, Update) or clause.table is not conversations:
        return
    rows: list[dict[str, Any]] = []
    for p in (*(multiparams or ()), params):
        if isinstance(p, dict):
            rows.append(p)
        elif isinstance(p, (list, tuple)):
            rows.extend(x for x in p if isinstance(x, dict))
    if not _writes_status(clause, rows):
        return
    if not isinstance(clause.get_execution_options().get(MOVE_OPTION), Move):
        raise RawStatusWrite("a conversation's status changes only through store.moves.status_update")


def guard_status_writes(engine: AsyncEngine) -> None:
    """Refuse, on this engine, every UPDATE of a conversation's status not built by :func:`status_update`."""
    if not event.contains(engine.sync_engine, "before_execute", _check):
        event.listen(engine.sync_engine, "before_execute", _check)
