"""Canned responses: prepared replies; ``render`` gives one in the visitor's language."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chatserver.api import schemas as S
from chatserver.api.common import api, body, ctx, current_agent, json_response, req_str, str_field
from chatserver.api.openapi import spec
from chatserver.errors import Invalid
from chatserver.model.types import Role

MAX_TEXT = 4000


def _fields(data: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    unknown = set(data) - {"shortcut", "text", "language"}
    if unknown:
        raise Invalid(f"unknown fields {sorted(unknown)}", data={"field": sorted(unknown)[0]})
    values: dict[str, Any] = {}
    if "shortcut" in data or not partial:
        shortcut = req_str(data, "shortcut", max_len=64)
        if not all(ch.isalnum() or ch in "-_." for ch in shortcut):
            raise Invalid("shortcut may use letters, digits, '-', '_' and '.'", data={"field": "shortcut"})
        values["shortcut"] = shortcut
    if "text" in data or not partial:
        values["text"] = req_str(data, "text", max_len=MAX_TEXT)
    if "language" in data:
        language = str_field(data, "language", required=False, max_len=35)
        if language is not None and not all(ch.isalnum() or ch == "-" for ch in language):
            raise Invalid("language must be a BCP 47 tag such as 'en'", data={"field": "language"})
        values["language"] = language.split("-")[0].lower() if language else None
    return values


@api
async def list_canned(request: Request) -> Response:
    """Canned responses, by shortcut; ``?q=`` searches shortcut and text."""
    c = ctx(request)
    await current_agent(request)
    found = await c.store.list_canned(request.query_params.get("q"))
    return json_response({"items": [x.to_wire() for x in found]})


@api
async def create_canned(request: Request) -> Response:
    c = ctx(request)
    agent = await current_agent(request, role=Role.SUPERVISOR)
    values = _fields(await body(request), partial=False)
    canned = await c.store.create_canned(values["shortcut"], values["text"], values.get("language"), agent.id)
    return json_response(canned.to_wire(), status=201)


@api
async def update_canned(request: Request) -> Response:
    c = ctx(request)
    await current_agent(request, role=Role.SUPERVISOR)
    values = _fields(await body(request), partial=True)
    return json_response((await c.store.update_canned(request.path_params["canned_id"], **values)).to_wire())


@api
async def delete_canned(request: Request) -> Response:
    c = ctx(request)
    await current_agent(request, role=Role.SUPERVISOR)
    await c.store.delete_canned(request.path_params["canned_id"])
    return Response(status_code=204)


@api
async def render_canned(request: Request) -> Response:
    """The canned response for a conversation: in the visitor's language when translation is on
    (``text``), with the original (``original``) and why it was not translated, if so (``reason``)."""
    c = ctx(request)
    agent = await current_agent(request)
    data = await body(request)
    canned = await c.store.get_canned(request.path_params["canned_id"])
    conv = await c.service.agent_conversation(agent, req_str(data, "conversation_id", max_len=64))
    result = await c.service.translate_for_visitor(canned.text, canned.language, conv)
    return json_response(
        {
            "conversation_id": conv.id,
            "lang": conv.language if result.text is not None else canned.language,
            "text": result.text if result.text is not None else canned.text,
            "original": canned.text,
            "reason": result.untranslated_reason,
        }
    )


routes = [
    Route(
        "/api/v1/canned-responses",
        spec(list_canned, response=S.items(S.CANNED), query={"q": S.STR}),
        methods=["GET"],
    ),
    Route(
        "/api/v1/canned-responses",
        spec(create_canned, request=S.NEW_CANNED, response=S.CANNED, status=201),
        methods=["POST"],
    ),
    Route(
        "/api/v1/canned-responses/{canned_id}",
        spec(update_canned, request=S.NEW_CANNED, response=S.CANNED),
        methods=["PATCH"],
    ),
    Route("/api/v1/canned-responses/{canned_id}", spec(delete_canned, **S.NO_CONTENT), methods=["DELETE"]),
    Route(
        "/api/v1/canned-responses/{canned_id}/render",
        spec(render_canned, request=S.obj(("conversation_id",), conversation_id=S.STR), response=S.RENDERED),
        methods=["POST"],
    ),
]
