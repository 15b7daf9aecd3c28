"""SLA policies as plain data, checked at save time, and matched first-match-wins. Pure.

``{name, position, match: {priority?, channel?, team_id?, tag?}, targets: {first_response_s?,
next_response_s?, resolution_s?}, warn_before_s?, calendar: {team_id} | {timezone, hours, holidays}}``
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chatserver.errors import Invalid
from chatserver.routing.config import ConfigProblem, parse_holidays, parse_hours, parse_timezone
from chatserver.tickets.clock import TARGETS, Calendar, Targets

MAX_TARGET_S = 366 * 86400
MATCH_KEYS = ("priority", "channel", "team_id", "tag")


@dataclass(frozen=True, slots=True)
class Policy:
    id: str
    name: str
    position: int
    match: Mapping[str, str] = field(default_factory=dict)
    targets: Targets = field(default_factory=Targets)
    warn_before_s: int = 0
    calendar: Mapping[str, Any] = field(default_factory=dict)
    """Either ``{"team_id": ...}`` (that team's routing calendar) or an inline calendar."""

    def matches(self, *, priority: str, channel: str, team_id: str | None, tags: Sequence[str]) -> bool:
        m = self.match
        return (
            ("priority" not in m or m["priority"] == priority)
            and ("channel" not in m or m["channel"] == channel)
            and ("team_id" not in m or m["team_id"] == team_id)
            and ("tag" not in m or m["tag"].lower() in tags)
        )

    def inline_calendar(self) -> Calendar | None:
        if "team_id" in self.calendar:
            return None
        hours = self.calendar.get("hours")
        return Calendar(
            self.calendar.get("timezone", "UTC"),
            {d: tuple((a, b) for a, b in spans) for d, spans in hours.items()} if hours is not None else None,
            frozenset(self.calendar.get("holidays", ())),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "position": self.position,
            "match": dict(self.match),
            "targets": {f"{t}_s": self.targets.get(t) for t in TARGETS if self.targets.get(t) is not None},
            "warn_before_s": self.warn_before_s,
            "calendar": dict(self.calendar),
        }


def first_match(
    policies: Sequence[Policy], *, priority: str, channel: str, team_id: str | None, tags: Sequence[str]
) -> Policy | None:
    for p in sorted(policies, key=lambda p: (p.position, p.id)):
        if p.matches(priority=priority, channel=channel, team_id=team_id, tags=tags):
            return p
    return None


def _seconds(raw: Any, name: str) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or not 0 < raw <= MAX_TARGET_S:
        raise Invalid(
            f"{name} must be a whole number of seconds from 1 to {MAX_TARGET_S}", data={"field": name}
        )
    return raw


def parse_policy(policy_id: str, raw: Mapping[str, Any]) -> Policy:
    """A policy from its JSON, refused with a 422 naming the field when it cannot work."""
    unknown = set(raw) - {"name", "position", "match", "targets", "warn_before_s", "calendar"}
    if unknown:
        first = sorted(unknown)[0]
        raise Invalid(f"unknown field {first!r}", data={"field": first})
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise Invalid("name must be a non-empty string of at most 100 characters", data={"field": "name"})
    position = raw.get("position", 0)
    if not isinstance(position, int) or isinstance(position, bool):
        raise Invalid("position must be an integer", data={"field": "position"})
    match = raw.get("match") or {}
    if not isinstance(match, dict):
        raise Invalid("match must be an object", data={"field": "match"})
    for key, value in match.items():
        if key not in MATCH_KEYS:
            raise Invalid(f"unknown match condition {key!r}", data={"field": f"match.{key}"})
        if not isinstance(value, str) or not value:
            raise Invalid(f"match.{key} must be a string", data={"field": f"match.{key}"})
    if "priority" in match and match["priority"] not in ("low", "normal", "high", "urgent"):
        raise Invalid("match.priority must be low, normal, high or urgent", data={"field": "match.priority"})
    targets_raw = raw.get("targets")
    if not isinstance(targets_raw, dict) or not targets_raw:
        raise Invalid(
            "targets must set at least one of " + ", ".join(f"{t}_s" for t in TARGETS),
            data={"field": "targets"},
        )
    values: dict[str, int] = {}
    for key, value in targets_raw.items():
        if key not in {f"{t}_s" for t in TARGETS}:
            raise Invalid(f"unknown target {key!r}", data={"field": f"targets.{key}"})
        values[key] = _seconds(value, f"targets.{key}")
    warn = raw.get("warn_before_s", 0)
    if not isinstance(warn, int) or isinstance(warn, bool) or not 0 <= warn <= MAX_TARGET_S:
        raise Invalid("warn_before_s must be a whole number of seconds >= 0", data={"field": "warn_before_s"})
    return Policy(
        policy_id,
        name.strip(),
        position,
        dict(match),
        Targets(**values),
        warn,
        parse_calendar(raw.get("calendar")),
    )


def parse_calendar(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or not raw:
        raise Invalid("calendar must be {team_id} or {timezone, hours, holidays}", data={"field": "calendar"})
    if "team_id" in raw:
        if set(raw) != {"team_id"} or not isinstance(raw["team_id"], str) or not raw["team_id"]:
            raise Invalid("a team calendar is just {team_id}", data={"field": "calendar.team_id"})
        return {"team_id": raw["team_id"]}
    unknown = set(raw) - {"timezone", "hours", "holidays"}
    if unknown:
        first = sorted(unknown)[0]
        raise Invalid(f"unknown calendar field {first!r}", data={"field": f"calendar.{first}"})
    try:
        timezone = parse_timezone(raw.get("timezone", "UTC"))
        hours = parse_hours(raw.get("hours"))
        holidays = parse_holidays(raw.get("holidays"))
    except ConfigProblem as exc:
        raise Invalid(str(exc), data={"field": f"calendar.{exc.field}"}) from exc
    if hours is not None and not any(hours.values()):
        raise Invalid(
            "the calendar has no opening hours: nothing would ever come due", data={"field": "calendar.hours"}
        )
    return {
        "timezone": timezone,
        "hours": {d: [list(i) for i in v] for d, v in hours.items()} if hours is not None else None,
        "holidays": sorted(holidays),
    }
