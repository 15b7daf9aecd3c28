"""Login throttling: a pure policy over failure counts, and the stores that keep the counts.

The policy (:func:`decide`) is a pure function of a key's failures and ``now``: a key (an account's
email, a client address) may fail ``free_failures`` times; each further failure locks it for
``base_lockout_s * 2 ** (extra - 1)`` seconds (capped at ``max_lockout_s``) counted from the last
failure. Failures are forgotten ``window_s`` after the last one.

Counts live in memory (:class:`MemoryThrottleStore`, one process) or in Redis
(:class:`RedisThrottleStore`, shared by every process), as presence does.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    free_failures: int
    base_lockout_s: float
    max_lockout_s: float
    window_s: float

    def lockout_s(self, failures: int) -> float:
        extra = failures - self.free_failures
        if extra <= 0:
            return 0.0
        return min(self.max_lockout_s, self.base_lockout_s * 2.0 ** min(extra - 1, 62))


@dataclass(frozen=True, slots=True)
class Failures:
    count: int
    last_at: float
    """Unix time of the last failure."""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after_s: int = 0
    """Whole seconds until the next attempt is allowed (0 when allowed)."""


ALLOW = Decision(True)


def decide(policy: ThrottlePolicy, failures: Failures | None, now: float) -> Decision:
    """May this key try to log in at ``now``, given its recorded failures?"""
    if failures is None or failures.count <= 0 or now - failures.last_at >= policy.window_s:
        return ALLOW
    until = failures.last_at + policy.lockout_s(failures.count)
    if now >= until:
        return ALLOW
    return Decision(False, max(1, math.ceil(until - now)))


def combine(decisions: Sequence[Decision]) -> Decision:
    """Refused when any key is refused, for the longest of their waits."""
    refused = [d for d in decisions if not d.allowed]
    if not refused:
        return ALLOW
    return Decision(False, max(d.retry_after_s for d in refused))


def account_key(email: str) -> str:
    """The account key of a login: the normalized email (hashed, so no address is kept in Redis)."""
    return "acct:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


def address_key(host: str | None) -> str:
    """The address key of a client: its IPv4 address, or the /64 of an IPv6 one (one subscriber's
    usual allocation, so rotating addresses inside it does not help)."""
    if not host:
        return "addr:unknown"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return "addr:" + host[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"addr:{ip.ipv4_mapped}"
        return f"addr:{ipaddress.ip_network(f'{ip}/64', strict=False)}"
    return f"addr:{ip}"


class ThrottleStore(ABC):
    """Where failure counts live. ``ttl_s`` is how long a count is kept after its last failure."""

    @abstractmethod
    async def get(self, keys: Sequence[str]) -> list[Failures | None]: ...

    @abstractmethod
    async def fail(self, keys: Sequence[str], now: float, ttl_s: float) -> None:
        """Count one more failure for each key, at ``now``."""

    @abstractmethod
    async def clear(self, key: str) -> None: ...


class MemoryThrottleStore(ThrottleStore):
    """One process's counts. Bounded: past ``max_keys`` the least recently failed keys are dropped."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._max = max_keys
        self._entries: dict[str, tuple[Failures, float]] = {}  # key -> (failures, expires_at)

    async def get(self, keys: Sequence[str]) -> list[Failures | None]:
        return [entry[0] if (entry := self._entries.get(k)) else None for k in keys]

    async def fail(self, keys: Sequence[str], now: float, ttl_s: float) -> None:
        for key in keys:
            old = self._entries.pop(key, None)  # re-inserted at the end: the dict stays ordered by age
            count = old[0].count + 1 if old is not None and old[1] > now else 1
            self._entries[key] = (Failures(count, now), now + ttl_s)
        while self._entries:
            first = next(iter(self._entries))
            if len(self._entries) <= self._max and self._entries[first][1] > now:
                break
            del self._entries[first]

    async def clear(self, key: str) -> None:
        self._entries.pop(key, None)


class RedisThrottleStore(ThrottleStore):
    """Counts shared by every process: one hash per key (``c`` count, ``t`` last failure), expiring
    ``ttl_s`` after the last failure. If Redis is unreachable, this process keeps counting in memory
    (and says so in the log): logins are still throttled per process, never let through unthrottled,
    and the counts of the outage still apply once Redis is back."""

    def __init__(self, client: aioredis.Redis, prefix: str = "chat:") -> None:
        self._client = client
        self._prefix = prefix
        self._local = MemoryThrottleStore()
        """Failures counted while Redis was unreachable."""

    def _key(self, key: str) -> str:
        return f"{self._prefix}login:{key}"

    async def get(self, keys: Sequence[str]) -> list[Failures | None]:
        local = await self._local.get(keys)
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hmget(self._key(key), ["c", "t"])
                raw = await pipe.execute()
        except RedisError as exc:
            log.warning("login throttle: Redis unavailable (%s); using this process's counts", exc)
            return local
        out: list[Failures | None] = []
        for (count, last), mine in zip(raw, local, strict=True):
            shared = Failures(int(count), float(last)) if count is not None and last is not None else None
            out.append(_more(shared, mine))
        return out

    async def fail(self, keys: Sequence[str], now: float, ttl_s: float) -> None:
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                for key in keys:
                    pipe.hincrby(self._key(key), "c", 1)
                    pipe.hset(self._key(key), "t", repr(now))
                    pipe.pexpire(self._key(key), max(1, int(ttl_s * 1000)))
                await pipe.execute()
        except RedisError as exc:
            log.warning("login throttle: Redis unavailable (%s); counting in this process", exc)
            await self._local.fail(keys, now, ttl_s)

    async def clear(self, key: str) -> None:
        await self._local.clear(key)
        try:
            await self._client.delete(self._key(key))
        except RedisError as exc:
            log.warning("login throttle: Redis unavailable (%s)", exc)


def _more(a: Failures | None, b: Failures | None) -> Failures | None:
    if a is None or b is None:
        return a or b
    return Failures(max(a.count, b.count), max(a.last_at, b.last_at))
