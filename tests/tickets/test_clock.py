"""SLA clock cases computed by hand: weekends, holidays, DST in Europe/Berlin and America/New_York,
pauses (pending / on_hold), breaches and warnings."""

from __future__ import annotations

from datetime import UTC, datetime

from chatserver.tickets.clock import Calendar, History, Targets, alarms, compute, next_alarm_at

WEEKDAYS = {d: (("09:00", "17:00"),) for d in ("mon", "tue", "wed", "thu", "fri")}
BERLIN = Calendar("Europe/Berlin", WEEKDAYS, frozenset({"2026-12-25"}))
H = 3600


def z(text: str) -> int:
    """An instant written in UTC: '2026-11-30 11:00'."""
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC).timestamp() * 1000)


def due(cal: Calendar, created: str, seconds: int, *, now: str | None = None, **kw: object) -> int | None:
    history = History(created_at=z(created), statuses=[(z(created), "new")])
    state = compute(cal, Targets(resolution_s=seconds), history, z(now or created))
    return state.targets["resolution"].due_at


def test_over_a_weekend() -> None:
    # Fri 27 Nov 16:00 CET (15:00Z) + 4 business hours: 1 h on Friday, 3 h on Monday -> Mon 12:00 CET
    assert due(BERLIN, "2026-11-27 15:00", 4 * H) == z("2026-11-30 11:00")


def test_over_a_holiday_and_a_weekend() -> None:
    # Thu 24 Dec 15:00 CET + 8 h: 2 h Thursday, Fri 25 is a holiday, weekend, 6 h Monday -> Mon 15:00 CET
    assert due(BERLIN, "2026-12-24 14:00", 8 * H) == z("2026-12-28 14:00")


def test_berlin_spring_forward() -> None:
    # Fri 27 Mar 16:00 CET (15:00Z) + 2 h: 1 h Friday, 1 h Mon 30 Mar 09:00-10:00 CEST = 07:00-08:00Z
    assert due(BERLIN, "2026-03-27 15:00", 2 * H) == z("2026-03-30 08:00")


def test_berlin_fall_back() -> None:
    # Fri 23 Oct 16:30 CEST (14:30Z) + 1 h: 30 min Friday, 30 min Mon 26 Oct from 09:00 CET (08:00Z)
    assert due(BERLIN, "2026-10-23 14:30", 1 * H) == z("2026-10-26 08:30")


EVERY_DAY = {d: (("08:00", "20:00"),) for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
NEW_YORK = Calendar("America/New_York", EVERY_DAY)


def test_new_york_spring_forward() -> None:
    # Sat 7 Mar 19:00 EST (00:00Z) + 3 h: 1 h Saturday, then Sun 8 Mar 08:00 EDT (12:00Z) + 2 h
    assert due(NEW_YORK, "2026-03-08 00:00", 3 * H) == z("2026-03-08 14:00")


def test_new_york_fall_back() -> None:
    # Sat 31 Oct 19:00 EDT (23:00Z) + 3 h: 1 h Saturday, then Sun 1 Nov 08:00 EST (13:00Z) + 2 h
    assert due(NEW_YORK, "2026-10-31 23:00", 3 * H) == z("2026-11-01 15:00")


def test_always_open_is_plain_time_even_across_dst() -> None:
    always = Calendar("Europe/Berlin", None)
    assert due(always, "2026-03-28 12:00", 24 * H) == z("2026-03-29 12:00")


def test_a_calendar_that_never_opens_never_comes_due() -> None:
    assert due(Calendar("UTC", {}), "2026-11-30 08:00", H) is None


def test_pending_pauses_the_clock() -> None:
    # Mon 30 Nov 09:00 CET (08:00Z), resolution 4 h; pending Mon 10:00 - Tue 10:00 CET; open again after
    history = History(
        created_at=z("2026-11-30 08:00"),
        statuses=[
            (z("2026-11-30 08:00"), "open"),
            (z("2026-11-30 09:00"), "pending"),
            (z("2026-12-01 09:00"), "open"),
        ],
    )
    state = compute(BERLIN, Targets(resolution_s=4 * H), history, z("2026-12-01 10:00"))
    t = state.targets["resolution"]
    # used: 1 h Monday + 1 h Tuesday; 2 h left -> Tue 13:00 CET
    assert (t.due_at, t.remaining_ms, t.paused, t.breached) == (
        z("2026-12-01 12:00"),
        2 * H * 1000,
        False,
        False,
    )

    paused = History(created_at=history.created_at, statuses=history.statuses[:2])
    during = compute(BERLIN, Targets(resolution_s=4 * H), paused, z("2026-11-30 14:00")).targets["resolution"]
    assert (during.due_at, during.paused, during.remaining_ms) == (None, True, 3 * H * 1000)


def test_on_hold_pauses_too_and_several_pauses_add_up() -> None:
    history = History(
        created_at=z("2026-11-30 08:00"),
        statuses=[
            (z("2026-11-30 08:00"), "new"),
            (z("2026-11-30 08:30"), "on_hold"),
            (z("2026-11-30 09:30"), "open"),
            (z("2026-11-30 10:00"), "pending"),
            (z("2026-11-30 11:00"), "open"),
        ],
    )
    # running: 08:00-08:30, 09:30-10:00, 11:00- ; 2 h target: 1 h used by 11:00Z, due 12:00Z
    t = compute(BERLIN, Targets(resolution_s=2 * H), history, z("2026-11-30 11:00")).targets["resolution"]
    assert t.due_at == z("2026-11-30 12:00")


def test_first_response_breach_and_late_response() -> None:
    created = z("2026-11-30 08:00")  # Mon 09:00 CET
    base = History(created_at=created, statuses=[(created, "new")])
    late = compute(BERLIN, Targets(first_response_s=H), base, z("2026-11-30 09:30")).targets["first_response"]
    assert late.due_at == z("2026-11-30 09:00") and late.breached and late.met_at is None
    answered = History(
        created_at=created, statuses=[(created, "new")], first_response_at=z("2026-11-30 09:15")
    )
    met = compute(BERLIN, Targets(first_response_s=H), answered, z("2026-11-30 12:00")).targets[
        "first_response"
    ]
    assert met.met_at == z("2026-11-30 09:15") and met.breached
    on_time = History(
        created_at=created, statuses=[(created, "new")], first_response_at=z("2026-11-30 08:40")
    )
    ok = compute(BERLIN, Targets(first_response_s=H), on_time, z("2026-11-30 12:00")).targets[
        "first_response"
    ]
    assert not ok.breached and ok.met_at is not None


def test_next_response_counts_from_the_unanswered_message() -> None:
    created = z("2026-12-01 08:00")
    history = History(
        created_at=created,
        statuses=[(created, "open")],
        first_response_at=z("2026-12-01 08:10"),
        waiting_since=z("2026-12-01 15:30"),  # Tue 16:30 CET
    )
    t = compute(BERLIN, Targets(next_response_s=H), history, z("2026-12-01 15:30")).targets["next_response"]
    assert t.due_at == z("2026-12-02 08:30") and t.started_at == z("2026-12-01 15:30")  # Wed 09:30 CET
    no_wait = History(
        created_at=created, statuses=[(created, "open")], first_response_at=z("2026-12-01 08:10")
    )
    assert (
        "next_response"
        not in compute(BERLIN, Targets(next_response_s=H), no_wait, z("2026-12-01 15:30")).targets
    )


def test_solved_meets_resolution() -> None:
    created = z("2026-11-30 08:00")
    history = History(
        created_at=created,
        statuses=[(created, "open"), (z("2026-11-30 10:00"), "solved")],
        solved_at=z("2026-11-30 10:00"),
    )
    t = compute(BERLIN, Targets(resolution_s=8 * H), history, z("2026-12-05 10:00")).targets["resolution"]
    assert t.met_at == z("2026-11-30 10:00") and not t.breached


def test_alarms_warn_then_breach_and_next_alarm() -> None:
    created = z("2026-11-30 08:00")
    history = History(created_at=created, statuses=[(created, "new")])
    targets = Targets(first_response_s=H)
    early = compute(BERLIN, targets, history, z("2026-11-30 08:30"))
    assert alarms(early, warn_before_s=900, now=z("2026-11-30 08:30")) == []
    assert next_alarm_at(early, warn_before_s=900, emitted=set()) == z("2026-11-30 08:45")
    warn = compute(BERLIN, targets, history, z("2026-11-30 08:50"))
    assert [(a.kind, a.target) for a in alarms(warn, warn_before_s=900, now=z("2026-11-30 08:50"))] == [
        ("warning", "first_response")
    ]
    emitted = {("warning", "first_response", created)}
    assert next_alarm_at(warn, warn_before_s=900, emitted=emitted) == z("2026-11-30 09:00")
    late = compute(BERLIN, targets, history, z("2026-11-30 09:01"))
    assert [a.kind for a in alarms(late, warn_before_s=900, now=z("2026-11-30 09:01"))] == [
        "warning",
        "breach",
    ]
    emitted.add(("breach", "first_response", created))
    assert next_alarm_at(late, warn_before_s=900, emitted=emitted) is None
