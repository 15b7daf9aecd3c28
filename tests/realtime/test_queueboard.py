"""The queue summary: folding grouped counts, the frame, and the per-connection throttle."""

from __future__ import annotations

import asyncio
from typing import Any

from chatserver.realtime.queueboard import QueueBoard, QueueSummary, TeamQueue, ThrottledSummary, summarize


def test_summarize_folds_statuses_per_team_in_team_order() -> None:
    rows = [("tm_b", "queued", 2, 5_000), (None, "pending", 1, 9_000), ("tm_b", "pending", 1, 3_000)]
    summary = summarize(rows)
    assert summary.teams == (TeamQueue(None, 1, 1, 9_000), TeamQueue("tm_b", 3, 1, 3_000))
    assert summary.waiting == 4
    assert summary.oldest_at == 3_000


def test_the_frame_counts_waits_from_now_and_an_empty_queue_has_none() -> None:
    frame = summarize([(None, "queued", 2, 1_000)]).frame(now_ms=13_500)
    assert frame["type"] == "queue"
    assert frame["waiting"] == 2
    assert frame["longest_wait_s"] == 12.5
    assert frame["teams"][0]["pending"] == 0
    empty = summarize([]).frame(now_ms=1)
    assert empty == {"type": "queue", "waiting": 0, "longest_wait_s": 0.0, "oldest_at": None, "teams": []}


async def test_a_connection_gets_at_most_one_summary_per_interval_and_never_the_same_twice() -> None:
    sent: list[dict[str, Any]] = []
    second = asyncio.Event()

    def send(frame: dict[str, Any]) -> None:
        sent.append(frame)
        if len(sent) == 2:
            second.set()

    throttle = ThrottledSummary(send, interval_s=0.2)
    one, two, three = (summarize([(None, "queued", n, 1)]) for n in (1, 2, 3))
    throttle.queue_summary(one)
    throttle.queue_summary(one)
    assert [f["waiting"] for f in sent] == [1]  # the first at once; the same again is not sent
    throttle.queue_summary(two)
    throttle.queue_summary(three)  # within the interval: only the latest goes out, once it has passed
    assert len(sent) == 1
    async with asyncio.timeout(5):
        await second.wait()
    assert [f["waiting"] for f in sent] == [1, 3]
    throttle.cancel()


async def test_the_board_recomputes_when_told_and_only_tells_watchers_of_a_change() -> None:
    counts: list[list[tuple[str | None, str, int, int]]] = [[(None, "queued", 1, 1)]]

    async def source() -> list[tuple[str | None, str, int, int]]:
        return counts[-1]

    class Watcher:
        def __init__(self) -> None:
            self.seen: list[QueueSummary] = []

        def queue_summary(self, summary: QueueSummary) -> None:
            self.seen.append(summary)

    board = QueueBoard(source, interval_s=0.01)
    w = Watcher()
    board.attach(w)
    await board.refresh()
    await board.refresh()  # unchanged: not sent again
    assert [s.waiting for s in w.seen] == [1]
    counts.append([])
    await board.refresh()
    assert [s.waiting for s in w.seen] == [1, 0]
    board.detach(w)
    assert board.current is None and board.watchers == 0
