"""Redis pub/sub bus (redis-py asyncio).

One pub/sub connection per process carries every topic the process has local subscribers for. When
the connection breaks (Redis restarted, network cut, output buffer limit) the reader reconnects with
backoff, subscribes again to every topic, and calls ``on_resync`` so the process repairs what it missed
from the database. Publishing while Redis is down fails fast and is reported, never raised: the
message is already committed, and subscribers repair by gap detection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from chatserver.bus.base import Bus
from chatserver.model.events import Event, decode_event, encode_event

log = logging.getLogger(__name__)


class RedisBus(Bus):
    shared = True

    def __init__(
        self, url: str, *, socket_timeout: float = 2.0, client_name: str = "chatserver", prefix: str = "chat:"
    ) -> None:
        super().__init__()
        self.url = url
        self.prefix = prefix
        self.client = aioredis.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            health_check_interval=10,
            client_name=client_name,
        )
        self._control = f"{self.prefix}_proc:{os.getpid()}:{id(self):x}"
        self._pubsub: aioredis.client.PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._lock = asyncio.Lock()
        self.reconnects = 0
        self.publish_failures = 0

    async def _start(self) -> None:
        await self._connect()
        self._reader = asyncio.create_task(self._read_loop(), name="redis-bus-reader")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        await self._close_pubsub()
        await self.client.aclose()

    async def _close_pubsub(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            self._pubsub = None
        self._connected.clear()

    async def _connect(self) -> None:
        async with self._lock:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            await pubsub.subscribe(self._control, *(self.prefix + t for t in self.topics))
            self._pubsub = pubsub
            self._connected.set()

    async def _read_loop(self) -> None:
        backoff = 0.05
        while True:
            try:
                pubsub = self._pubsub
                if pubsub is None:
                    await self._connect()
                    self.reconnects += 1
                    log.warning("bus reconnected to Redis; resyncing from the database")
                    backoff = 0.05
                    if self._on_resync is not None:
                        await self._on_resync()
                    continue
                msg = await pubsub.get_message(timeout=5.0)
                if msg is None or msg.get("type") != "message":
                    continue
                topic = msg["channel"].decode()[len(self.prefix) :]
                try:
                    event = decode_event(msg["data"])
                except (ValueError, KeyError, TypeError):
                    log.warning("ignoring a malformed event on %s", topic)
                    continue
                self._deliver(topic, event)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("bus lost Redis (%s); retrying in %.2fs", type(exc).__name__, backoff)
                await self._close_pubsub()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            except Exception:
                log.exception("bus reader error")
                await asyncio.sleep(0.1)

    async def publish(self, items: Sequence[tuple[str, Event]]) -> bool:
        if not items:
            return True
        try:
            encoded: dict[int, bytes] = {}  # one encoding per event, however many topics it goes to
            async with self.client.pipeline(transaction=False) as pipe:
                for topic, event in items:
                    data = encoded.get(id(event))
                    if data is None:
                        data = encoded[id(event)] = encode_event(event)
                    pipe.publish(self.prefix + topic, data)
                await pipe.execute()
            return True
        except (RedisError, OSError) as exc:
            self.publish_failures += 1
            log.warning(
                "bus publish failed (%s); subscribers will repair from the database", type(exc).__name__
            )
            return False

    async def subscribe(self, topic: str) -> None:
        if topic in self.topics:
            return
        self.topics.add(topic)
        pubsub = self._pubsub
        if pubsub is None:
            return  # the reconnect subscribes to every topic
        try:
            await pubsub.subscribe(self.prefix + topic)
        except (RedisError, OSError) as exc:
            log.warning("bus subscribe failed (%s); will subscribe on reconnect", type(exc).__name__)

    async def unsubscribe(self, topic: str) -> None:
        if topic not in self.topics:
            return
        self.topics.discard(topic)
        pubsub = self._pubsub
        if pubsub is None:
            return
        with contextlib.suppress(RedisError, OSError):
            await pubsub.unsubscribe(self.prefix + topic)

    async def ping(self) -> None:
        await self.client.ping()
