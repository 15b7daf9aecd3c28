"""Routing configuration (admins): teams with business hours and members, and routing rules.
Plus routing metrics for supervisors."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chatserver.api import schemas as S
from chatserver.api.common import api, body, ctx, current_agent, json_response, levels, req_str
from chatserver.api.openapi import spec
from chatserver.errors import Invalid
from chatserver.model.ids import new_id
from chatserver.model.types import Role
from chatserver.routing.config import (
    ConfigProblem,
    Rule,
    parse_holidays,
    parse_hours,
    parse_steps,
    parse_ticket_on,
    parse_timezone,
)


def _problem(exc: ConfigProblem) -> Invalid:
    return Invalid(str(exc), data={"field": exc.field})


def _number(data: dict[str, Any], name: str, *, minimum: float, maximum: float) -> float | None:
    raw = data.get(name)
    if raw is None:
        return None
    if not isinstance(raw, int | float) or isinstance(raw, bool) or not minimum <= raw <= maximum:
        raise Invalid(f"{name} must be a number from {minimum} to {maximum}", data={"field": name})
    return float(raw)


# -- teams ------------------------------------------------------------------------------------------------


@api
async def list_teams(request: Request) -> Response:
    c = ctx(request)
    await current_agent(request)
    return json_response({"items": [t.to_wire() for t in await c.store.list_teams()]})


@api
async def create_team(request: Request) -> Response:
    """Create a team: ``{name, timezone?, hours?, holidays?, members?}``."""
    c = ctx(request)
    await current_agent(request, role=Role.ADMIN)
    data = await body(request)
    unknown = set(data) - {"name", "timezone", "hours", "holidays", "members"}
    if unknown:
        raise Invalid(f"unknown fields {sorted(unknown)}", data={"field": sorted(unknown)[0]})
    try:
        timezone = parse_timezone(data.get("timezone", "UTC"))
        hours = parse_hours(data.get("hours"))
        holidays = parse_holidays(data.get("holidays"))
    except ConfigProblem as exc:
        raise _problem(exc) from exc
    team = await c.store.create_team(req_str(data, "name", max_len=100), timezone, hours, holidays)
    if "members" in data:
        team = await c.store.set_team_members(team.id, _members(data["members"]))
    return json_response(team.to_wire(), status=201)


def _members(raw: Any) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(m, str) for m in raw):
        raise Invalid("members must be a list of agent ids", data={"field": "members"})
    return list(raw)


@api
async def update_team(request: Request) -> Response:
    c = ctx(request)
    await current_agent(request, role=Role.ADMIN)
    data = await body(request)
    team_id = request.path_params["team_id"]
    unknown = set(data) - {"name", "timezone", "hours", "holidays", "members"}
    if unknown:
        raise Invalid(f"unknown fields {sorted(unknown)}", data={"field": sorted(unknown)[0]})
    values: dict[str, Any] = {}
    try:
        if "name" in data:
            values["name"] = req_str(data, "name", max_len=100)
        if "timezone" in data:
            values["timezone"] = parse_timezone(data["timezone"])
        if "hours" in data:
            values["hours"] = parse_hours(data["hours"])
        if "holidays" in data:
            values["holidays"] = parse_holidays(data["holidays"])
    except ConfigProblem as exc:
        raise _problem(exc) from exc
    team = await c.store.update_team(team_id, **values)
    if "members" in data:
        team = await c.store.set_team_members(team_id, _members(data["members"]))
    return json_response(team.to_wire())


@api
async def delete_team(request: Request) -> Response:
    c = ctx(request)
    await current_agent(request, role=Role.ADMIN)
    await c.store.delete_team(request.path_params["team_id"])
    return Response(status_code=204)


# -- rules ------------------------------------------------------------------------------------------------


def rule_from_json(rule_id: str, data: dict[str, Any]) -> Rule:
    unknown = set(data) - {
        "name",
        "position",
        "match",
        "team_id",
        "skills",
        "priority",
        "steps",
        "offer_timeout_s",
        "max_wait_s",
        "ticket_on",
    }
    if unknown:
        raise Invalid(f"unknown fields {sorted(unknown)}", data={"field": sorted(unknown)[0]})
    match = data.get("match") or {}
    if not isinstance(match, dict) or set(match) - {"inbox_id", "channel", "fields"}:
        raise Invalid("match may set inbox_id, channel and fields", data={"field": "match"})
    fields = match.get("fields") or {}
    if not isinstance(fields, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in fields.items()
    ):
        raise Invalid("match.fields maps pre-chat field names to values", data={"field": "match.fields"})
    position = data.get("position", 0)
    priority = data.get("priority", 0)
    for name, value in (("position", position), ("priority", priority)):
        if not isinstance(value, int) or isinstance(value, bool) or not -1000 <= value <= 1000:
            raise Invalid(f"{name} must be an integer from -1000 to 1000", data={"field": name})
    try:
        steps = parse_steps(data.get("steps"))
        ticket_on = parse_ticket_on(data.get("ticket_on"))
    except ConfigProblem as exc:
        raise _problem(exc) from exc
    team_id = data.get("team_id")
    if team_id is not None and not isinstance(team_id, str):
        raise Invalid("team_id must be a team's id", data={"field": "team_id"})
    return Rule(
        id=rule_id,
        name=req_str(data, "name", max_len=100),
        position=position,
        inbox_id=match.get("inbox_id"),
        channel=match.get("channel"),
        fields=fields,
        team_id=team_id,
        skills=levels(data.get("skills"), "skills") or {},
        priority=priority,
        steps=steps,
        offer_timeout_s=_number(data, "offer_timeout_s", minimum=1, maximum=600),
        max_wait_s=_number(data, "max_wait_s", minimum=1, maximum=86400),
        ticket_on=ticket_on,
    )


@api
async def list_rules(request: Request) -> Response:
    c = ctx(request)
    await current_agent(request)
    return json_response({"items": [r.to_wire() for r in await c.store.list_rules()]})


@api
async def create_rule(request: Request) -> Response:
    """Create a routing rule: ``{name, position?, match: {inbox_id?, channel?, fields?}, team_id?, skills?,
    priority?, steps?: [{requirement: "language:de>=4", after_s: 30}], offer_timeout_s?, max_wait_s?,
    ticket_on?: [no_agent_eligible | outside_business_hours | max_wait_exceeded]}``."""
    c = ctx(request)
    await current_agent(request, role=Role.ADMIN)
    rule = await c.store.save_rule(rule_from_json(new_id("rr_"), await body(request)))
    return json_response(rule.to_wire(), status=201)


@api
async def replace_rule(request: Request) -> Response:
    c = ctx(request)
    await current_agent(request, role=Role.ADMIN)
    rule_id = request.path_params["rule_id"]
    await c.store.get_rule(rule_id)
    rule = await c.store.save_rule(rule_from_json(rule_id, await body(request)))
    return json_response(rule.to_wire())


@api
async def delete_rule(request: Request) -> Response:
    c = ctx(request)
    await current_agent(request, role=Role.ADMIN)
    await c.store.delete_rule(request.path_params["rule_id"])
    return Response(status_code=204)


@api
async def routing_metrics(request: Request) -> Response:
    """Wait times, offers, declines, timeouts, escalations, abandonment (supervisors)."""
    c = ctx(request)
    await current_agent(request, role=Role.SUPERVISOR)
    counts = await c.store.routing_counts()
    router = c.router
    body_: dict[str, Any] = {**counts, "router": None}
    if router is not None:
        decisions = sorted(router.stats.decision_ms)
        body_["router"] = {
            "leader": router.stats.leader,
            "cycles": router.stats.cycles,
            "offers": router.stats.offers,
            "expired": router.stats.expired,
            "escalated": router.stats.escalated,
            "requeued": router.stats.requeued,
            "returned": router.stats.returned,
            "unattended": router.stats.unattended,
            "set_away": router.stats.set_away,
            "refused_writes": router.stats.refused_writes,
            "decide_ms_p50": decisions[len(decisions) // 2] if decisions else None,
        }
    return json_response(body_)


routes = [
    Route("/api/v1/teams", spec(list_teams, response=S.items(S.TEAM)), methods=["GET"]),
    Route(
        "/api/v1/teams", spec(create_team, request=S.NEW_TEAM, response=S.TEAM, status=201), methods=["POST"]
    ),
    Route(
        "/api/v1/teams/{team_id}", spec(update_team, request=S.NEW_TEAM, response=S.TEAM), methods=["PATCH"]
    ),
    Route("/api/v1/teams/{team_id}", spec(delete_team, **S.NO_CONTENT), methods=["DELETE"]),
    Route("/api/v1/routing/rules", spec(list_rules, response=S.items(S.RULE)), methods=["GET"]),
    Route(
        "/api/v1/routing/rules",
        spec(create_rule, request=S.NEW_RULE, response=S.RULE, status=201),
        methods=["POST"],
    ),
    Route(
        "/api/v1/routing/rules/{rule_id}",
        spec(replace_rule, request=S.NEW_RULE, response=S.RULE),
        methods=["PUT"],
    ),
    Route("/api/v1/routing/rules/{rule_id}", spec(delete_rule, **S.NO_CONTENT), methods=["DELETE"]),
    Route("/api/v1/routing/metrics", spec(routing_metrics, response=S.ROUTING_METRICS), methods=["GET"]),
]
