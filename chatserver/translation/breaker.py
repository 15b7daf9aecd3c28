"""A circuit breaker: pure state, the clock passed in.

::

    CLOSED --(failure_threshold consecutive failures)--> OPEN
    OPEN   --(cooldown_s elapsed; allow() lets one probe through)--> HALF_OPEN
    HALF_OPEN --(probe succeeds)--> CLOSED
    HALF_OPEN --(probe fails)--> OPEN (cool-down starts again)

While OPEN, and while the HALF_OPEN probe is out, ``allow`` says no: an outage costs
one timeout per cool-down instead of one per message.
"""

from __future__ import annotations

import enum

__all__ = ["BreakerState", "CircuitBreaker"]


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(self, *, failure_threshold: int = 5, cooldown_s: float = 30.0) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        if cooldown_s < 0:
            raise ValueError("cooldown_s must be >= 0")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self.times_opened = 0

    def state(self, now: float) -> BreakerState:
        """The state as seen at ``now``; an OPEN breaker whose cool-down is over reads HALF_OPEN."""
        if self._state is BreakerState.OPEN and now >= self._opened_at + self.cooldown_s:
            return BreakerState.HALF_OPEN
        return self._state

    def would_allow(self, now: float) -> bool:
        """Whether :meth:`allow` would say yes, without taking the half-open probe."""
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            return now >= self._opened_at + self.cooldown_s
        return False  # HALF_OPEN: the probe is out

    def allow(self, now: float) -> bool:
        """Ask to send one request; in HALF_OPEN only the first asker (the probe) gets a yes."""
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN and now >= self._opened_at + self.cooldown_s:
            self._state = BreakerState.HALF_OPEN
            return True
        return False

    def record_success(self, now: float) -> None:
        self._state = BreakerState.CLOSED
        self._failures = 0

    def record_failure(self, now: float) -> None:
        if self._state is BreakerState.HALF_OPEN:
            self._open(now)
            return
        self._failures += 1
        if self._state is BreakerState.CLOSED and self._failures >= self.failure_threshold:
            self._open(now)

    def _open(self, now: float) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = now
        self._failures = 0
        self.times_opened += 1
