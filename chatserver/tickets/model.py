"""Tickets as plain data, and the pure checks on what a client sends: custom field values, patches.

Nothing here does I/O; the service looks up agents and teams, then applies what these return.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chatserver.errors import Invalid
from chatserver.tickets.status import TicketStatus, transition


class Priority(enum.StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


PRIORITY_RANK = {Priority.LOW: 0, Priority.NORMAL: 1, Priority.HIGH: 2, Priority.URGENT: 3}


class FieldType(enum.StrEnum):
    TEXT = "text"
    NUMBER = "number"
    DROPDOWN = "dropdown"
    CHECKBOX = "checkbox"
    DATE = "date"


KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")
TAG = re.compile(r"[\w.\-:]{1,64}")
MAX_SUBJECT = 300
MAX_TEXT = 10_000
MAX_TAGS = 50


@dataclass(frozen=True, slots=True)
class FieldDef:
    """A custom ticket field an admin defined."""

    key: str
    label: str
    type: FieldType
    options: tuple[str, ...] = ()
    required: bool = False
    position: int = 0

    def to_wire(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "type": self.type.value,
            "options": list(self.options) if self.type is FieldType.DROPDOWN else None,
            "required": self.required,
            "position": self.position,
        }


@dataclass(frozen=True, slots=True)
class Actor:
    kind: str
    """agent, contact or system"""
    id: str
    name: str

    def to_wire(self) -> dict[str, str]:
        return {"kind": self.kind, "id": self.id, "name": self.name}


SYSTEM = Actor("system", "system", "System")


@dataclass(frozen=True, slots=True)
class Change:
    """One audited change: ``field`` went from ``old`` to ``new``."""

    field: str
    old: Any
    new: Any


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: str
    ticket_id: str
    at: int
    actor: Actor
    field: str
    old: Any
    new: Any

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "actor": self.actor.to_wire(),
            "field": self.field,
            "from": self.old,
            "to": self.new,
        }


@dataclass(frozen=True, slots=True)
class Ticket:
    id: str
    number: int
    subject: str
    status: TicketStatus
    priority: Priority
    requester_id: str
    conversation_id: str
    """The ticket's thread: replies go here; later conversations of the requester are linked too."""
    assignee_id: str | None = None
    team_id: str | None = None
    tags: tuple[str, ...] = ()
    fields: Mapping[str, Any] = field(default_factory=dict)
    merged_into: int | None = None
    parent_number: int | None = None
    """The solved/closed ticket this one follows up (a customer wrote after the reopen window)."""
    version: int = 1
    created_at: int = 0
    updated_at: int = 0
    solved_at: int | None = None
    first_response_at: int | None = None
    email_refs: tuple[str, ...] = ()
    """Message-IDs of the emails sent for this ticket, oldest first (In-Reply-To / References)."""
    email_note: str | None = None
    """Why no email goes out (no SMTP configured, the requester has no address), if so."""

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "number": self.number,
            "subject": self.subject,
            "status": self.status.value,
            "priority": self.priority.value,
            "requester_id": self.requester_id,
            "conversation_id": self.conversation_id,
            "assignee_id": self.assignee_id,
            "team_id": self.team_id,
            "tags": list(self.tags),
            "fields": dict(self.fields),
            "merged_into": self.merged_into,
            "parent_number": self.parent_number,
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "solved_at": self.solved_at,
            "first_response_at": self.first_response_at,
            "email_note": self.email_note,
        }


# -- validation -------------------------------------------------------------------------------------------


def subject(raw: Any, name: str = "subject") -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise Invalid(f"{name} must be a non-empty string", data={"field": name})
    if len(raw) > MAX_SUBJECT:
        raise Invalid(f"{name} must be at most {MAX_SUBJECT} characters", data={"field": name})
    return raw.strip()


def priority(raw: Any) -> Priority:
    try:
        return Priority(raw)
    except ValueError:
        raise Invalid(
            "priority must be one of low, normal, high, urgent", data={"field": "priority"}
        ) from None


def status(raw: Any) -> TicketStatus:
    try:
        return TicketStatus(raw)
    except ValueError:
        allowed = ", ".join(s.value for s in TicketStatus)
        raise Invalid(f"status must be one of {allowed}", data={"field": "status"}) from None


def tags(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or len(raw) > MAX_TAGS:
        raise Invalid(f"tags must be a list of at most {MAX_TAGS} tags", data={"field": "tags"})
    out: list[str] = []
    for t in raw:
        if not isinstance(t, str) or not TAG.fullmatch(t):
            raise Invalid(f"bad tag {t!r} (letters, digits, . - : _)", data={"field": "tags"})
        if t.lower() not in out:
            out.append(t.lower())
    return tuple(out)


def field_value(d: FieldDef, value: Any) -> Any:
    """The stored form of ``value`` for field ``d``; Invalid naming ``fields.<key>`` otherwise."""
    name = f"fields.{d.key}"

    def bad(what: str) -> Invalid:
        return Invalid(f"{name} must be {what}", data={"field": name})

    match d.type:
        case FieldType.TEXT:
            if not isinstance(value, str) or len(value) > MAX_TEXT:
                raise bad(f"text of at most {MAX_TEXT} characters")
            return value
        case FieldType.NUMBER:
            if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
                raise bad("a number")
            return value
        case FieldType.DROPDOWN:
            if value not in d.options:
                raise bad("one of " + ", ".join(d.options))
            return value
        case FieldType.CHECKBOX:
            if not isinstance(value, bool):
                raise bad("true or false")
            return value
        case FieldType.DATE:
            try:
                if not isinstance(value, str):
                    raise ValueError
                return dt.date.fromisoformat(value).isoformat()
            except ValueError:
                raise bad("a date (YYYY-MM-DD)") from None


def field_values(
    defs: Sequence[FieldDef], raw: Any, *, current: Mapping[str, Any] | None = None, require: bool = True
) -> dict[str, Any]:
    """Validate ``raw`` against the definitions and merge it into ``current``: null clears a value,
    an unknown key or a bad value is refused, and required fields must end up set."""
    if not isinstance(raw, dict):
        raise Invalid("fields must be an object of key: value", data={"field": "fields"})
    by_key = {d.key: d for d in defs}
    out = dict(current or {})
    for key, value in raw.items():
        d = by_key.get(key)
        if d is None:
            raise Invalid(f"unknown field {key!r}", data={"field": f"fields.{key}"})
        if value is None:
            out.pop(key, None)
        else:
            out[key] = field_value(d, value)
    for d in defs if require else ():
        if d.required and out.get(d.key) is None:
            raise Invalid(f"fields.{d.key} is required", data={"field": f"fields.{d.key}"})
    return out


def field_def(raw: Mapping[str, Any], *, key: str | None = None) -> FieldDef:
    """An admin's field definition ``{key, label, type, options?, required?, position?}``."""
    allowed = {"key", "label", "type", "options", "required", "position"}
    unknown = set(raw) - allowed
    if unknown:
        first = sorted(unknown)[0]
        raise Invalid(f"unknown field {first!r}", data={"field": first})
    key = key if key is not None else raw.get("key")
    if not isinstance(key, str) or not KEY.fullmatch(key):
        raise Invalid(
            "key must be lowercase letters, digits and _ (starting with a letter)", data={"field": "key"}
        )
    label = raw.get("label")
    if not isinstance(label, str) or not label.strip() or len(label) > 200:
        raise Invalid("label must be a non-empty string", data={"field": "label"})
    try:
        type_ = FieldType(str(raw.get("type")))
    except ValueError:
        raise Invalid(
            "type must be one of text, number, dropdown, checkbox, date", data={"field": "type"}
        ) from None
    options: tuple[str, ...] = ()
    if type_ is FieldType.DROPDOWN:
        opts = raw.get("options")
        if (
            not isinstance(opts, list)
            or not opts
            or not all(isinstance(o, str) and o.strip() for o in opts)
            or len(set(opts)) != len(opts)
        ):
            raise Invalid("a dropdown needs a list of distinct options", data={"field": "options"})
        options = tuple(opts)
    elif raw.get("options") is not None:
        raise Invalid("only dropdowns have options", data={"field": "options"})
    required = raw.get("required", False)
    if not isinstance(required, bool):
        raise Invalid("required must be true or false", data={"field": "required"})
    position = raw.get("position", 0)
    if not isinstance(position, int) or isinstance(position, bool):
        raise Invalid("position must be an integer", data={"field": "position"})
    return FieldDef(key, label.strip(), type_, options, required, position)


PATCHABLE = frozenset({"subject", "status", "priority", "assignee_id", "team_id", "tags", "fields"})


def plan_update(ticket: Ticket, patch: Mapping[str, Any], defs: Sequence[FieldDef]) -> list[Change]:
    """The changes a PATCH asks for (only what differs), validated; nothing is applied here.
    ``assignee_id`` and ``team_id`` are only type-checked: the caller checks they exist."""
    unknown = set(patch) - PATCHABLE - {"version"}
    if unknown:
        first = sorted(unknown)[0]
        raise Invalid(f"unknown field {first!r}", data={"field": first})
    changes: list[Change] = []
    if "subject" in patch:
        value = subject(patch["subject"])
        if value != ticket.subject:
            changes.append(Change("subject", ticket.subject, value))
    if "priority" in patch:
        p = priority(patch["priority"])
        if p is not ticket.priority:
            changes.append(Change("priority", ticket.priority.value, p.value))
    for ref in ("assignee_id", "team_id"):
        if ref in patch:
            value = patch[ref]
            if value is not None and (not isinstance(value, str) or not value):
                raise Invalid(f"{ref} must be an id or null", data={"field": ref})
            if value != getattr(ticket, ref):
                changes.append(Change(ref, getattr(ticket, ref), value))
    if "tags" in patch:
        t = tags(patch["tags"])
        if t != ticket.tags:
            changes.append(Change("tags", list(ticket.tags), list(t)))
    if "fields" in patch:
        values = field_values(defs, patch["fields"], current=ticket.fields)
        for key in sorted(set(values) | set(ticket.fields)):
            if values.get(key) != ticket.fields.get(key):
                changes.append(Change(f"fields.{key}", ticket.fields.get(key), values.get(key)))
    if "status" in patch:
        target = status(patch["status"])
        transition(ticket.status, target)
        if target is not ticket.status:
            changes.append(Change("status", ticket.status.value, target.value))
    return changes
