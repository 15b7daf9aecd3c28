"""Tickets over REST: list/search, open, read (with thread and audit), change (with the version the
client saw), reply, merge; and the custom ticket fields admins define."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chatserver.api import schemas as SC
from chatserver.api import ticket_schemas as S
from chatserver.api.common import api, body, ctx, current_agent, json_response, limit_param
from chatserver.api.openapi import spec
from chatserver.errors import Invalid, NotFound, Unavailable
from chatserver.model.types import Role
from chatserver.tickets.model import TAG, field_def
from chatserver.tickets.model import status as parse_status
from chatserver.tickets.service import TicketService, agent_actor, parse_new_ticket
from chatserver.tickets.store import TicketFilter

MAX_REPLY = 20_000


def tickets(request: Request) -> TicketService:
    service = ctx(request).service.tickets
    if service is None:
        raise Unavailable("tickets are not enabled on this server")
    return service


def number_param(request: Request, name: str = "number") -> int:
    raw = request.path_params[name]
    if not raw.isdigit() or len(raw) > 15:
        raise NotFound(f"no ticket {raw[:20]!r}")
    return int(raw)


def _bool_param(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise Invalid(f"{name} must be true or false", data={"field": name})


@api
async def list_tickets(request: Request) -> Response:
    """List tickets: filters status, assignee, team, tag, requester, breached; sort by due or updated."""
    await current_agent(request)
    service = tickets(request)
    q = request.query_params
    unknown = set(q) - set(S.TICKET_QUERY)
    if unknown:
        first = sorted(unknown)[0]
        raise Invalid(f"unknown parameter {first!r}", data={"field": first})
    statuses = tuple(parse_status(s.strip()).value for s in q.get("status", "").split(",") if s.strip())
    sort = q.get("sort", "updated")
    if sort not in ("updated", "due"):
        raise Invalid("sort must be updated or due", data={"field": "sort"})
    tag = q.get("tag") or None
    if tag is not None and not TAG.fullmatch(tag):
        raise Invalid("tag must be letters, digits, . - : _", data={"field": "tag"})
    f = TicketFilter(
        statuses=statuses,
        assignee_id=q.get("assignee") or None,
        team_id=q.get("team") or None,
        tag=tag,
        requester_id=q.get("requester") or None,
        breached=_bool_param(request, "breached"),
    )
    page = await service.q.search(f, sort=sort, limit=limit_param(request), cursor=q.get("cursor"))
    return json_response(
        {"items": [await service.payload(t) for t in page.items], "next_cursor": page.next_cursor}
    )


@api
async def create_ticket(request: Request) -> Response:
    """Open a ticket for a contact (e.g. after a phone call)."""
    agent = await current_agent(request)
    service = tickets(request)
    data = parse_new_ticket(await body(request))
    requester_id = data.pop("requester_id")
    try:
        await service.store.get_contact(requester_id)
    except NotFound:
        raise Invalid(f"no contact {requester_id!r}", data={"field": "requester_id"}) from None
    ticket = await service.create(agent_actor(agent), requester_id=requester_id, **data)
    return json_response(await service.full(ticket), status=201)


@api
async def get_ticket(request: Request) -> Response:
    """A ticket with its thread (every linked conversation's messages) and its audit trail."""
    await current_agent(request)
    service = tickets(request)
    return json_response(await service.full(await service.q.get(number_param(request))))


@api
async def update_ticket(request: Request) -> Response:
    """Change a ticket; send the ``version`` you saw (409 with the current ticket when stale)."""
    agent = await current_agent(request)
    service = tickets(request)
    ticket = await service.update(agent, number_param(request), await body(request))
    return json_response(await service.full(ticket))


@api
async def reply_ticket(request: Request) -> Response:
    """Reply to the requester (emailed) or add an internal note (``private: true``)."""
    agent = await current_agent(request)
    service = tickets(request)
    data = await body(request)
    unknown = set(data) - {"text", "private"}
    if unknown:
        first = sorted(unknown)[0]
        raise Invalid(f"unknown field {first!r}", data={"field": first})
    text = data.get("text")
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_REPLY:
        raise Invalid(
            f"text must be a non-empty string of at most {MAX_REPLY} characters", data={"field": "text"}
        )
    private = data.get("private", False)
    if not isinstance(private, bool):
        raise Invalid("private must be true or false", data={"field": "private"})
    ticket, message = await service.reply(agent, number_param(request), text, private=private)
    thread = {m["id"]: m for m in await service.thread(ticket)}
    return json_response({"ticket": await service.payload(ticket), "message": thread[message.id]}, status=201)


@api
async def merge_ticket(request: Request) -> Response:
    """Merge this ticket into ``into``: it closes and points there; its messages join that thread."""
    agent = await current_agent(request)
    service = tickets(request)
    data = await body(request)
    unknown = set(data) - {"into"}
    if unknown:
        first = sorted(unknown)[0]
        raise Invalid(f"unknown field {first!r}", data={"field": first})
    into = data.get("into")
    if not isinstance(into, int) or isinstance(into, bool):
        raise Invalid("into must be a ticket number", data={"field": "into"})
    merged, survivor = await service.merge(agent, number_param(request), into)
    return json_response({"merged": await service.payload(merged), "into": await service.payload(survivor)})


# -- custom fields -----------------------------------------------------------------------------------------


@api
async def list_fields(request: Request) -> Response:
    """The custom ticket fields."""
    await current_agent(request)
    return json_response({"items": [d.to_wire() for d in await tickets(request).q.field_defs()]})


@api
async def create_field(request: Request) -> Response:
    """Define a custom ticket field (admins)."""
    await current_agent(request, role=Role.ADMIN)
    d = field_def(await body(request))
    return json_response((await tickets(request).q.save_field_def(d, create=True)).to_wire(), status=201)


@api
async def replace_field(request: Request) -> Response:
    """Redefine a custom ticket field (admins); the key stays."""
    await current_agent(request, role=Role.ADMIN)
    data = await body(request)
    key = request.path_params["key"]
    if data.get("key", key) != key:
        raise Invalid("the key cannot change", data={"field": "key"})
    data.pop("key", None)
    d = field_def(data, key=key)
    return json_response((await tickets(request).q.save_field_def(d, create=False)).to_wire())


@api
async def delete_field(request: Request) -> Response:
    """Delete a custom ticket field (admins); values already on tickets stay."""
    await current_agent(request, role=Role.ADMIN)
    await tickets(request).q.delete_field_def(request.path_params["key"])
    return Response(status_code=204)


routes = [
    Route(
        "/api/v1/tickets", spec(list_tickets, response=S.TICKET_PAGE, query=S.TICKET_QUERY), methods=["GET"]
    ),
    Route(
        "/api/v1/tickets",
        spec(create_ticket, request=S.NEW_TICKET, response=S.TICKET_FULL, status=201),
        methods=["POST"],
    ),
    Route("/api/v1/tickets/{number}", spec(get_ticket, response=S.TICKET_FULL), methods=["GET"]),
    Route(
        "/api/v1/tickets/{number}",
        spec(update_ticket, request=S.PATCH_TICKET, response=S.TICKET_FULL),
        methods=["PATCH"],
    ),
    Route(
        "/api/v1/tickets/{number}/replies",
        spec(reply_ticket, request=S.REPLY, response=S.REPLY_RESULT, status=201),
        methods=["POST"],
    ),
    Route(
        "/api/v1/tickets/{number}/merge",
        spec(merge_ticket, request=S.MERGE, response=S.MERGE_RESULT),
        methods=["POST"],
    ),
    Route("/api/v1/ticket-fields", spec(list_fields, response=S.FIELD_LIST), methods=["GET"]),
    Route(
        "/api/v1/ticket-fields",
        spec(create_field, request=S.FIELD_DEF, response=S.FIELD_DEF, status=201),
        methods=["POST"],
    ),
    Route(
        "/api/v1/ticket-fields/{key}",
        spec(replace_field, request=S.FIELD_DEF, response=S.FIELD_DEF),
        methods=["PUT"],
    ),
    Route("/api/v1/ticket-fields/{key}", spec(delete_field, **SC.NO_CONTENT), methods=["DELETE"]),
]
