"""Per-connection, per-conversation delivery cursors: the one place that decides which messages a
connection sends (pure: no I/O, no clock).

Every path that can put a ``message`` frame on a connection asks its :class:`Cursors` first: the live
path (a bus event), the gap-fill path (a seq hint from reconciliation, or a live message that skips
ahead) and the resume path (the client's own cursor). The session's sender task is the only caller, so
decisions and sends never interleave. The rules, which make ``seq`` strictly increasing per connection
with nothing lost:

- A conversation is *followed* from a baseline (the head in the database when the connection
  subscribed); messages up to the baseline are not sent live (the client has them, or asks by resume).
- A cursor only moves forward once this connection has sent a message of that conversation. Before
  that, ``resume`` may place it anywhere (a replay from 0, a client that is behind the baseline).
- Conversations followed from the connection's snapshot are *held* until the client's first frame
  (normally its ``resume``) or a short window: live messages for them wait in the database, so a resume
  that names them cannot race a live message (the race that sent ``[5, 4, 5]``). Releasing a held
  cursor fills from its baseline, so nothing that arrived meanwhile is lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Live(Enum):
    """What to do with a live message."""

    SKIP = "skip"
    """Not followed, held, or already sent."""
    SEND = "send"
    """The next one: send it."""
    FILL = "fill"
    """A gap before it: fetch the missing ones from the database first, then send it."""


@dataclass(slots=True)
class Cursor:
    seq: int
    """The highest seq this connection has sent (or skipped as invisible), or its baseline."""
    sent_any: bool = False
    """Whether a message frame of this conversation went out on this connection."""
    held: bool = False


class Cursors:
    __slots__ = ("_by_conv", "_open")

    def __init__(self) -> None:
        self._by_conv: dict[str, Cursor] = {}
        self._open = False
        """The client's first frame was handled (or the window passed): nothing new is held."""

    def get(self, cid: str) -> Cursor | None:
        return self._by_conv.get(cid)

    def seq(self, cid: str) -> int:
        cur = self._by_conv.get(cid)
        return cur.seq if cur is not None else 0

    def follows(self, cid: str) -> bool:
        return cid in self._by_conv

    def followed(self) -> list[str]:
        """The conversations followed and not held."""
        return [cid for cid, cur in self._by_conv.items() if not cur.held]

    def follow(self, cid: str, baseline: int, *, hold: bool = False) -> bool:
        """Start following at ``baseline``; False (and nothing changes) when already followed. ``hold``
        applies only before the client's first frame."""
        if cid in self._by_conv:
            return False
        self._by_conv[cid] = Cursor(max(0, baseline), held=hold and not self._open)
        return True

    def live(self, cid: str, seq: int) -> Live:
        cur = self._by_conv.get(cid)
        if cur is None or cur.held or seq <= cur.seq:
            return Live.SKIP
        return Live.SEND if seq == cur.seq + 1 else Live.FILL

    def wants_fill(self, cid: str, up_to: int | None) -> bool:
        """A hint that the database has messages up to ``up_to`` (None: whatever is there)."""
        cur = self._by_conv.get(cid)
        if cur is None or cur.held:
            return False
        return up_to is None or up_to > cur.seq

    def resume(self, cid: str, after: int) -> int:
        """The client has seen everything up to ``after``: place the cursor and return where the fill
        starts. It moves back only while nothing of this conversation was sent on this connection, so a
        resume never repeats or reorders what the connection already delivered."""
        cur = self._by_conv.get(cid)
        if cur is None:
            cur = self._by_conv[cid] = Cursor(after)
        elif not cur.sent_any:
            cur.seq = after
        else:
            cur.seq = max(cur.seq, after)
        cur.held = False
        return cur.seq

    def sent(self, cid: str, seq: int) -> None:
        """A message frame with ``seq`` went out."""
        cur = self._by_conv[cid]
        assert seq > cur.seq, f"seq {seq} after {cur.seq}"
        cur.seq = seq
        cur.sent_any = True

    def skip_to(self, cid: str, seq: int) -> None:
        """Messages up to ``seq`` are not for this client (private notes): move past them."""
        cur = self._by_conv[cid]
        cur.seq = max(cur.seq, seq)

    def release(self) -> list[str]:
        """The client's first frame was handled: stop holding; return the conversations to fill."""
        self._open = True
        released = [cid for cid, cur in self._by_conv.items() if cur.held]
        for cid in released:
            self._by_conv[cid].held = False
        return released

    @property
    def released(self) -> bool:
        return self._open


__all__ = ["Cursor", "Cursors", "Live"]
