"""The delivery cursor: whatever mix of live messages, hints, resumes and releases, a connection sends
each conversation's messages in strictly increasing seq, and nothing committed is left unsent."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chatserver.realtime.cursor import Cursors, Live

CID = "cv_1"


class Connection:
    """A connection over a database of ``head`` messages, driving Cursors the way the session does."""

    def __init__(self) -> None:
        self.cursors = Cursors()
        self.head = 0
        self.sent: list[int] = []

    def fill(self, up_to: int | None) -> None:
        top = self.head if up_to is None else min(up_to, self.head)
        for seq in range(self.cursors.seq(CID) + 1, top + 1):
            self.sent.append(seq)
            self.cursors.sent(CID, seq)

    def live(self, seq: int) -> None:
        decision = self.cursors.live(CID, seq)
        if decision is Live.SKIP:
            return
        if decision is Live.FILL:
            self.fill(seq - 1)
        self.sent.append(seq)
        self.cursors.sent(CID, seq)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("commit"), st.integers(1, 3)),
        st.tuples(st.just("lose"), st.integers(1, 3)),  # committed, the bus event lost
        st.tuples(st.just("hint"), st.just(0)),
        st.tuples(st.just("resume"), st.integers(0, 30)),
        st.tuples(st.just("release"), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(start=st.integers(0, 10), hold=st.booleans(), steps=ops)
def test_sent_seqs_strictly_increase_and_nothing_is_lost(
    start: int, hold: bool, steps: list[tuple[str, int]]
) -> None:
    c = Connection()
    c.head = start
    c.cursors.follow(CID, start, hold=hold)
    known = start  # the client has everything up to here: the baseline, or its first resume
    max_after = 0
    resumed = False
    for op, n in steps:
        if op in ("commit", "lose"):
            for _ in range(n):
                c.head += 1
                if op == "commit":
                    c.live(c.head)
        elif op == "hint" and c.cursors.wants_fill(CID, c.head):
            c.fill(c.head)
        elif op == "resume":
            after = min(n, c.head)
            if not resumed and not c.sent:
                known = after  # placed by the client before anything was sent
            resumed = True
            max_after = max(max_after, after)
            c.cursors.resume(CID, after)
            c.fill(None)
        elif op == "release":
            for cid in c.cursors.release():
                assert cid == CID
                c.fill(None)
    assert c.sent == sorted(set(c.sent)), c.sent
    # after a final release and hint everything committed has gone out, with no gap from the start
    for _cid in c.cursors.release():
        c.fill(None)
    if c.cursors.wants_fill(CID, c.head):
        c.fill(c.head)
    assert c.sent == sorted(set(c.sent))
    assert c.cursors.seq(CID) == c.head
    # every message is one the client had (baseline or a resume's claim) or was sent: no gap
    covered = set(range(1, max(known, max_after) + 1)) | set(c.sent)
    assert covered >= set(range(1, c.head + 1)), (known, max_after, c.sent)


def test_a_held_cursor_sends_nothing_live_and_a_resume_places_it() -> None:
    cursors = Cursors()
    assert cursors.follow(CID, 5, hold=True)
    assert not cursors.follow(CID, 9)  # already followed: the first baseline stands
    assert cursors.live(CID, 6) is Live.SKIP  # held: it waits in the database
    assert not cursors.wants_fill(CID, 6)
    assert cursors.resume(CID, 2) == 2  # nothing sent yet: the client's cursor wins, even behind
    assert cursors.live(CID, 3) is Live.SEND
    assert cursors.live(CID, 7) is Live.FILL


def test_a_resume_never_moves_back_over_what_was_sent() -> None:
    cursors = Cursors()
    cursors.follow(CID, 3)
    cursors.sent(CID, 4)
    assert cursors.resume(CID, 0) == 4
    assert cursors.resume(CID, 8) == 8  # the client has seen more (another tab): skip ahead
    assert cursors.live(CID, 8) is Live.SKIP


def test_release_holds_nothing_afterwards_and_unfollowed_conversations_are_skipped() -> None:
    cursors = Cursors()
    cursors.follow(CID, 0, hold=True)
    assert cursors.release() == [CID]
    assert cursors.release() == []
    assert cursors.follow("cv_2", 1, hold=True)
    assert cursors.live("cv_2", 2) is Live.SEND  # after the first frame nothing new is held
    assert cursors.live("cv_3", 1) is Live.SKIP
    assert cursors.resume("cv_3", 4) == 4  # a resume follows an unknown conversation from its cursor
