"""JSON schemas of the ticket, ticket field, SLA policy and CSAT endpoints (for the OpenAPI document)."""

from __future__ import annotations

from typing import Any

STR = {"type": "string"}
INT = {"type": "integer"}
NSTR = {"type": ["string", "null"]}
NINT = {"type": ["integer", "null"]}
PRIORITY = {"type": "string", "enum": ["low", "normal", "high", "urgent"]}
STATUS = {"type": "string", "enum": ["new", "open", "pending", "on_hold", "solved", "closed"]}
TAGS = {"type": "array", "items": STR, "maxItems": 50}
FIELDS = {"type": "object", "description": "custom field values: {key: value}", "additionalProperties": True}

TICKET: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": STR,
        "number": INT,
        "subject": STR,
        "status": STATUS,
        "priority": PRIORITY,
        "requester_id": STR,
        "conversation_id": STR,
        "assignee_id": NSTR,
        "team_id": NSTR,
        "tags": TAGS,
        "fields": FIELDS,
        "merged_into": NINT,
        "parent_number": NINT,
        "version": INT,
        "created_at": INT,
        "updated_at": INT,
        "solved_at": NINT,
        "first_response_at": NINT,
        "email_note": NSTR,
        "sla": {"type": ["object", "null"]},
        "csat": {"type": ["object", "null"]},
    },
    "required": ["id", "number", "subject", "status", "priority", "requester_id", "version"],
}

AUDIT = {
    "type": "object",
    "properties": {
        "id": STR,
        "at": INT,
        "actor": {"type": "object", "properties": {"kind": STR, "id": STR, "name": STR}},
        "field": STR,
        "from": {},
        "to": {},
    },
}

THREAD_ITEM = {
    "type": "object",
    "properties": {
        "id": STR,
        "conversation_id": STR,
        "seq": INT,
        "author": {"type": "object"},
        "kind": {"type": "string", "enum": ["text", "note", "event", "attachment", "csat"]},
        "text": STR,
        "created_at": INT,
        "deliveries": {"type": "array", "items": {"type": "object"}},
    },
}

TICKET_FULL = {
    "allOf": [
        TICKET,
        {
            "type": "object",
            "properties": {
                "thread": {"type": "array", "items": THREAD_ITEM},
                "audit": {"type": "array", "items": AUDIT},
            },
        },
    ]
}

TICKET_PAGE = {
    "type": "object",
    "properties": {"items": {"type": "array", "items": TICKET}, "next_cursor": NSTR},
}

NEW_TICKET = {
    "type": "object",
    "properties": {
        "requester_id": STR,
        "subject": {"type": "string", "maxLength": 300},
        "priority": PRIORITY,
        "assignee_id": STR,
        "team_id": STR,
        "tags": TAGS,
        "fields": FIELDS,
        "text": {"type": "string", "description": "the first message of the thread (e.g. call notes)"},
    },
    "required": ["requester_id", "subject"],
    "additionalProperties": False,
}

PATCH_TICKET = {
    "type": "object",
    "properties": {
        "version": {
            "type": "integer",
            "description": "the version you saw; 409 with the current ticket if stale",
        },
        "subject": {"type": "string", "maxLength": 300},
        "status": STATUS,
        "priority": PRIORITY,
        "assignee_id": NSTR,
        "team_id": NSTR,
        "tags": TAGS,
        "fields": FIELDS,
    },
    "required": ["version"],
    "additionalProperties": False,
}

REPLY = {
    "type": "object",
    "properties": {"text": {"type": "string"}, "private": {"type": "boolean", "default": False}},
    "required": ["text"],
    "additionalProperties": False,
}

REPLY_RESULT = {"type": "object", "properties": {"ticket": TICKET, "message": THREAD_ITEM}}

MERGE = {
    "type": "object",
    "properties": {"into": {"type": "integer", "description": "the surviving ticket's number"}},
    "required": ["into"],
    "additionalProperties": False,
}

MERGE_RESULT = {"type": "object", "properties": {"merged": TICKET, "into": TICKET}}

FIELD_DEF = {
    "type": "object",
    "properties": {
        "key": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,63}$"},
        "label": STR,
        "type": {"type": "string", "enum": ["text", "number", "dropdown", "checkbox", "date"]},
        "options": {"type": ["array", "null"], "items": STR},
        "required": {"type": "boolean"},
        "position": INT,
    },
    "required": ["key", "label", "type"],
}

FIELD_LIST = {"type": "object", "properties": {"items": {"type": "array", "items": FIELD_DEF}}}

TICKET_QUERY = {
    "status": {"type": "string", "description": "comma-separated statuses"},
    "assignee": STR,
    "team": STR,
    "tag": STR,
    "requester": STR,
    "breached": {"type": "boolean"},
    "sort": {"type": "string", "enum": ["updated", "due"]},
    "limit": {"type": "integer", "minimum": 1, "maximum": 200},
    "cursor": STR,
}
