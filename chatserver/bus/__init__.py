"""Event fan-out between processes: :class:`Bus` with :class:`MemoryBus` and :class:`RedisBus`, and the
bounded, ordered :class:`Publisher` in front of them."""

from chatserver.bus.base import Bus, Handler, ResyncHandler
from chatserver.bus.memory import MemoryBus
from chatserver.bus.publisher import Publisher
from chatserver.bus.redis import RedisBus

__all__ = ["Bus", "Handler", "MemoryBus", "Publisher", "RedisBus", "ResyncHandler", "make_bus"]


def make_bus(redis_url: str | None, prefix: str = "chat:") -> Bus:
    return RedisBus(redis_url, prefix=prefix) if redis_url else MemoryBus()
