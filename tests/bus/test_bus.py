"""One bus suite over MemoryBus and RedisBus (real Redis)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from chatserver.bus import Bus, MemoryBus, RedisBus
from chatserver.model.events import Event, PresenceEvent, TypingEvent
from chatserver.model.types import Author, AuthorKind
from tests.services import REDIS_PREFIX

ANN = Author(AuthorKind.AGENT, "ag_1", "Ann")


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Event]] = []
        self.resyncs = 0
        self.changed = asyncio.Event()

    def __call__(self, topic: str, event: Event) -> None:
        self.events.append((topic, event))
        self.changed.set()

    async def on_resync(self) -> None:
        self.resyncs += 1
        self.changed.set()

    async def wait_for(self, n: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.events) < n:
                self.changed.clear()
                await self.changed.wait()


def _make(kind: str, redis_url: str | None, name: str) -> Bus:
    return (
        MemoryBus() if kind == "memory" else RedisBus(redis_url or "", client_name=name, prefix=REDIS_PREFIX)
    )


@pytest.fixture(params=["memory", "redis"])
def kind(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        request.getfixturevalue("redis_url")
    return str(request.param)


@pytest.fixture
async def pair(
    kind: str, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[Bus, Recorder, Bus, Recorder]]:
    """Two buses as two processes would have them (for memory, both sides are one process)."""
    redis_url = request.getfixturevalue("redis_url") if kind == "redis" else None
    name = "t" + uuid.uuid4().hex[:10]
    a = _make(kind, redis_url, name)
    rec_a = Recorder()
    await a.start(rec_a, rec_a.on_resync)
    b: Bus = a if kind == "memory" else _make(kind, redis_url, name)
    rec_b = rec_a if b is a else Recorder()
    if b is not a:
        await b.start(rec_b, rec_b.on_resync)
    yield a, rec_a, b, rec_b
    await a.stop()
    if b is not a:
        await b.stop()


def topic() -> str:
    return "conv:" + uuid.uuid4().hex


async def test_subscribed_topic_receives_in_order(pair: tuple[Bus, Recorder, Bus, Recorder]) -> None:
    a, _, b, rec_b = pair
    t = topic()
    await b.subscribe(t)
    events = [TypingEvent(t[5:], ANN, "start" if i % 2 else "stop") for i in range(20)]
    assert await a.publish([(t, e) for e in events])
    await rec_b.wait_for(20)
    assert [e for _, e in rec_b.events] == events
    assert {tp for tp, _ in rec_b.events} == {t}


async def test_unsubscribed_topic_is_not_delivered(pair: tuple[Bus, Recorder, Bus, Recorder]) -> None:
    a, _, b, rec_b = pair
    t1, t2 = topic(), topic()
    await b.subscribe(t1)
    await b.subscribe(t2)
    await b.unsubscribe(t2)
    await a.publish([(t2, PresenceEvent(ANN, "away")), (t1, PresenceEvent(ANN, "online"))])
    await rec_b.wait_for(1)
    await asyncio.sleep(0.1)
    assert rec_b.events == [(t1, PresenceEvent(ANN, "online"))]


async def test_ping(pair: tuple[Bus, Recorder, Bus, Recorder]) -> None:
    a, _, _, _ = pair
    await a.ping()


@pytest.mark.redis
async def test_redis_bus_resubscribes_and_resyncs_after_connection_loss(redis_url: str) -> None:
    name = "t" + uuid.uuid4().hex[:10]
    bus, rec = RedisBus(redis_url, client_name=name), Recorder()
    await bus.start(rec, rec.on_resync)
    publisher = RedisBus(redis_url, client_name=name + "p")
    await publisher.start(Recorder())
    t = topic()
    await bus.subscribe(t)
    admin = aioredis.Redis.from_url(redis_url)
    try:
        killed = 0
        for line in (await admin.execute_command("CLIENT", "LIST", "TYPE", "pubsub")).decode().splitlines():
            fields = dict(kv.split("=", 1) for kv in line.split(" ") if "=" in kv)
            if fields.get("name") == name:
                await admin.execute_command("CLIENT", "KILL", "ID", fields["id"])
                killed += 1
        assert killed == 1
        async with asyncio.timeout(10):
            while rec.resyncs == 0:
                rec.changed.clear()
                await rec.changed.wait()
        assert bus.reconnects == 1
        await publisher.publish([(t, PresenceEvent(ANN, "online"))])
        await rec.wait_for(1)
        assert rec.events == [(t, PresenceEvent(ANN, "online"))]
    finally:
        await admin.aclose()
        await bus.stop()
        await publisher.stop()


@pytest.mark.redis
async def test_redis_publish_to_unreachable_server_reports_failure() -> None:
    bus = RedisBus("redis://127.0.0.1:1/0", socket_timeout=0.5)
    assert await bus.publish([("conv:x", PresenceEvent(ANN, "online"))]) is False
    assert bus.publish_failures == 1
    await bus.client.aclose()
