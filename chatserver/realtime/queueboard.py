"""The waiting queue in brief, for agents who do not watch it conversation by conversation.

A connection that is not watching the queue (a plain agent while routing offers conversations) gets a
compact ``queue`` frame instead: the waiting count per team and the longest wait. One :class:`QueueBoard`
per process recomputes it from the database (one grouped query) when the queue changed, at most once per
``interval_s``, and hands it to this process's agent connections; each connection sends it at most once
per second and only when it differs from what it sent last. The cost of a conversation change is one
flag set, whatever the number of agents online.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from chatserver.errors import StoreError
from chatserver.model.ids import now_ms
from chatserver.model.types import iso

log = logging.getLogger(__name__)

INTERVAL_S = 1.0
"""At most one recomputation (and one ``queue`` frame per connection) per second."""
IDLE_REFRESH_S = 15.0
"""Recomputed this often even without a change seen on the bus (a lost event repairs itself)."""

Counts = Callable[[], Awaitable[list[tuple[str | None, str, int, int]]]]
"""(team, status, count, oldest arrival ms) for every waiting (team, status) pair."""


@dataclass(frozen=True, slots=True)
class TeamQueue:
    team: str | None
    waiting: int
    pending: int
    oldest_at: int


@dataclass(frozen=True, slots=True)
class QueueSummary:
    """The waiting queue per team (``pending``: of those, the ones routing could not place yet)."""

    teams: tuple[TeamQueue, ...]

    @property
    def waiting(self) -> int:
        return sum(t.waiting for t in self.teams)

    @property
    def oldest_at(self) -> int | None:
        return min((t.oldest_at for t in self.teams), default=None)

    def frame(self, now_ms: int) -> dict[str, Any]:
        """The ``queue`` frame (longest waits as of ``now_ms``; ``oldest_at`` lets a client count on)."""

        def wait_s(oldest: int | None) -> float:
            return 0.0 if oldest is None else round(max(0, now_ms - oldest) / 1000, 1)

        oldest = self.oldest_at
        return {
            "type": "queue",
            "waiting": self.waiting,
            "longest_wait_s": wait_s(oldest),
            "oldest_at": iso(oldest),
            "teams": [
                {
                    "team": t.team,
                    "waiting": t.waiting,
                    "pending": t.pending,
                    "longest_wait_s": wait_s(t.oldest_at),
                    "oldest_at": iso(t.oldest_at),
                }
                for t in self.teams
            ],
        }


def summarize(rows: Iterable[tuple[str | None, str, int, int]]) -> QueueSummary:
    """Fold the grouped counts into one entry per team (the team-less queue as ``None``), in team order."""
    by_team: dict[str | None, TeamQueue] = {}
    for team, status, count, oldest in rows:
        known = by_team.get(team)
        pending = count if status == "pending" else 0
        if known is None:
            by_team[team] = TeamQueue(team, count, pending, oldest)
        else:
            by_team[team] = TeamQueue(
                team, known.waiting + count, known.pending + pending, min(known.oldest_at, oldest)
            )
    ordered = sorted(by_team.values(), key=lambda t: (t.team is not None, t.team or ""))
    return QueueSummary(tuple(ordered))


class Watcher(Protocol):
    def queue_summary(self, summary: QueueSummary) -> None: ...


class ThrottledSummary:
    """One connection's ``queue`` frames: at most one per ``interval_s``, and only when it changed (the
    latest summary wins; one pending at a time)."""

    __slots__ = ("_interval_s", "_last", "_latest", "_send", "_sent_at", "_timer")

    def __init__(self, send: Callable[[dict[str, Any]], None], *, interval_s: float = INTERVAL_S) -> None:
        self._send = send
        self._interval_s = interval_s
        self._latest: QueueSummary | None = None
        self._last: QueueSummary | None = None
        self._sent_at = float("-inf")
        self._timer: asyncio.TimerHandle | None = None

    def queue_summary(self, summary: QueueSummary) -> None:
        self._latest = summary
        if self._timer is not None:
            return  # a send is due: it takes the latest
        loop = asyncio.get_running_loop()
        wait = self._sent_at + self._interval_s - loop.time()
        if wait <= 0:
            self._flush()
        else:
            self._timer = loop.call_later(wait, self._flush)

    def _flush(self) -> None:
        self._timer = None
        summary = self._latest
        if summary is None or summary == self._last:
            return
        self._last = summary
        self._sent_at = asyncio.get_running_loop().time()
        self._send(summary.frame(now_ms()))

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class QueueBoard:
    def __init__(self, counts: Counts, *, interval_s: float = INTERVAL_S) -> None:
        self._counts = counts
        self._interval_s = interval_s
        self._watchers: set[Watcher] = set()
        self._dirty = asyncio.Event()
        self.current: QueueSummary | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="queue-board")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def attach(self, watcher: Watcher) -> None:
        """``watcher`` gets the current summary now (if known) and every change from now on."""
        self._watchers.add(watcher)
        if self.current is not None:
            watcher.queue_summary(self.current)
        else:
            self._dirty.set()

    def detach(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)
        if not self._watchers:
            self.current = None  # nobody listens for changes now: recompute for the next one

    @property
    def watchers(self) -> int:
        return len(self._watchers)

    def changed(self) -> None:
        """The queue changed (an event on the queue topic, a bus resync): recompute soon."""
        if self._watchers:
            self._dirty.set()

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE_REFRESH_S):
                    await self._dirty.wait()
            self._dirty.clear()
            if self._watchers:
                try:
                    await self.refresh()
                except StoreError as exc:  # the database is away: the next round tries again
                    log.info("queue summary skipped: %s", exc)
                    self._dirty.set()
                except Exception:
                    log.exception("queue summary failed")
            await asyncio.sleep(self._interval_s)

    async def refresh(self) -> QueueSummary:
        summary = summarize(await self._counts())
        if summary != self.current:
            self.current = summary
            for watcher in list(self._watchers):
                watcher.queue_summary(summary)
        return summary


__all__ = ["QueueBoard", "QueueSummary", "TeamQueue", "ThrottledSummary", "summarize"]
