"""Conversations and their messages, for agents."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chatserver.api import schemas as S
from chatserver.api.common import (
    api,
    body,
    ctx,
    current_agent,
    int_param,
    json_response,
    limit_param,
    str_field,
)
from chatserver.api.openapi import spec
from chatserver.channels.receipts import ReceiptQueries
from chatserver.errors import Invalid
from chatserver.model.status import Status


@api
async def list_conversations(request: Request) -> Response:
    """List conversations, newest first. ``?status=queued,assigned`` ``&assignee=me|<id>`` ``&cursor=``."""
    c = ctx(request)
    agent = await current_agent(request)
    statuses = [s for s in request.query_params.get("status", "").split(",") if s]
    valid = {s.value for s in Status}
    if any(s not in valid for s in statuses):
        raise Invalid(f"status must be among {sorted(valid)}", data={"field": "status"})
    assignee = request.query_params.get("assignee")
    if assignee == "me":
        assignee = agent.id
    limit = limit_param(request)
    convs = await c.store.list_conversations(
        statuses=statuses or None,
        cursor=request.query_params.get("cursor"),
        limit=limit,
        assignee_id=assignee,
        contact_id=request.query_params.get("contact_id"),
    )
    items = [await c.service.conversation_payload(conv) for conv in convs]
    next_cursor = convs[-1].id if len(convs) == limit else None
    return json_response({"items": items, "next_cursor": next_cursor})


@api
async def get_conversation(request: Request) -> Response:
    c = ctx(request)
    agent = await current_agent(request)
    conv = await c.service.agent_conversation(agent, request.path_params["conversation_id"])
    return json_response(await c.service.conversation_payload(conv))


@api
async def list_messages(request: Request) -> Response:
    """Messages by seq range: ``?after=SEQ`` (ascending) or ``?before=SEQ`` (the page before), ``&limit=``."""
    c = ctx(request)
    agent = await current_agent(request)
    conv = await c.service.agent_conversation(agent, request.path_params["conversation_id"])
    limit = limit_param(request, default=100, maximum=500)
    after, before = int_param(request, "after"), int_param(request, "before")
    if after is not None and before is not None:
        raise Invalid("give after or before, not both", data={"field": "before"})
    if before is not None:
        found = await c.store.messages_before(conv.id, before, limit=limit, include_private=True)
    else:
        found = await c.store.messages_after(conv.id, after or 0, limit=limit)
    items = [{"seq": m.seq, **m.to_wire()} for m in found]
    states = await ReceiptQueries(c.store.db).states_for([m.id for m in found])
    for item in items:
        if item["id"] in states:
            item["deliveries"] = states[item["id"]]  # outbound channel replies: queued ... read, failed
    return json_response({"conversation_id": conv.id, "last_seq": conv.last_seq, "items": items})


@api
async def update_conversation(request: Request) -> Response:
    """Change a conversation: ``{"language": "de"}`` overrides the visitor's detected language."""
    c = ctx(request)
    agent = await current_agent(request)
    data = await body(request)
    unknown = set(data) - {"language"}
    if unknown:
        raise Invalid(f"unknown fields {sorted(unknown)}", data={"field": sorted(unknown)[0]})
    conv = await c.service.agent_conversation(agent, request.path_params["conversation_id"])
    if "language" in data:
        language = str_field(data, "language", required=False, max_len=35)
        if language is not None and not all(ch.isalnum() or ch == "-" for ch in language):
            raise Invalid("language must be a BCP 47 tag such as 'de'", data={"field": "language"})
        conv = await c.service.set_language(agent, conv.id, language)
    return json_response(await c.service.conversation_payload(conv))


routes = [
    Route(
        "/api/v1/conversations",
        spec(
            list_conversations,
            response=S.items(S.CONVERSATION, cursor=True),
            query={"status": S.STR, "assignee": S.STR, "cursor": S.STR, "contact_id": S.STR, "limit": S.INT},
        ),
        methods=["GET"],
    ),
    Route(
        "/api/v1/conversations/{conversation_id}",
        spec(get_conversation, response=S.CONVERSATION),
        methods=["GET"],
    ),
    Route(
        "/api/v1/conversations/{conversation_id}",
        spec(update_conversation, request=S.obj(language=S.NSTR), response=S.CONVERSATION),
        methods=["PATCH"],
    ),
    Route(
        "/api/v1/conversations/{conversation_id}/messages",
        spec(list_messages, response=S.MESSAGES, query={"after": S.INT, "limit": S.INT}),
        methods=["GET"],
    ),
]
