"""What an engine sends to the database, counted per asyncio task: a diagnostic, off unless attached.

``bench/routing_offer.py --count`` and the round-trip tests (tests/e2e/test_round_trips.py) attach a
:class:`StatementCounter` to the running server's engine and read how many statements and transactions
one operation (``conversation.start``, an offer, ``offer.accept``, ``conversation.close``) costs. Counts
are deterministic where timings are not, so a test can hold them.

A *statement* is one round trip through the driver (an ``executemany`` is one); a *transaction* is one
``BEGIN`` (reads included; SQLAlchemy begins on the first statement of a connection) and a *commit* one
``COMMIT`` (the writes). Statements are grouped by the name of the asyncio task that ran them (the router
is ``router``, the group commit ``message-writer``, a connection's sender ``sender-<session id>``; a
connection's frames are handled in its ASGI task), which is how a caller tells one operation's share from
the background's.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


@dataclass
class Tally:
    statements: int = 0
    begins: int = 0
    commits: int = 0
    verbs: Counter[str] = field(default_factory=Counter)
    """Statements by their first word (SELECT, INSERT, UPDATE, ...)."""

    def add(self, other: Tally) -> None:
        self.statements += other.statements
        self.begins += other.begins
        self.commits += other.commits
        self.verbs.update(other.verbs)

    def minus(self, other: Tally) -> Tally:
        verbs = Counter(self.verbs)
        verbs.subtract(other.verbs)
        return Tally(
            self.statements - other.statements,
            self.begins - other.begins,
            self.commits - other.commits,
            +verbs,
        )

    def copy(self) -> Tally:
        return Tally(self.statements, self.begins, self.commits, Counter(self.verbs))

    def to_json(self) -> dict[str, Any]:
        return {
            "statements": self.statements,
            "transactions": self.begins,
            "commits": self.commits,
            "by_verb": dict(sorted(self.verbs.items())),
        }


def _task_name() -> str:
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop (a synchronous caller)
        return "-"
    return task.get_name() if task is not None else "-"


class StatementCounter:
    """Counts statements, BEGINs and COMMITs on one engine, per asyncio task name, while attached."""

    def __init__(self, engine: AsyncEngine, *, keep_sql: bool = False) -> None:
        self.engine = engine
        self.by_task: dict[str, Tally] = {}
        self.sql: list[tuple[str, str]] | None = [] if keep_sql else None
        """With ``keep_sql``: (task name, statement) of every statement, in order (to see which)."""

    def _tally(self) -> Tally:
        name = _task_name()
        found = self.by_task.get(name)
        if found is None:
            found = self.by_task[name] = Tally()
        return found

    def _on_statement(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        tally = self._tally()
        tally.statements += 1
        if self.sql is not None:
            self.sql.append((_task_name(), " ".join(statement.split())[:160]))
        tally.verbs[statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "?"] += 1

    def _on_begin(self, conn: Any) -> None:
        self._tally().begins += 1

    def _on_commit(self, conn: Any) -> None:
        self._tally().commits += 1

    def attach(self) -> StatementCounter:
        sync = self.engine.sync_engine
        event.listen(sync, "before_cursor_execute", self._on_statement)
        event.listen(sync, "begin", self._on_begin)
        event.listen(sync, "commit", self._on_commit)
        return self

    def detach(self) -> None:
        sync = self.engine.sync_engine
        event.remove(sync, "before_cursor_execute", self._on_statement)
        event.remove(sync, "begin", self._on_begin)
        event.remove(sync, "commit", self._on_commit)

    def snapshot(self) -> dict[str, Tally]:
        return {name: t.copy() for name, t in self.by_task.items()}

    def since(self, before: dict[str, Tally]) -> dict[str, Tally]:
        """What each task ran after ``before`` (a :meth:`snapshot`); tasks that ran nothing left out."""
        out: dict[str, Tally] = {}
        for name, t in self.by_task.items():
            d = t.minus(before.get(name, Tally()))
            if d.statements or d.begins or d.commits:
                out[name] = d
        return out


def total(tallies: dict[str, Tally], *, where: Callable[[str], bool] | None = None) -> Tally:
    """The sum of ``tallies`` (only the task names for which ``where(name)`` is true, if given)."""
    out = Tally()
    for name, t in tallies.items():
        if where is None or where(name):
            out.add(t)
    return out
