"""Agents (admin CRUD), inboxes (admin) and contacts."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chatserver.api import schemas as S
from chatserver.api.auth_routes import client_host, throttled
from chatserver.api.common import (
    api,
    body,
    ctx,
    current_agent,
    json_response,
    levels,
    limit_param,
    req_str,
    str_field,
)
from chatserver.api.mail import create_email_inbox
from chatserver.api.openapi import spec
from chatserver.auth.identity import SESSION_COOKIE
from chatserver.auth.login import LoginThrottled
from chatserver.auth.passwords import common_passwords, password_problem
from chatserver.auth.secrets import sha256_hex
from chatserver.channels.inboxes import inbox_wire, validate_channel_config
from chatserver.errors import Forbidden, Invalid
from chatserver.model.avatars import avatar_url
from chatserver.model.events import NoticeEvent, agent_topic
from chatserver.model.types import Agent, Role
from chatserver.widgetcfg.model import parse_widget
from chatserver.widgetcfg.store import WidgetStore


def _role(data: dict[str, Any], required: bool) -> Role | None:
    raw = data.get("role")
    if raw is None and not required:
        return None
    try:
        return Role(raw or "agent")
    except ValueError as exc:
        raise Invalid("role must be admin, supervisor or agent", data={"field": "role"}) from exc


def _capacity(data: dict[str, Any]) -> int | None:
    raw = data.get("max_concurrent")
    if raw is None:
        return None
    if not isinstance(raw, int) or isinstance(raw, bool) or not 1 <= raw <= 100:
        raise Invalid("max_concurrent must be an integer from 1 to 100", data={"field": "max_concurrent"})
    return raw


def _language(data: dict[str, Any]) -> str | None:
    raw = data.get("language")
    if raw is None:
        return None
    if (
        not isinstance(raw, str)
        or not 2 <= len(raw) <= 35
        or not all(ch.isalnum() or ch == "-" for ch in raw)
    ):
        raise Invalid("language must be a BCP 47 tag such as 'es'", data={"field": "language"})
    return raw.split("-")[0].lower()


def valid_password(raw: Any, email: str | None) -> str:
    """The password, or Invalid naming the rule it breaks (``data.rule``)."""
    if not isinstance(raw, str):
        raise Invalid("password must be a string", data={"field": "password", "rule": "type"})
    problem = password_problem(raw, email, common_passwords())
    if problem is not None:
        raise Invalid(problem.message, data={"field": "password", "rule": problem.rule})
    return raw


@api
async def list_agents(request: Request) -> Response:
    c = ctx(request)
    await current_agent(request)
    agents = await c.store.list_agents()
    statuses = await c.service.statuses(agents)
    return json_response({"items": [a.to_wire(presence=statuses[a.id]) for a in agents]})


@api
async def create_agent(request: Request) -> Response:
    c = ctx(request)
    await current_agent(request, role=Role.ADMIN)
    data = await body(request)
    email = req_str(data, "email", max_len=320)
    if "@" not in email:
        raise Invalid("email must be an email address", data={"field": "email"})
    role = _role(data, required=True)
    assert role is not None
    name = req_str(data, "name")
    languages = levels(data.get("languages"), "languages")
    skills = levels(data.get("skills"), "skills")
    capacity, language = _capacity(data), _language(data)
    avatar = avatar_url(data.get("avatar_url"))
    password = data.get("password")
    agent = await c.store.create_agent(
        email=email,
        name=name,
        role=role,
        password_hash=None if password is None else await c.login.hash(valid_password(password, email)),
        languages=languages,
        skills=skills,
        max_concurrent=capacity,
        language=language,
        avatar_url=avatar,
    )
    return json_response(agent.to_wire(), status=201)


async def _own_password_check(request: Request, caller: Agent, data: dict[str, Any]) -> None:
    """Changing one's own password needs the current one (throttled like a login)."""
    c = ctx(request)
    current = data.get("current_password")
    if not isinstance(current, str) or not current:
        raise Invalid(
            "current_password is required to change your own password", data={"field": "current_password"}
        )
    found = await c.store.agent_credentials(caller.email)
    host = client_host(request)
    if not await c.login.verify(caller.email, host, found[1] if found else None, current):
        await c.login.failed(caller.email, host)
        raise Forbidden("current_password is wrong", data={"field": "current_password"})
    await c.login.succeeded(caller.email)


@api
async def get_agent(request: Request) -> Response:
    c = ctx(request)
    await current_agent(request)
    agent = await c.store.get_agent(request.path_params["agent_id"])
    return json_response(agent.to_wire(presence=await c.service.effective_status(agent)))


@api
async def update_agent(request: Request) -> Response:
    try:
        return await _update_agent(request)
    except LoginThrottled as exc:
        return throttled(exc)


async def _update_agent(request: Request) -> Response:
    """Admins change anything; an agent may change their own name, language, avatar and password (giving
    the current one). A new password revokes the agent's other sessions."""
    c = ctx(request)
    caller = await current_agent(request)
    target_id = request.path_params["agent_id"]
    data = await body(request)
    admin_only = {
        "role",
        "active",
        "languages",
        "skills",
        "max_concurrent",
    }  # own name, password, language, avatar: ok
    if caller.role is not Role.ADMIN and (target_id != caller.id or admin_only & set(data)):
        raise Forbidden("admins only")
    values: dict[str, Any] = {}
    if "name" in data:
        values["name"] = req_str(data, "name")
    if "password" in data:
        target = caller if target_id == caller.id else await c.store.get_agent(target_id)
        password = valid_password(data["password"], target.email)
    elif "current_password" in data:
        raise Invalid("current_password goes with password", data={"field": "current_password"})
    if "role" in data:
        role = _role(data, required=True)
        assert role is not None
        values["role"] = role.value
    if "active" in data:
        if not isinstance(data["active"], bool):
            raise Invalid("active must be true or false", data={"field": "active"})
        if target_id == caller.id and not data["active"]:
            raise Invalid("you cannot deactivate yourself", data={"field": "active"})
        values["active"] = data["active"]
    for name in ("languages", "skills"):
        if name in data:
            values[name] = levels(data.get(name), name) or {}
    if "max_concurrent" in data:
        values["max_concurrent"] = _capacity(data)
    if "language" in data:
        values["language"] = _language(data)
    if "avatar_url" in data:
        values["avatar_url"] = avatar_url(data["avatar_url"])
    unknown = set(data) - {
        "name",
        "password",
        "role",
        "active",
        "languages",
        "skills",
        "max_concurrent",
        "language",
        "avatar_url",
        "current_password",
    }
    if unknown:
        raise Invalid(f"unknown fields {sorted(unknown)}", data={"field": sorted(unknown)[0]})
    session = request.cookies.get(SESSION_COOKIE)
    if "password" in data:
        if target_id == caller.id:
            await _own_password_check(request, caller, data)
        values["password_hash"] = await c.login.hash(password)
    before = await c.store.get_agent(target_id) if "role" in values else None
    agent = await c.store.update_agent(target_id, **values)
    if "password" in data:
        keep = sha256_hex(session) if session and target_id == caller.id else None
        await c.store.revoke_sessions(target_id, keep=keep)
    if values.get("active") is False:
        c.service.revoke_access(agent.id, "deactivated")
    elif before is not None and before.role is not agent.role:
        c.service.revoke_access(agent.id, "role")
    c.service.publish(
        [(agent_topic(agent.id), NoticeEvent(agent.id, "profile", "Your profile was updated."))]
    )
    c.service.wake_router("agent updated")
    return json_response(agent.to_wire())


@api
async def delete_agent(request: Request) -> Response:
    """Agents are deactivated, never deleted: their messages keep their author."""
    c = ctx(request)
    caller = await current_agent(request, role=Role.ADMIN)
    target_id = request.path_params["agent_id"]
    if target_id == caller.id:
        raise Invalid("you cannot deactivate yourself", data={"field": "agent_id"})
    agent = await c.store.update_agent(target_id, active=False)
    c.service.revoke_access(agent.id, "deactivated")
    return json_response(agent.to_wire())


def parse_origins(data: dict[str, Any]) -> list[str] | None:
    """``allowed_origins`` of a request body, checked (also used by ``chatserver update-inbox``)."""
    return _origins(data)


def _origins(data: dict[str, Any]) -> list[str] | None:
    raw = data.get("allowed_origins")
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) > 50:
        raise Invalid("allowed_origins must be a list of origins", data={"field": "allowed_origins"})
    for origin in raw:
        if (
            not isinstance(origin, str)
            or not origin.startswith(("http://", "https://"))
            or origin.count("/") > 3
        ):
            raise Invalid(
                "each allowed origin is scheme://host[:port], e.g. https://shop.example",
                data={"field": "allowed_origins"},
            )
    return [o.rstrip("/") for o in raw]


@api
async def list_inboxes(request: Request) -> Response:
    c = ctx(request)
    await current_agent(request, role=Role.ADMIN)
    base = c.settings.base_url
    return json_response({"items": [inbox_wire(i, base) for i in await c.store.list_inboxes()]})


@api
async def create_inbox(request: Request) -> Response:
    c = ctx(request)
    await current_agent(request, role=Role.ADMIN)
    data = await body(request)
    name = req_str(data, "name")
    channel = str_field(data, "channel", required=False, max_len=32) or "widget"
    if channel == "email":
        email_inbox = await create_email_inbox(request, data)
        return json_response(inbox_wire(email_inbox, c.settings.base_url), status=201)
    config = validate_channel_config(channel, data.get("config"))
    if data.get("widget") is not None:
        parse_widget(data["widget"])  # refused before anything is created
    inbox = await c.store.create_inbox(name, channel, _origins(data) or [], config)
    if inbox.channel == "widget":
        inbox, _ = await WidgetStore(c.store.db).ensure_secret(inbox.id)
        if data.get("widget") is not None:
            inbox = await WidgetStore(c.store.db).update_widget(inbox.id, data["widget"])
    return json_response(inbox_wire(inbox, c.settings.base_url), status=201)


@api
async def get_inbox(request: Request) -> Response:
    c = ctx(request)
    await current_agent(request, role=Role.ADMIN)
    inbox = await c.store.get_inbox(request.path_params["inbox_id"])
    if inbox.channel == "widget":  # an inbox from before identity secrets gets one when an admin looks
        inbox, _ = await WidgetStore(c.store.db).ensure_secret(inbox.id)
    wire = inbox_wire(inbox, c.settings.base_url)
    if c.adapters is not None:  # the adapter API: the inbox's bot
        wire["bot"] = await c.adapters.queries.bot_for_inbox(inbox.id)
    return json_response(wire)


@api
async def update_inbox(request: Request) -> Response:
    c = ctx(request)
    await current_agent(request, role=Role.ADMIN)
    data = await body(request)
    name = str_field(data, "name", required=False)
    origins = _origins(data)
    if data.get("widget") is not None:  # the widget's settings (chatserver/widgetcfg/); validated first
        await WidgetStore(c.store.db).update_widget(request.path_params["inbox_id"], data["widget"])
    if "bot" in data:  # the adapter API: this inbox's bot (an adapter id), or null for none
        from chatserver.api.adapters import set_inbox_bot

        await set_inbox_bot(request, request.path_params["inbox_id"], data["bot"])
    inbox = await c.store.update_inbox(request.path_params["inbox_id"], name=name, allowed_origins=origins)
    wire = inbox_wire(inbox, c.settings.base_url)
    if c.adapters is not None:
        wire["bot"] = await c.adapters.queries.bot_for_inbox(inbox.id)
    return json_response(wire)


@api
async def delete_inbox(request: Request) -> Response:
    c = ctx(request)
    await current_agent(request, role=Role.ADMIN)
    await c.store.delete_inbox(request.path_params["inbox_id"])
    return Response(status_code=204)


@api
async def list_contacts(request: Request) -> Response:
    c = ctx(request)
    await current_agent(request)
    limit = limit_param(request)
    found = await c.store.list_contacts(
        cursor=request.query_params.get("cursor"), limit=limit, query=request.query_params.get("q")
    )
    return json_response(
        {
            "items": [ct.to_wire() for ct in found],
            "next_cursor": found[-1].id if len(found) == limit else None,
        }
    )


@api
async def get_contact(request: Request) -> Response:
    c = ctx(request)
    await current_agent(request)
    return json_response((await c.store.get_contact(request.path_params["contact_id"])).to_wire())


@api
async def update_contact(request: Request) -> Response:
    c = ctx(request)
    await current_agent(request)
    data = await body(request)
    values: dict[str, Any] = {}
    for name, max_len in (("name", 200), ("email", 320), ("phone", 64), ("language", 35)):
        if name in data:
            values[name] = str_field(data, name, required=False, max_len=max_len)
    if "attributes" in data:
        if not isinstance(data["attributes"], dict) or len(data["attributes"]) > 100:
            raise Invalid("attributes must be an object", data={"field": "attributes"})
        values["attributes"] = data["attributes"]
    unknown = set(data) - {"name", "email", "phone", "language", "attributes"}
    if unknown:
        raise Invalid(f"unknown fields {sorted(unknown)}", data={"field": sorted(unknown)[0]})
    return json_response(
        (await c.store.update_contact(request.path_params["contact_id"], **values)).to_wire()
    )


routes = [
    Route("/api/v1/agents", spec(list_agents, response=S.items(S.AGENT)), methods=["GET"]),
    Route(
        "/api/v1/agents",
        spec(create_agent, request=S.NEW_AGENT, response=S.AGENT, status=201),
        methods=["POST"],
    ),
    Route("/api/v1/agents/{agent_id}", spec(get_agent, response=S.AGENT), methods=["GET"]),
    Route(
        "/api/v1/agents/{agent_id}",
        spec(update_agent, request=S.AGENT_PATCH, response=S.AGENT),
        methods=["PATCH"],
    ),
    Route("/api/v1/agents/{agent_id}", spec(delete_agent, response=S.AGENT), methods=["DELETE"]),
    Route("/api/v1/inboxes", spec(list_inboxes, response=S.items(S.INBOX)), methods=["GET"]),
    Route(
        "/api/v1/inboxes",
        spec(create_inbox, request=S.NEW_INBOX, response=S.INBOX, status=201),
        methods=["POST"],
    ),
    Route("/api/v1/inboxes/{inbox_id}", spec(get_inbox, response=S.INBOX), methods=["GET"]),
    Route(
        "/api/v1/inboxes/{inbox_id}",
        spec(update_inbox, request=S.INBOX_PATCH, response=S.INBOX),
        methods=["PATCH"],
    ),
    Route("/api/v1/inboxes/{inbox_id}", spec(delete_inbox, **S.NO_CONTENT), methods=["DELETE"]),
    Route(
        "/api/v1/contacts",
        spec(
            list_contacts,
            response=S.items(S.CONTACT, cursor=True),
            query={"q": S.STR, "cursor": S.STR, "limit": S.INT},
        ),
        methods=["GET"],
    ),
    Route("/api/v1/contacts/{contact_id}", spec(get_contact, response=S.CONTACT), methods=["GET"]),
    Route(
        "/api/v1/contacts/{contact_id}",
        spec(update_contact, request=S.CONTACT_PATCH, response=S.CONTACT),
        methods=["PATCH"],
    ),
]
