from __future__ import annotations

from typing import Any

import pytest

from chatserver.errors import Invalid
from chatserver.tickets.policy import first_match, parse_policy

GOOD: dict[str, Any] = {
    "name": "Urgent",
    "position": 1,
    "match": {"priority": "urgent", "channel": "widget", "team_id": "tm_1", "tag": "VIP"},
    "targets": {"first_response_s": 900, "next_response_s": 1800, "resolution_s": 86400},
    "warn_before_s": 300,
    "calendar": {
        "timezone": "Europe/Berlin",
        "hours": {"mon": [["09:00", "17:00"]]},
        "holidays": ["2026-12-25"],
    },
}


def test_a_good_policy_round_trips() -> None:
    p = parse_policy("sp_1", GOOD)
    wire = p.to_wire()
    assert wire["targets"] == GOOD["targets"] and wire["calendar"]["holidays"] == ["2026-12-25"]
    assert p.matches(priority="urgent", channel="widget", team_id="tm_1", tags=["vip"])
    assert not p.matches(priority="high", channel="widget", team_id="tm_1", tags=["vip"])
    assert parse_policy("sp_2", {**GOOD, "calendar": {"team_id": "tm_1"}}).inline_calendar() is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"calendar": {}}, "calendar"),
        ({"calendar": None}, "calendar"),
        ({"calendar": {"timezone": "UTC", "hours": {}}}, "calendar.hours"),
        ({"calendar": {"timezone": "UTC", "hours": {"mon": []}}}, "calendar.hours"),
        ({"calendar": {"timezone": "Mars/Olympus"}}, "calendar.timezone"),
        ({"calendar": {"timezone": "UTC", "hours": {"mon": [["17:00", "09:00"]]}}}, "calendar.hours.mon"),
        ({"calendar": {"team_id": "tm_1", "timezone": "UTC"}}, "calendar.team_id"),
        ({"calendar": {"timezone": "UTC", "colour": 1}}, "calendar.colour"),
        ({"targets": {"first_response_s": -5}}, "targets.first_response_s"),
        ({"targets": {"first_response_s": 0}}, "targets.first_response_s"),
        ({"targets": {"first_response_s": 1.5}}, "targets.first_response_s"),
        ({"targets": {}}, "targets"),
        ({"targets": {"reply_s": 5}}, "targets.reply_s"),
        ({"warn_before_s": -1}, "warn_before_s"),
        ({"match": {"weekday": "mon"}}, "match.weekday"),
        ({"match": {"priority": "asap"}}, "match.priority"),
        ({"name": ""}, "name"),
        ({"position": "1"}, "position"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_refused_at_save_time(change: dict[str, Any], field: str) -> None:
    with pytest.raises(Invalid) as exc:
        parse_policy("sp_1", {**GOOD, **change})
    assert exc.value.data["field"] == field


def test_first_match_wins_in_position_order() -> None:
    general = parse_policy("sp_b", {**GOOD, "name": "All", "position": 5, "match": {}})
    urgent = parse_policy("sp_a", {**GOOD, "position": 1, "match": {"priority": "urgent"}})
    policies = [general, urgent]
    assert first_match(policies, priority="urgent", channel="email", team_id=None, tags=[]) is urgent
    assert first_match(policies, priority="low", channel="email", team_id=None, tags=[]) is general
    assert first_match([urgent], priority="low", channel="email", team_id=None, tags=[]) is None
