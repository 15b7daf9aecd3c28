"""Routing configuration as plain data, with pure checks: business hours and rule matching.

A team's ``hours`` map weekdays (``mon`` … ``sun``) to opening intervals ``[["09:00", "17:30"], …]`` in
the team's time zone; ``None`` means always open. ``holidays`` are local dates (``2026-12-25``) when the
team is closed all day. A rule matches a conversation when every condition it sets holds (inbox,
channel, and each pre-chat field); rules are tried in ``position`` order and the first match wins.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chatserver.routing.model import LanguageRequirement, RelaxStep, parse_requirement

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"([01]\d|2[0-3]):[0-5]\d|24:00")


class ConfigProblem(ValueError):
    """A configuration value is invalid; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Team:
    id: str
    name: str
    timezone: str = "UTC"
    hours: Mapping[str, tuple[tuple[str, str], ...]] | None = None
    holidays: frozenset[str] = frozenset()
    members: frozenset[str] = frozenset()

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "timezone": self.timezone,
            "hours": {d: [list(i) for i in v] for d, v in self.hours.items()}
            if self.hours is not None
            else None,
            "holidays": sorted(self.holidays),
            "members": sorted(self.members),
        }


def is_open(team: Team, now: float) -> bool:
    local = datetime.fromtimestamp(now, ZoneInfo(team.timezone))
    if local.date().isoformat() in team.holidays:
        return False
    if team.hours is None:
        return True
    clock = local.strftime("%H:%M")
    return any(start <= clock < end for start, end in team.hours.get(DAYS[local.weekday()], ()))


def parse_hours(raw: Any) -> dict[str, tuple[tuple[str, str], ...]] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigProblem("hours", "hours must map weekdays (mon..sun) to lists of [start, end]")
    out: dict[str, tuple[tuple[str, str], ...]] = {}
    for day, intervals in raw.items():
        if day not in DAYS:
            raise ConfigProblem("hours", f"unknown weekday {day!r}; use {', '.join(DAYS)}")
        if not isinstance(intervals, list):
            raise ConfigProblem(f"hours.{day}", "a list of [start, end] pairs")
        parsed = []
        for interval in intervals:
            if (
                not isinstance(interval, list | tuple)
                or len(interval) != 2
                or not all(isinstance(t, str) and _TIME.fullmatch(t) for t in interval)
                or interval[0] >= interval[1]
            ):
                raise ConfigProblem(f"hours.{day}", 'each interval is ["HH:MM", "HH:MM"] with start < end')
            parsed.append((interval[0], interval[1]))
        out[day] = tuple(sorted(parsed))
    return out


def parse_timezone(raw: Any) -> str:
    if not isinstance(raw, str):
        raise ConfigProblem("timezone", "timezone must be an IANA name such as Europe/Berlin")
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigProblem("timezone", f"unknown time zone {raw!r}") from exc
    return raw


def parse_holidays(raw: Any) -> frozenset[str]:
    if raw is None:
        return frozenset()
    if not isinstance(raw, list):
        raise ConfigProblem("holidays", "holidays must be a list of dates (YYYY-MM-DD)")
    out = set()
    for item in raw:
        try:
            out.add(date.fromisoformat(item).isoformat())
        except (TypeError, ValueError) as exc:
            raise ConfigProblem("holidays", f"not a date: {item!r}") from exc
    return frozenset(out)


TICKET_REASONS = ("no_agent_eligible", "outside_business_hours", "max_wait_exceeded")
"""The escalation reasons of the routing engine (routing/model.py ``EscalationReason``)."""
DEFAULT_TICKET_ON = ("max_wait_exceeded",)


def parse_ticket_on(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return DEFAULT_TICKET_ON
    if not isinstance(raw, list) or not all(isinstance(r, str) and r in TICKET_REASONS for r in raw):
        raise ConfigProblem("ticket_on", "ticket_on is a list of " + ", ".join(TICKET_REASONS))
    return tuple(dict.fromkeys(raw))


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    name: str
    position: int = 0
    inbox_id: str | None = None
    channel: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    team_id: str | None = None
    skills: Mapping[str, int] = field(default_factory=dict)
    priority: int = 0
    steps: tuple[tuple[str, float], ...] = ()
    """(requirement, expires after seconds), e.g. ("language:de>=4", 30)."""
    offer_timeout_s: float | None = None
    max_wait_s: float | None = None
    ticket_on: tuple[str, ...] = DEFAULT_TICKET_ON
    """Why routing gives up on a conversation (``TICKET_REASONS``) that makes it a ticket at once; for the
    others it stays pending while the visitor is there (and becomes a ticket when they leave)."""

    def matches(self, *, inbox_id: str, channel: str, fields: Mapping[str, str]) -> bool:
        return (
            (self.inbox_id is None or self.inbox_id == inbox_id)
            and (self.channel is None or self.channel == channel)
            and all(fields.get(k) == v for k, v in self.fields.items())
        )

    def relax_steps(self, language: str | None) -> tuple[RelaxStep, ...]:
        """The steps as engine data; ``language:visitor`` stands for the conversation's language."""
        out = []
        for text, after_s in self.steps:
            req = parse_requirement(text.replace("language:visitor", f"language:{language or 'visitor'}"))
            if isinstance(req, LanguageRequirement) and req.language == "visitor":
                continue  # no known language: the step cannot apply
            out.append(RelaxStep(req, after_s))
        return tuple(out)

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "position": self.position,
            "match": {
                k: v
                for k, v in (
                    ("inbox_id", self.inbox_id),
                    ("channel", self.channel),
                    ("fields", dict(self.fields)),
                )
                if v
            },
            "team_id": self.team_id,
            "skills": dict(self.skills),
            "priority": self.priority,
            "steps": [{"requirement": r, "after_s": s} for r, s in self.steps],
            "offer_timeout_s": self.offer_timeout_s,
            "max_wait_s": self.max_wait_s,
            "ticket_on": list(self.ticket_on),
        }


def first_match(
    rules: Sequence[Rule], *, inbox_id: str, channel: str, fields: Mapping[str, str]
) -> Rule | None:
    for rule in sorted(rules, key=lambda r: (r.position, r.id)):
        if rule.matches(inbox_id=inbox_id, channel=channel, fields=fields):
            return rule
    return None


def parse_steps(raw: Any) -> tuple[tuple[str, float], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigProblem("steps", "steps must be a list of {requirement, after_s}")
    out = []
    for i, step in enumerate(raw):
        if not isinstance(step, dict) or set(step) != {"requirement", "after_s"}:
            raise ConfigProblem(f"steps.{i}", 'each step is {"requirement": "language:de>=4", "after_s": 30}')
        try:
            parse_requirement(str(step["requirement"]).replace("language:visitor", "language:xx"))
        except ValueError as exc:
            raise ConfigProblem(f"steps.{i}.requirement", str(exc)) from exc
        after = step["after_s"]
        if not isinstance(after, int | float) or isinstance(after, bool) or not 0 < after <= 86400:
            raise ConfigProblem(f"steps.{i}.after_s", "after_s must be seconds between 0 and 86400")
        out.append((str(step["requirement"]), float(after)))
    return tuple(out)
