"""The SLA clock, pure: a business-hours calendar, a ticket's history and ``now`` in; due times and
breaches out. No I/O, no system clock.

- A :class:`Calendar` is a time zone, weekly opening hours (``mon`` … ``sun`` -> ``[["09:00", "17:00"]]``,
  ``None`` = always open) and holiday dates (closed all day). Intervals are local wall-clock times, so a
  DST change moves them in UTC, as it moves the team's day.
- Targets: ``first_response`` (from creation until the first public agent reply), ``next_response``
  (from a customer's message that is not answered yet until the next agent reply), ``resolution``
  (from creation until solved). Each counts business seconds only, and none while the ticket is
  ``pending`` or ``on_hold`` (paused).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TARGETS = ("first_response", "next_response", "resolution")
PAUSED = frozenset({"pending", "on_hold"})
DONE = frozenset({"solved", "closed"})
MAX_DAYS = 3 * 366
"""How far ahead a due time is searched; a calendar open less than that never comes due."""


@dataclass(frozen=True, slots=True)
class Calendar:
    timezone: str = "UTC"
    hours: Mapping[str, Sequence[tuple[str, str]]] | None = None
    holidays: frozenset[str] = frozenset()

    def _zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def open_intervals(self, day: date) -> list[tuple[int, int]]:
        """The day's opening intervals as epoch-ms [start, end), in order."""
        zone = self._zone()
        if day.isoformat() in self.holidays:
            return []
        if self.hours is None:
            spans: Sequence[tuple[str, str]] = (("00:00", "24:00"),)
        else:
            spans = self.hours.get(DAYS[day.weekday()], ())
        out = []
        for start, end in spans:
            a = _local_ms(day, start, zone)
            b = _local_ms(day, end, zone)
            if b > a:
                out.append((a, b))
        return sorted(out)

    def _days_from(self, at_ms: int) -> date:
        return datetime.fromtimestamp(at_ms / 1000, UTC).astimezone(self._zone()).date() - timedelta(days=1)

    def business_ms(self, start_ms: int, end_ms: int) -> int:
        """Open time between two instants."""
        if end_ms <= start_ms:
            return 0
        if self.hours is None and not self.holidays:
            return end_ms - start_ms
        total = 0
        day = self._days_from(start_ms)
        while True:
            intervals = self.open_intervals(day)
            if intervals and intervals[0][0] >= end_ms:
                break
            for a, b in intervals:
                lo, hi = max(a, start_ms), min(b, end_ms)
                if hi > lo:
                    total += hi - lo
            day += timedelta(days=1)
            if _day_start(day, self._zone()) >= end_ms:
                break
        return total

    def add_business_ms(self, start_ms: int, amount_ms: int) -> int | None:
        """The instant when ``amount_ms`` of open time has passed after ``start_ms`` (None: never)."""
        if amount_ms <= 0:
            return start_ms
        if self.hours is None and not self.holidays:
            return start_ms + amount_ms
        left = amount_ms
        day = self._days_from(start_ms)
        for _ in range(MAX_DAYS):
            for a, b in self.open_intervals(day):
                lo = max(a, start_ms)
                if b <= lo:
                    continue
                if b - lo >= left:
                    return lo + left
                left -= b - lo
            day += timedelta(days=1)
        return None


def _local_ms(day: date, clock: str, zone: ZoneInfo) -> int:
    if clock == "24:00":
        return _day_start(day + timedelta(days=1), zone)
    hour, minute = (int(x) for x in clock.split(":"))
    local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
    return int(local.timestamp() * 1000)


def _day_start(day: date, zone: ZoneInfo) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Targets:
    first_response_s: int | None = None
    next_response_s: int | None = None
    resolution_s: int | None = None

    def get(self, name: str) -> int | None:
        value: int | None = getattr(self, f"{name}_s")
        return value


@dataclass(frozen=True, slots=True)
class History:
    """What the clock needs to know about one ticket."""

    created_at: int
    statuses: Sequence[tuple[int, str]]
    """(at, status) for every status the ticket entered, starting with its first."""
    first_response_at: int | None = None
    waiting_since: int | None = None
    """The customer's oldest message not yet answered by an agent (after the first response)."""
    last_response_at: int | None = None
    """The agent reply that answered the previous wait (for next_response met times)."""
    solved_at: int | None = None


@dataclass(frozen=True, slots=True)
class TargetState:
    target: str
    started_at: int
    """Which cycle this is (next_response starts anew with every unanswered customer message)."""
    due_at: int | None
    """None while paused (or if the calendar never opens)."""
    remaining_ms: int
    met_at: int | None
    breached: bool
    paused: bool

    def to_wire(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "started_at": self.started_at,
            "due_at": self.due_at,
            "remaining_s": self.remaining_ms / 1000,
            "met_at": self.met_at,
            "breached": self.breached,
            "paused": self.paused,
        }


@dataclass(frozen=True, slots=True)
class SlaState:
    targets: dict[str, TargetState] = field(default_factory=dict)

    @property
    def breached(self) -> bool:
        return any(t.breached for t in self.targets.values())


def _paused_spans(history: History, now: int) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    ordered = sorted(history.statuses)
    for i, (at, status) in enumerate(ordered):
        end = ordered[i + 1][0] if i + 1 < len(ordered) else now
        if status in PAUSED and end > at:
            spans.append((at, end))
    return spans


def _running(start: int, end: int, paused: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """[start, end) minus the paused spans."""
    out: list[tuple[int, int]] = []
    cursor = start
    for a, b in paused:
        if b <= cursor or a >= end:
            continue
        if a > cursor:
            out.append((cursor, a))
        cursor = max(cursor, b)
    if cursor < end:
        out.append((cursor, end))
    return out


def _target(
    cal: Calendar,
    name: str,
    start: int,
    amount_s: int,
    met_at: int | None,
    paused: Sequence[tuple[int, int]],
    now: int,
    paused_now: bool,
) -> TargetState:
    amount = amount_s * 1000
    stop = met_at if met_at is not None else now
    used = sum(cal.business_ms(a, b) for a, b in _running(start, stop, paused))
    remaining = max(amount - used, 0)
    if met_at is not None:
        due = _due_through(cal, start, amount, paused, met_at)
        breached = used > amount or (due is not None and met_at > due)
        return TargetState(name, start, due, remaining, met_at, breached, False)
    if paused_now:
        return TargetState(name, start, None, remaining, None, used >= amount, True)
    due = _due_through(cal, start, amount, paused, now)
    breached = due is not None and now >= due
    return TargetState(name, start, due, remaining, None, breached, False)


def _due_through(
    cal: Calendar, start: int, amount: int, paused: Sequence[tuple[int, int]], horizon: int
) -> int | None:
    """The due time: walk the running spans up to ``horizon``, then continue (unpaused) after it."""
    left = amount
    for a, b in _running(start, horizon, paused):
        seg = cal.business_ms(a, b)
        if seg >= left:
            return cal.add_business_ms(a, left)
        left -= seg
    return cal.add_business_ms(max(horizon, start), left)


def compute(cal: Calendar, targets: Targets, history: History, now: int) -> SlaState:
    """Every active target's due time, remaining time and breach state at ``now``."""
    paused = _paused_spans(history, now)
    current = sorted(history.statuses)[-1][1] if history.statuses else "new"
    paused_now = current in PAUSED
    out: dict[str, TargetState] = {}
    first = targets.get("first_response")
    if first is not None:
        out["first_response"] = _target(
            cal,
            "first_response",
            history.created_at,
            first,
            history.first_response_at,
            paused,
            now,
            paused_now,
        )
    nxt = targets.get("next_response")
    if nxt is not None and history.first_response_at is not None and history.waiting_since is not None:
        out["next_response"] = _target(
            cal, "next_response", history.waiting_since, nxt, None, paused, now, paused_now
        )
    resolution = targets.get("resolution")
    if resolution is not None:
        met = history.solved_at if current in DONE else None
        out["resolution"] = _target(
            cal, "resolution", history.created_at, resolution, met, paused, now, paused_now
        )
    return SlaState(out)


@dataclass(frozen=True, slots=True)
class Alarm:
    """An SLA event due now: ``kind`` warning or breach of ``target`` (in its cycle ``started_at``)."""

    kind: str
    target: str
    started_at: int
    due_at: int


def alarms(state: SlaState, *, warn_before_s: int, now: int) -> list[Alarm]:
    """The warning and breach events whose time has come (the worker emits each one once)."""
    out = []
    for t in state.targets.values():
        if t.met_at is not None or t.due_at is None:
            continue
        if warn_before_s > 0 and now >= t.due_at - warn_before_s * 1000:
            out.append(Alarm("warning", t.target, t.started_at, t.due_at))
        if now >= t.due_at:
            out.append(Alarm("breach", t.target, t.started_at, t.due_at))
    return out


def next_alarm_at(state: SlaState, *, warn_before_s: int, emitted: set[tuple[str, str, int]]) -> int | None:
    """When the worker should look at this ticket next (None: nothing pending)."""
    times = []
    for t in state.targets.values():
        if t.met_at is not None or t.due_at is None:
            continue
        if warn_before_s > 0 and ("warning", t.target, t.started_at) not in emitted:
            times.append(t.due_at - warn_before_s * 1000)
        if ("breach", t.target, t.started_at) not in emitted:
            times.append(t.due_at)
    return min(times) if times else None
