"""Time-ordered, URL-safe identifiers (48-bit milliseconds + 80 random bits, Crockford base32).

Within a process they are strictly increasing: an id made in the same millisecond as the last one (or
after the clock stepped back) continues after it, by a random step, so lists ordered by id are in
creation order.
"""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
"""Two characters per 10 bits: 13 lookups per id instead of 26 (ids are made for every message)."""


def _encode(value: int) -> str:
    """26 base32 characters of a 130-bit value, most significant first."""
    p = _PAIRS
    return "".join(
        (
            p[(value >> 120) & 1023],
            p[(value >> 110) & 1023],
            p[(value >> 100) & 1023],
            p[(value >> 90) & 1023],
            p[(value >> 80) & 1023],
            p[(value >> 70) & 1023],
            p[(value >> 60) & 1023],
            p[(value >> 50) & 1023],
            p[(value >> 40) & 1023],
            p[(value >> 30) & 1023],
            p[(value >> 20) & 1023],
            p[(value >> 10) & 1023],
            p[value & 1023],
        )
    )


_lock = threading.Lock()
_last = 0
"""The last value handed out by this process."""


def _issue(values: list[int]) -> list[int]:
    """Hand out ``values`` (ascending). If they are not past the last one handed out (the same
    millisecond, a clock stepped back), they continue after it by random steps of at most 2**32."""
    global _last
    with _lock:
        if values[0] <= _last:
            step = _last
            for i, v in enumerate(values):
                step += 1 + (v & 0xFFFFFFFF)
                values[i] = step
        _last = values[-1]
    return values


def new_id(prefix: str = "") -> str:
    """A 26-character id that sorts by creation time (to the millisecond, then by creation order)."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return prefix + _encode(_issue([value])[0])


def new_ids(prefix: str, n: int) -> list[str]:
    """``n`` increasing ids of the same millisecond (one clock read, one random read): a commit batch's
    messages."""
    if n <= 0:
        return []
    ms = int(time.time() * 1000) << 80
    rand = os.urandom(10 * n)
    values = sorted(ms | int.from_bytes(rand[i : i + 10], "big") for i in range(0, 10 * n, 10))
    return [prefix + _encode(v) for v in _issue(values)]


def now_ms() -> int:
    return int(time.time() * 1000)
