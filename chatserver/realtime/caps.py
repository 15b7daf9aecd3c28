"""Caps on concurrent WebSockets per identity (a visitor token's contact, an agent) and per client
address, counted in this process. Pure bookkeeping: the endpoints ask before accepting, and release
when the socket ends.

Counting is per process (documented in docs/operations.md): with N web processes behind a balancer
the effective cap is up to N times the setting, which still bounds what one token or address can hold.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Slot:
    """One held connection; give it back with :meth:`ConnectionCaps.release`."""

    key: str


class ConnectionCaps:
    def __init__(self, *, per_identity: int, per_address: int) -> None:
        self.per_identity = per_identity
        self.per_address = per_address
        self._open: Counter[str] = Counter()

    def acquire_address(self, address: str | None) -> Slot | None:
        """A slot for one more socket from ``address`` (None when at the cap). No address (a Unix
        socket) is not capped."""
        return self._acquire(f"addr:{address}", self.per_address) if address else Slot("")

    def acquire_identity(self, identity: str) -> Slot | None:
        return self._acquire(f"id:{identity}", self.per_identity)

    def release(self, slot: Slot | None) -> None:
        if slot is None or not slot.key:
            return
        self._open[slot.key] -= 1
        if self._open[slot.key] <= 0:
            del self._open[slot.key]

    def count(self, key: str) -> int:
        return self._open.get(key, 0)

    def _acquire(self, key: str, cap: int) -> Slot | None:
        if self._open[key] >= cap:
            if not self._open[key]:
                del self._open[key]
            return None
        self._open[key] += 1
        return Slot(key)


__all__ = ["ConnectionCaps", "Slot"]
