"""SLA policies over REST (admins write, agents read): ``/api/v1/sla-policies``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chatserver.api import schemas as SC
from chatserver.api.common import api, body, ctx, current_agent, json_response
from chatserver.api.openapi import spec
from chatserver.errors import Invalid, NotFound, Unavailable
from chatserver.model.ids import new_id
from chatserver.model.types import Role
from chatserver.tickets.policy import Policy, parse_policy
from chatserver.tickets.sla import SlaService

MS = {"type": "integer", "minimum": 1}
POLICY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "readOnly": True},
        "name": {"type": "string", "maxLength": 100},
        "position": {"type": "integer"},
        "match": {
            "type": "object",
            "properties": {
                "priority": {"type": "string", "enum": ["low", "normal", "high", "urgent"]},
                "channel": {"type": "string"},
                "team_id": {"type": "string"},
                "tag": {"type": "string"},
            },
            "additionalProperties": False,
        },
        "targets": {
            "type": "object",
            "properties": {"first_response_s": MS, "next_response_s": MS, "resolution_s": MS},
            "minProperties": 1,
            "additionalProperties": False,
        },
        "warn_before_s": {"type": "integer", "minimum": 0},
        "calendar": {
            "oneOf": [
                {"type": "object", "properties": {"team_id": {"type": "string"}}, "required": ["team_id"]},
                {
                    "type": "object",
                    "properties": {
                        "timezone": {"type": "string"},
                        "hours": {"type": ["object", "null"]},
                        "holidays": {"type": "array", "items": {"type": "string", "format": "date"}},
                    },
                },
            ]
        },
    },
    "required": ["name", "targets", "calendar"],
}
POLICY_LIST = {"type": "object", "properties": {"items": {"type": "array", "items": POLICY}}}


def sla(request: Request) -> SlaService:
    tickets = ctx(request).service.tickets
    if tickets is None or tickets.sla is None:
        raise Unavailable("SLAs are not enabled on this server")
    return tickets.sla


async def checked(service: SlaService, policy_id: str, data: dict[str, Any]) -> Policy:
    policy = parse_policy(policy_id, data)
    team_ids = [policy.calendar.get("team_id"), policy.match.get("team_id")]
    for field, team_id in zip(("calendar.team_id", "match.team_id"), team_ids, strict=True):
        if team_id is not None:
            try:
                await service.store.get_team(str(team_id))
            except NotFound:
                raise Invalid(f"no team {team_id!r}", data={"field": field}) from None
    return policy


@api
async def list_policies(request: Request) -> Response:
    """SLA policies in the order they are tried (first match wins)."""
    await current_agent(request)
    return json_response({"items": [p.to_wire() for p in await sla(request).policies()]})


@api
async def create_policy(request: Request) -> Response:
    """Create an SLA policy (admins); refused with 422 when it could not work."""
    await current_agent(request, role=Role.ADMIN)
    service = sla(request)
    policy = await checked(service, new_id("sp_"), await body(request))
    return json_response((await service.save_policy(policy, create=True)).to_wire(), status=201)


@api
async def get_policy(request: Request) -> Response:
    """One SLA policy."""
    await current_agent(request)
    return json_response((await sla(request).get_policy(request.path_params["policy_id"])).to_wire())


@api
async def replace_policy(request: Request) -> Response:
    """Replace an SLA policy (admins)."""
    await current_agent(request, role=Role.ADMIN)
    service = sla(request)
    policy_id = request.path_params["policy_id"]
    await service.get_policy(policy_id)
    policy = await checked(service, policy_id, await body(request))
    return json_response((await service.save_policy(policy, create=False)).to_wire())


@api
async def delete_policy(request: Request) -> Response:
    """Delete an SLA policy (admins)."""
    await current_agent(request, role=Role.ADMIN)
    await sla(request).delete_policy(request.path_params["policy_id"])
    return Response(status_code=204)


routes = [
    Route("/api/v1/sla-policies", spec(list_policies, response=POLICY_LIST), methods=["GET"]),
    Route(
        "/api/v1/sla-policies",
        spec(create_policy, request=POLICY, response=POLICY, status=201),
        methods=["POST"],
    ),
    Route("/api/v1/sla-policies/{policy_id}", spec(get_policy, response=POLICY), methods=["GET"]),
    Route(
        "/api/v1/sla-policies/{policy_id}",
        spec(replace_policy, request=POLICY, response=POLICY),
        methods=["PUT"],
    ),
    Route("/api/v1/sla-policies/{policy_id}", spec(delete_policy, **SC.NO_CONTENT), methods=["DELETE"]),
]
