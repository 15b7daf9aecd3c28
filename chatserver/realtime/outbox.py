"""The items of a connection's outbound queue, and the queue itself.

Everything a client receives goes through one bounded :class:`Outbox` drained by the session's one sender
task; the items say what to send (a frame, a message through its conversation's cursor) or what to do in
order with the live stream (follow, resume, snapshot, close).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chatserver.lazyqueue import LazyQueue
from chatserver.model.types import Conversation, Message


@dataclass(frozen=True, slots=True)
class SendFrame:
    frame: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SendText:
    """A frame already encoded (shared by every connection that receives it)."""

    text: str


@dataclass(frozen=True, slots=True)
class SendMessage:
    message: Message


@dataclass(frozen=True, slots=True)
class Fill:
    """Send what the database has after the cursor, up to ``up_to`` (None: all of it)."""

    conversation_id: str
    up_to: int | None


@dataclass(frozen=True, slots=True)
class Sync:
    conversation_id: str
    after: int


@dataclass(frozen=True, slots=True)
class Track:
    """Follow ``conv`` from ``baseline`` (None: subscribed elsewhere), announcing its state if new."""

    conv: Conversation
    baseline: int | None
    announce: bool


@dataclass(frozen=True, slots=True)
class Release:
    """The client's first frame was handled (or the window passed): stop holding snapshot cursors."""


@dataclass(frozen=True, slots=True)
class Resumed:
    ref: str | None
    conversation_ids: tuple[str, ...]
    unknown: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Follow:
    conversation_id: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    pass


@dataclass(frozen=True, slots=True)
class Refresh:
    """Reload the agent's profile, then send ``frame`` (so the client sees it only once it applies)."""

    frame: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CloseItem:
    code: int
    reason: str


Item = (
    SendFrame
    | SendText
    | SendMessage
    | Fill
    | Sync
    | Track
    | Release
    | Resumed
    | Follow
    | Snapshot
    | Refresh
    | CloseItem
)


class Outbox(LazyQueue[Item]):
    """A session's bounded FIFO of outbound items, with one consumer (the sender task)."""

    __slots__ = ()

    def __init__(self, limit: int) -> None:
        super().__init__(limit)


__all__ = [
    "CloseItem",
    "Fill",
    "Follow",
    "Item",
    "Outbox",
    "Refresh",
    "Release",
    "Resumed",
    "SendFrame",
    "SendMessage",
    "SendText",
    "Snapshot",
    "Sync",
    "Track",
]
