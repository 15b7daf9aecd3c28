"""Who runs the router: one leader at a time.

:class:`LocalLease` (one process, in-process bus) always leads. :class:`RedisLease` is a Redis lock
with expiry (``SET NX PX``, renewed while held, released with a compare-and-delete). Either way, the
holder's fencing token is the database fence + 1 at the time it took the lease: the database refuses
writes from any older token, so a paused ex-leader cannot act on stale decisions.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

ReadFence = Callable[[], Awaitable[int]]

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end
"""


class Lease(ABC):
    def __init__(self, read_fence: ReadFence) -> None:
        self._read_fence = read_fence
        self.token: int | None = None

    @property
    def held(self) -> bool:
        return self.token is not None

    async def _take(self) -> None:
        self.token = await self._read_fence() + 1

    @abstractmethod
    async def refresh(self) -> bool:
        """Acquire or renew; True while this process leads."""

    @abstractmethod
    async def release(self) -> None: ...


class LocalLease(Lease):
    async def refresh(self) -> bool:
        if self.token is None:
            await self._take()
        return True

    async def release(self) -> None:
        self.token = None


class RedisLease(Lease):
    def __init__(
        self, client: aioredis.Redis, read_fence: ReadFence, *, ttl_s: float = 5.0, prefix: str = "chat:"
    ) -> None:
        super().__init__(read_fence)
        self.key = f"{prefix}routing:leader"
        self._client = client
        self._ttl_ms = int(ttl_s * 1000)
        self._me = f"{os.getpid()}:{uuid.uuid4().hex}"

    async def refresh(self) -> bool:
        try:
            if self.token is not None:
                if await self._client.eval(_RENEW, 1, self.key, self._me, self._ttl_ms):
                    return True
                self.token = None  # lost it (expired while paused, or Redis restarted)
            if await self._client.set(self.key, self._me, nx=True, px=self._ttl_ms):
                await self._take()
                return True
        except (RedisError, OSError):
            self.token = None
        return False

    async def release(self) -> None:
        if self.token is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._client.eval(_RELEASE, 1, self.key, self._me)
        self.token = None
