"""Contacts across channels: ``POST /api/v1/contacts/{id}/merge {into}`` (agents), and the approved
message templates of a channel inbox, ``GET /api/v1/inboxes/{id}/templates`` (agents)."""

from __future__ import annotations

import contextlib

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters.meta import parse_templates
from chatserver.api import schemas as S
from chatserver.api.common import api, body, ctx, current_agent, json_response, req_str
from chatserver.api.openapi import spec
from chatserver.channels.merge import merge_contacts
from chatserver.errors import Invalid, NotFound


@api
async def merge(request: Request) -> Response:
    """Merge the contact into ``into``: its identities, conversations and tickets move to the survivor,
    which is returned; every moved conversation is published again (consoles show one contact)."""
    c = ctx(request)
    await current_agent(request)
    data = await body(request)
    unknown = set(data) - {"into"}
    if unknown:
        raise Invalid(f"unknown fields {sorted(unknown)}", data={"field": sorted(unknown)[0]})
    into = req_str(data, "into", max_len=64)
    survivor, moved = await merge_contacts(c.store.db, request.path_params["contact_id"], into)
    for conversation_id in moved:
        with contextlib.suppress(NotFound):
            await c.service.publish_conversation(await c.store.get_conversation(conversation_id))
    return json_response({"contact": survivor.to_wire(), "conversations": moved})


@api
async def templates(request: Request) -> Response:
    c = ctx(request)
    await current_agent(request)
    inbox = await c.store.get_inbox(request.path_params["inbox_id"])
    specs = parse_templates(inbox.config.get("templates", [])) if inbox.channel == "whatsapp" else ()
    return json_response({"inbox_id": inbox.id, "items": [s.to_config() for s in specs]})


routes = [
    Route(
        "/api/v1/contacts/{contact_id}/merge",
        spec(merge, request=S.obj(("into",), into=S.STR), response=S.MERGED),
        methods=["POST"],
    ),
    Route("/api/v1/inboxes/{inbox_id}/templates", spec(templates, response=S.TEMPLATES), methods=["GET"]),
]
