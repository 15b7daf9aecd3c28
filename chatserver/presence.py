"""Agent (and visitor) presence shared between processes.

An agent's effective status is the one they chose (online/away, stored on the agent) while they have
at least one live connection on any process, else offline. Connections are kept in memory
(:class:`MemoryPresence`) or in Redis sorted sets scored by expiry (:class:`RedisPresence`), refreshed
while the connection lives, so a crashed process's connections expire on their own. Visitors are kept under
:func:`visitor_key` so routing knows whether a pending conversation's visitor is still there.
"""

from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Iterable

import redis.asyncio as aioredis
from redis.exceptions import RedisError


def visitor_key(contact_id: str) -> str:
    """The presence id of a visitor (a contact with a widget connection); agents use their agent id."""
    return f"visitor:{contact_id}"


class Presence(ABC):
    @abstractmethod
    async def connect(self, agent_id: str, conn_id: str) -> None: ...

    @abstractmethod
    async def disconnect(self, agent_id: str, conn_id: str) -> None: ...

    @abstractmethod
    async def refresh(self) -> None:
        """Extend the life of this process's connections (called periodically)."""

    @abstractmethod
    async def connected(self, agent_ids: Iterable[str]) -> set[str]:
        """The subset of agents with at least one live connection."""


class MemoryPresence(Presence):
    def __init__(self) -> None:
        self._conns: dict[str, set[str]] = defaultdict(set)

    async def connect(self, agent_id: str, conn_id: str) -> None:
        self._conns[agent_id].add(conn_id)

    async def disconnect(self, agent_id: str, conn_id: str) -> None:
        self._conns[agent_id].discard(conn_id)
        if not self._conns[agent_id]:
            del self._conns[agent_id]

    async def refresh(self) -> None:
        return None

    async def connected(self, agent_ids: Iterable[str]) -> set[str]:
        return {a for a in agent_ids if self._conns.get(a)}


class RedisPresence(Presence):
    def __init__(self, client: aioredis.Redis, ttl_s: float, prefix: str = "chat:") -> None:
        self._client = client
        self._prefix = prefix
        self._ttl = ttl_s
        self._local: dict[str, set[str]] = defaultdict(set)

    def _key(self, agent_id: str) -> str:
        return f"{self._prefix}presence:{agent_id}"

    async def connect(self, agent_id: str, conn_id: str) -> None:
        self._local[agent_id].add(conn_id)
        with contextlib.suppress(RedisError):  # refresh() writes it again once Redis is back
            await self._client.zadd(self._key(agent_id), {conn_id: time.time() + self._ttl})

    async def disconnect(self, agent_id: str, conn_id: str) -> None:
        self._local[agent_id].discard(conn_id)
        if not self._local[agent_id]:
            del self._local[agent_id]
        with contextlib.suppress(RedisError):  # else it expires by score
            await self._client.zrem(self._key(agent_id), conn_id)

    async def refresh(self) -> None:
        expires = time.time() + self._ttl
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for agent_id, conns in self._local.items():
                    pipe.zadd(self._key(agent_id), dict.fromkeys(conns, expires))
                    pipe.zremrangebyscore(self._key(agent_id), 0, time.time())
                await pipe.execute()
        except RedisError:
            pass

    async def connected(self, agent_ids: Iterable[str]) -> set[str]:
        ids = list(agent_ids)
        now = time.time()
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for agent_id in ids:
                    pipe.zcount(self._key(agent_id), now, "+inf")
                counts = await pipe.execute()
        except RedisError:
            return {a for a in ids if a in self._local}
        return {a for a, n in zip(ids, counts, strict=True) if n}
