"""JSON schemas of the REST API's objects and bodies, for the OpenAPI document (tickets, SLA and CSAT:
:mod:`chatserver.api.ticket_schemas`). They list the fields clients rely on; objects may carry more."""

from __future__ import annotations

from typing import Any

from chatserver.model.types import Role

STR: dict[str, Any] = {"type": "string"}
NSTR: dict[str, Any] = {"type": ["string", "null"]}
INT: dict[str, Any] = {"type": "integer"}
NINT: dict[str, Any] = {"type": ["integer", "null"]}
BOOL: dict[str, Any] = {"type": "boolean"}
TIME: dict[str, Any] = {"type": "string", "description": "ISO 8601, UTC"}
NTIME: dict[str, Any] = {"type": ["string", "null"], "description": "ISO 8601, UTC"}
LEVELS: dict[str, Any] = {
    "type": "object",
    "additionalProperties": {"type": "integer", "minimum": 1, "maximum": 5},
}
ANY_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}
STRS: dict[str, Any] = {"type": "array", "items": STR}


def obj(required: tuple[str, ...] = (), **properties: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = list(required)
    return out


def items(schema: dict[str, Any], *, cursor: bool = False, **extra: Any) -> dict[str, Any]:
    """A list answer: ``{items: [...]}`` (with ``next_cursor`` for paged lists)."""
    props: dict[str, Any] = {"items": {"type": "array", "items": schema}, **extra}
    if cursor:
        props["next_cursor"] = NSTR
    return obj(("items",), **props)


AUTHOR = obj(("kind",), kind={"enum": ["contact", "agent", "bot", "system"]}, id=NSTR, name=NSTR)
ATTACHMENT = obj(("id", "name", "content_type", "size"), id=STR, name=STR, content_type=STR, size=INT)
CONTACT = obj(
    ("id",),
    id=STR,
    name=NSTR,
    email=NSTR,
    phone=NSTR,
    language=NSTR,
    verified=BOOL,
    attributes=ANY_OBJECT,
    created_at=TIME,
)
DELIVERY_STATE = obj(
    ("kind", "state"),
    id=STR,
    kind={"type": "string", "description": "email, channel, adapter, webhook, ..."},
    state={"enum": ["queued", "sent", "delivered", "read", "failed"]},
    reason=NSTR,
)
MESSAGE = obj(
    ("id", "author", "kind", "text", "created_at"),
    seq=INT,
    id=STR,
    author=AUTHOR,
    kind={"enum": ["text", "note", "event", "attachment", "csat"]},
    text=STR,
    lang=NSTR,
    translations={"type": "object", "additionalProperties": STR},
    attachments={"type": "array", "items": ATTACHMENT},
    actions={"type": "array", "items": obj(("id", "label"), id=STR, label=STR, reply_to=STR)},
    deliveries={"type": "array", "items": DELIVERY_STATE},
    client_id=NSTR,
    created_at=TIME,
)
CONVERSATION = obj(
    ("id", "status", "channel"),
    id=STR,
    inbox_id=STR,
    status={"enum": ["bot", "queued", "offered", "assigned", "pending", "snoozed", "resolved"]},
    channel=STR,
    contact=CONTACT,
    assignee={"type": ["object", "null"]},
    team={"type": ["object", "null"]},
    language=NSTR,
    priority=INT,
    skills=LEVELS,
    fields=ANY_OBJECT,
    last_seq=INT,
    version=INT,
    created_at=TIME,
    updated_at=TIME,
    handoff=obj(summary=STR, by=STR, reason=STR, at=INT),
    ticket={"type": ["object", "null"]},
)
ROLE = {"enum": [r.value for r in Role]}
AGENT = obj(
    ("id", "email", "name", "role"),
    id=STR,
    email=STR,
    name=STR,
    role=ROLE,
    active=BOOL,
    status={"enum": ["online", "away", "offline"]},
    languages=LEVELS,
    skills=LEVELS,
    max_concurrent=NINT,
    language=NSTR,
    avatar_url=NSTR,
    created_at=TIME,
)
NEW_AGENT = obj(
    ("email", "name", "role"),
    email=STR,
    name=STR,
    password=STR,
    role=ROLE,
    languages=LEVELS,
    skills=LEVELS,
    max_concurrent=INT,
    language=STR,
    avatar_url=NSTR,
)
AGENT_PATCH = obj(
    name=STR,
    current_password=STR,
    role=ROLE,
    active=BOOL,
    password=STR,
    languages=LEVELS,
    skills=LEVELS,
    max_concurrent=NINT,
    language=NSTR,
    avatar_url=NSTR,
)
INBOX = obj(
    ("id", "name", "channel"),
    id=STR,
    name=STR,
    channel=STR,
    key=STR,
    allowed_origins=STRS,
    created_at=TIME,
    widget=ANY_OBJECT,
    config={"type": "object", "description": "the channel's settings; secrets as <key>_set: true|false"},
    webhook_url=STR,
    bot=NSTR,
)
NEW_INBOX = obj(("name",), name=STR, channel=STR, config=ANY_OBJECT, allowed_origins=STRS)
INBOX_PATCH = obj(name=STR, config=ANY_OBJECT, allowed_origins=STRS, widget=ANY_OBJECT, bot=NSTR)
CONTACT_PATCH = obj(name=NSTR, email=NSTR, phone=NSTR, language=NSTR, attributes=ANY_OBJECT)
CANNED = obj(("id", "shortcut", "text"), id=STR, shortcut=STR, text=STR, language=NSTR, created_at=TIME)
NEW_CANNED = obj(("shortcut", "text"), shortcut=STR, text=STR, language=STR)
TEAM = obj(
    ("id", "name"),
    id=STR,
    name=STR,
    timezone=STR,
    hours={"type": ["object", "null"]},
    holidays={"type": "array"},
    members=STRS,
)
NEW_TEAM = obj(("name",), name=STR, timezone=STR, hours=ANY_OBJECT, holidays={"type": "array"}, members=STRS)
RULE = obj(
    ("id", "name"),
    id=STR,
    name=STR,
    position=INT,
    match=ANY_OBJECT,
    team_id=NSTR,
    skills=LEVELS,
    priority=INT,
    steps={"type": "array"},
    offer_timeout_s={"type": ["number", "null"]},
    max_wait_s={"type": ["number", "null"]},
    ticket_on=STRS,
)
NEW_RULE = obj(
    ("name",),
    name=STR,
    position=INT,
    match=ANY_OBJECT,
    team=NSTR,
    skills=LEVELS,
    priority=INT,
    steps={"type": "array"},
    offer_timeout_s={"type": ["number", "null"]},
    max_wait_s={"type": ["number", "null"]},
    ticket_on=STRS,
)
ADAPTER = obj(
    ("id", "name", "kind", "inboxes"),
    id=STR,
    name=STR,
    kind={"enum": ["bot", "channel"]},
    inboxes=STRS,
    url=NSTR,
    created_at=TIME,
    revoked_at=NTIME,
)
NEW_ADAPTER = obj(("name", "kind"), name=STR, kind={"enum": ["bot", "channel"]}, inboxes=STRS, url=STR)
CREATED_ADAPTER = {
    **ADAPTER,
    "properties": {**ADAPTER["properties"], "token": STR, "secret": STR},
    "description": "token (and secret, with a url) are shown once",
}
INJECTED_FILE = obj(
    ("content_type", "data"), name=STR, content_type=STR, data={"type": "string", "contentEncoding": "base64"}
)
INJECT = obj(
    ("inbox_id", "contact", "external_id"),
    inbox_id=STR,
    contact=obj(("external_id",), external_id=STR, name=STR, email=STR, language=STR),
    external_id=STR,
    text=STR,
    attachments={"type": "array", "maxItems": 10, "items": INJECTED_FILE},
)
INJECTED = obj(
    ("message", "conversation_id", "duplicate"), message=MESSAGE, conversation_id=STR, duplicate=BOOL
)
STATUS_REPORT = obj(
    ("message_id", "state"),
    message_id=STR,
    state={"enum": ["sent", "delivered", "read", "failed"]},
    reason={"type": "string", "maxLength": 500},
)
STATUS_RESULT = obj(
    ("message_id", "delivery_id", "state", "changed"),
    message_id=STR,
    delivery_id=STR,
    state={"enum": ["queued", "sent", "delivered", "read", "failed"]},
    reason=NSTR,
    changed=BOOL,
)
WEBHOOK = obj(("id", "url", "events"), id=STR, url=STR, events=STRS, created_at=TIME)
NEW_WEBHOOK = obj(("url", "events"), url=STR, events=STRS, secret=STR)
CREATED_WEBHOOK = {**WEBHOOK, "properties": {**WEBHOOK["properties"], "secret": STR}}
WEBHOOK_DELIVERY = obj(
    ("id", "state", "attempts"),
    id=STR,
    kind=STR,
    event_id=NSTR,
    type=NSTR,
    state={"enum": ["queued", "sent", "delivered", "read", "failed"]},
    reason=NSTR,
    attempts=INT,
    created_at=INT,
    sent_at=NINT,
    next_attempt_at=INT,
)
FILE_LINK = obj(("url", "expires_at"), url=STR, expires_at={"type": "integer", "description": "Unix seconds"})
TRANSCRIPT = obj(("queued", "delivery_id"), queued=BOOL, delivery_id=STR, to=STR)
LOGIN = obj(("email", "password"), email=STR, password=STR)
SESSION = obj(("agent",), agent=AGENT, csrf_token=STR, chosen_status=STR)
OK = obj(("ok",), ok=BOOL)
RENDERED = obj(("text", "original"), conversation_id=STR, lang=NSTR, text=STR, original=STR, reason=NSTR)
MERGED = obj(("contact", "conversations"), contact=CONTACT, conversations=STRS)
TEMPLATES = items(obj(("name", "language"), name=STR, language=STR, parameters=INT, body=STR), inbox_id=STR)
MESSAGES = items(MESSAGE, conversation_id=STR, last_seq=INT)
EMAIL = obj(
    ("message_id", "conversation_id"),
    message_id=STR,
    conversation_id=STR,
    rfc_message_id=STR,
    subject=STR,
    text=NSTR,
    html=NSTR,
    attachments={"type": "array"},
    size=INT,
)
ROUTING_METRICS = obj(
    ("events",),
    events={"type": "object", "additionalProperties": INT},
    wait_ms_avg={"type": ["number", "null"]},
    wait_ms_max={"type": ["number", "null"]},
    handle_ms_avg={"type": ["number", "null"]},
    router={"type": ["object", "null"]},
)
METRICS = obj(
    ("messages", "hub", "bus"), messages=ANY_OBJECT, hub=ANY_OBJECT, bus=ANY_OBJECT, translation=ANY_OBJECT
)
OPENAPI = obj(("openapi", "paths"), openapi=STR, info=ANY_OBJECT, paths=ANY_OBJECT, components=ANY_OBJECT)
NO_CONTENT: dict[str, Any] = {"status": 204, "response": None}
"""An answer without a body (deleted; a CORS preflight)."""
