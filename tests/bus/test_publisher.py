"""The publisher over a real Redis that goes away and comes back (a TCP relay in front of it): while the
bus is down the buffer stays bounded and drops the oldest events; once it is back, what was kept goes
out in commit order."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import pytest

from chatserver.bus import MemoryBus, Publisher, RedisBus
from chatserver.model.events import Event, TypingEvent
from chatserver.model.types import Author, AuthorKind
from tests.bus.test_bus import Recorder
from tests.services import REDIS_PREFIX

ANN = Author(AuthorKind.AGENT, "ag_1", "Ann")
pytestmark = pytest.mark.redis


class Relay:
    """A TCP relay to Redis that can be cut (every connection closed, new ones refused) and restored."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for w in list(self._writers):
            w.close()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


def _events(n: int) -> list[tuple[str, Event]]:
    return [("conv:t", TypingEvent(f"c{i}", ANN, "start")) for i in range(n)]


@pytest.fixture
async def relay(redis_url: str) -> AsyncIterator[Relay]:
    parts = urlsplit(redis_url)
    r = Relay(parts.hostname or "127.0.0.1", parts.port or 6379)
    await r.up()
    yield r
    await r.down()


async def _wait(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        for _ in iter(cond, True):  # poll: the publisher's retries are not observable otherwise
            await asyncio.sleep(0.02)


async def test_bus_down_keeps_the_buffer_bounded_then_delivers_the_newest_in_order(
    redis_url: str, relay: Relay
) -> None:
    topic = "conv:" + uuid.uuid4().hex
    receiver, rec = RedisBus(redis_url, client_name="rx", prefix=REDIS_PREFIX), Recorder()
    await receiver.start(rec)
    await receiver.subscribe(topic)
    bus = RedisBus(f"redis://127.0.0.1:{relay.port}/0", socket_timeout=0.5, prefix=REDIS_PREFIX)
    publisher = Publisher(bus, limit=1000, batch=100, backoff_s=(0.01, 0.05))
    publisher.start()
    try:
        # the bus works: events go out in order
        first = [(topic, TypingEvent(f"a{i}", ANN, "start")) for i in range(50)]
        publisher.publish(first)
        await rec.wait_for(50)
        assert [e for _, e in rec.events] == [e for _, e in first]

        await relay.down()
        failures = bus.publish_failures
        events = [(topic, TypingEvent(f"b{i}", ANN, "stop")) for i in range(30_000)]
        for i in range(0, len(events), 500):  # commits keep coming while the bus is down
            publisher.publish(events[i : i + 500])
            assert publisher.queued <= 1000
            await asyncio.sleep(0)
        await _wait(lambda: bus.publish_failures > failures + 2)  # it kept retrying meanwhile
        assert publisher.queued == 1000
        assert publisher.dropped == 29_000
        assert publisher.published == 50

        await relay.up()
        await rec.wait_for(50 + 1000)
        await asyncio.sleep(0.2)
        got = [e for _, e in rec.events[50:]]
        assert got == [e for _, e in events[-1000:]]  # the newest, in order; the oldest were dropped
        assert publisher.queued == 0 and publisher.published == 1050
    finally:
        await publisher.stop(flush_s=0.1)
        await bus.stop()
        await receiver.stop()


async def test_publish_never_blocks_and_stop_flushes_what_is_queued() -> None:
    bus, rec = MemoryBus(), Recorder()
    await bus.start(rec)
    await bus.subscribe("conv:t")
    publisher = Publisher(bus, limit=10_000, batch=7)
    publisher.start()
    publisher.publish(_events(1000))
    await publisher.stop()
    assert [e for _, e in rec.events] == [e for _, e in _events(1000)]
    assert publisher.dropped == 0 and publisher.queued == 0


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Publisher(MemoryBus(), limit=0)
