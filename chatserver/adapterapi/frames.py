"""Frames of ``/ws/adapter`` (and the visitor's ``action``), decoded at this one boundary.

An adapter connection speaks protocol v1 (``ping``, ``typing``, ``read``, ``resume`` decode as in
:mod:`chatserver.model.frames`) plus the frames below; see docs/protocol.md, "Adapter connections".
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from chatserver.adapterapi.model import Action, parse_actions
from chatserver.errors import ApiError, BadFrame, Forbidden, Invalid, TooLarge, UnknownType
from chatserver.model import frames as v1
from chatserver.model.levels import parse_levels

MAX_SUMMARY = 4000
MAX_EXTERNAL_ID = 200
MAX_PRIORITY = 100
BASE_TYPES = frozenset({"ping", "typing", "read", "resume"})
STATES = ("sent", "delivered", "read", "failed")
MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class Limits:
    """What the decoders bound: a text's UTF-8 bytes, an injected file's bytes."""

    max_text: int
    max_file: int


@dataclass(frozen=True, slots=True)
class BotSend:
    ref: str | None
    conversation_id: str
    client_id: str
    text: str
    actions: tuple[Action, ...]


@dataclass(frozen=True, slots=True)
class HandoffFrame:
    ref: str | None
    conversation_id: str
    summary: str
    skills: dict[str, int] | None
    priority: int | None
    team: str | None


@dataclass(frozen=True, slots=True)
class ContactUpdate:
    ref: str | None
    conversation_id: str
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ConversationUpdate:
    ref: str | None
    conversation_id: str
    skills: dict[str, int] | None
    priority: int | None


@dataclass(frozen=True, slots=True)
class InboundContact:
    external_id: str
    name: str | None
    email: str | None
    language: str | None


@dataclass(frozen=True, slots=True)
class InboundFile:
    """A file on an injected message, decoded from base64 (its type is checked by the service against
    the upload types before anything is stored)."""

    name: str | None
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Inject:
    """A custom channel's inbound message (also ``POST /api/v1/adapter/messages``)."""

    ref: str | None
    inbox_id: str
    contact: InboundContact
    external_id: str
    text: str
    files: tuple[InboundFile, ...] = ()


@dataclass(frozen=True, slots=True)
class StatusReport:
    ref: str | None
    message_id: str
    state: str
    reason: str | None


AdapterFrame = BotSend | HandoffFrame | ContactUpdate | ConversationUpdate | Inject | StatusReport


def _priority(raw: Mapping[str, Any]) -> int | None:
    value = raw.get("priority")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_PRIORITY:
        raise Invalid(f"priority must be an integer from 0 to {MAX_PRIORITY}", data={"field": "priority"})
    return value


def _opt(f: Any, name: str, max_len: int = 200) -> str | None:
    value: str | None = f.string(name, required=False, max_len=max_len)
    return value


def _send(ref: str | None, f: Any, lim: Limits) -> AdapterFrame:
    return BotSend(
        ref,
        f.req_string("conversation_id"),
        f.req_string("client_id"),
        v1._text(f, lim.max_text),
        parse_actions(f.raw.get("actions")),
    )


def _handoff(ref: str | None, f: Any, _: Limits) -> AdapterFrame:
    summary = f.raw.get("summary")
    if not isinstance(summary, str) or len(summary) > MAX_SUMMARY:
        raise Invalid(
            f"summary is required: a string of at most {MAX_SUMMARY} characters", data={"field": "summary"}
        )
    return HandoffFrame(
        ref,
        f.req_string("conversation_id"),
        summary.strip(),
        parse_levels(f.raw.get("skills"), "skills"),
        _priority(f.raw),
        _opt(f, "team", 64),
    )


def contact_values(raw: Mapping[str, Any]) -> dict[str, Any]:
    """name, email, language and attributes a bot sets on a contact."""
    unknown = set(raw) - {"type", "ref", "conversation_id", "name", "email", "language", "attributes"}
    if unknown:
        raise Invalid(f"unknown field {sorted(unknown)[0]!r}", data={"field": sorted(unknown)[0]})
    f = v1._Fields(raw)
    values: dict[str, Any] = {}
    for name, limit in (("name", 200), ("email", 320)):
        value = _opt(f, name, limit)
        if value is not None:
            values[name] = value
    language = v1._language(f)
    if language is not None:
        values["language"] = language
    attributes = raw.get("attributes")
    if attributes is not None:
        if not isinstance(attributes, dict) or len(attributes) > 100:
            raise Invalid("attributes must be an object of at most 100 entries", data={"field": "attributes"})
        for key, value in attributes.items():
            if not key or len(key) > 64 or not isinstance(value, str | int | float | bool) or value is None:
                raise Invalid(
                    "attributes map short names to strings, numbers or booleans", data={"field": "attributes"}
                )
            if isinstance(value, str) and len(value) > 1000:
                raise Invalid("an attribute value is at most 1000 characters", data={"field": "attributes"})
        values["attributes"] = attributes
    return values


def _contact(ref: str | None, f: Any, _: Limits) -> AdapterFrame:
    return ContactUpdate(ref, f.req_string("conversation_id"), contact_values(f.raw))


def _conversation(ref: str | None, f: Any, _: Limits) -> AdapterFrame:
    skills = parse_levels(f.raw.get("skills"), "skills")
    priority = _priority(f.raw)
    if skills is None and priority is None:
        raise Invalid("set skills or priority", data={"field": "skills"})
    return ConversationUpdate(ref, f.req_string("conversation_id"), skills, priority)


def decoded_size(data: str) -> int:
    """The number of bytes a base64 string decodes to, from its length alone (nothing decoded)."""
    return len(data) * 3 // 4 - len(data[-2:]) + len(data[-2:].rstrip("="))


def inbound_files(raw: Any, max_file_bytes: int) -> tuple[InboundFile, ...]:
    """``attachments: [{name?, content_type, data (base64)}]``; each file's size is checked from the
    length of its base64 before it is decoded (``too_large``, ``data.field`` ``attachments.N``)."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > v1.MAX_ATTACHMENTS:
        raise Invalid(
            f"attachments must be a list of at most {v1.MAX_ATTACHMENTS} files", data={"field": "attachments"}
        )
    out: list[InboundFile] = []
    for i, item in enumerate(raw):
        where = {"field": f"attachments.{i}"}
        if not isinstance(item, dict) or set(item) - {"name", "content_type", "data"}:
            raise Invalid("each attachment is an object {name?, content_type, data}", data=where)
        name, ctype, data = item.get("name"), item.get("content_type"), item.get("data")
        if name is not None and (not isinstance(name, str) or len(name) > 1000):
            raise Invalid("an attachment's name is a string of at most 1000 characters", data=where)
        if not isinstance(ctype, str) or not 0 < len(ctype) <= 127:
            raise Invalid("an attachment needs its content_type (e.g. image/png)", data=where)
        if not isinstance(data, str) or not data:
            raise Invalid("an attachment's data is its content in base64", data=where)
        if decoded_size(data) > max_file_bytes:
            raise TooLarge(
                f"attachment {i} is over the limit of {max_file_bytes} bytes",
                data={**where, "limit": max_file_bytes},
            )
        try:
            content = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise Invalid("an attachment's data is not valid base64", data=where) from None
        out.append(InboundFile(name, ctype, content))
    return tuple(out)


def inbound(raw: Mapping[str, Any], ref: str | None, max_text: int, max_file_bytes: int = 0) -> Inject:
    """The fields of an injected message (the frame and the REST body are the same object); with files
    the text may be empty."""
    f = v1._Fields(raw)
    contact_raw = f.mapping("contact")
    if not contact_raw:
        raise Invalid(
            "contact is required: {external_id, name?, email?, language?}", data={"field": "contact"}
        )
    c = v1._Fields(contact_raw)
    contact = InboundContact(
        c.req_string("external_id", max_len=MAX_EXTERNAL_ID),
        _opt(c, "name"),
        _opt(c, "email", 320),
        v1._language(c),
    )
    inbox_id = f.req_string("inbox_id")
    external_id = f.req_string("external_id", max_len=MAX_EXTERNAL_ID)
    files = inbound_files(raw.get("attachments"), max_file_bytes)
    text = "" if files and raw.get("text") in (None, "") else v1._text(f, max_text)
    return Inject(ref, inbox_id, contact, external_id, text, files)


def inject_body_limit(max_body_bytes: int, max_file_bytes: int) -> int:
    """The request body limit of ``POST /api/v1/adapter/messages``: the usual one plus one file's worth
    of base64 (the files of one message together are at most about ``max_file_bytes``)."""
    return max_body_bytes + 4 * -(-max_file_bytes // 3)


def _inject(ref: str | None, f: Any, lim: Limits) -> AdapterFrame:
    return inbound(f.raw, ref, lim.max_text, lim.max_file)


def status_report(raw: Mapping[str, Any], ref: str | None) -> StatusReport:
    """The fields of a delivery state report (the frame and the REST body are the same object)."""
    f = v1._Fields(raw)
    message_id = f.req_string("message_id")
    state = raw.get("state")
    if not isinstance(state, str) or state not in STATES:
        raise Invalid("state must be one of " + ", ".join(STATES), data={"field": "state"})
    return StatusReport(ref, message_id, state, _opt(f, "reason", MAX_REASON))


def _status(ref: str | None, f: Any, _: Limits) -> AdapterFrame:
    return status_report(f.raw, ref)


_DECODERS = {
    "message.send": _send,
    "conversation.handoff": _handoff,
    "contact.update": _contact,
    "conversation.update": _conversation,
    "message.inject": _inject,
    "message.status": _status,
}
ADAPTER_TYPES = frozenset(_DECODERS) | BASE_TYPES


def decode(text: str, *, max_text_bytes: int, max_file_bytes: int = 0) -> AdapterFrame | v1.ClientFrame:
    """One frame of an adapter connection; an ApiError (with the frame's ``ref``) if it is bad."""
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise BadFrame("frame is not valid JSON") from exc
    if not isinstance(raw, dict):
        raise BadFrame("frame must be a JSON object")
    kind = raw.get("type")
    if kind in BASE_TYPES or not isinstance(kind, str):
        return v1.decode(text, allowed=BASE_TYPES, max_text_bytes=max_text_bytes)
    ref = raw.get("ref")
    if ref is not None and (not isinstance(ref, str) or len(ref) > v1.MAX_REF):
        raise Invalid(f"ref must be a string of at most {v1.MAX_REF} characters", data={"field": "ref"})
    try:
        decoder = _DECODERS.get(kind)
        if decoder is None:
            if kind in v1.KNOWN_TYPES:
                raise Forbidden(f"{kind} is not allowed on an adapter connection")
            raise UnknownType(f"unknown frame type {kind[:64]!r}")
        return decoder(ref, v1._Fields(raw), Limits(max_text_bytes, max_file_bytes))
    except ApiError as exc:
        if ref is not None:
            exc.data.setdefault("ref", ref)
        raise


def delivery(
    conversation_id: str, message: Mapping[str, Any], contact_external_id: str | None, inbox_id: str
) -> dict[str, Any]:
    """An agent's reply for a custom channel to send to its platform."""
    return {
        "type": "delivery",
        "conversation_id": conversation_id,
        "inbox_id": inbox_id,
        "contact": {"external_id": contact_external_id},
        "message": dict(message),
    }
