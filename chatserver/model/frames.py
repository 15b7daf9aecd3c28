"""Wire protocol v1: client frames decoded at one boundary into typed objects, server frames built.

:func:`decode` takes the raw text of a WebSocket frame and returns one of the ``*Frame`` dataclasses or
raises an :class:`~chatserver.errors.ApiError` (``bad_frame``, ``unknown_type``, ``invalid``,
``too_large``, ``forbidden``) carrying the frame's ``ref`` when it could be read. Nothing deeper than this
module sees a ``dict`` from the wire. See docs/protocol.md.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from chatserver.errors import ApiError, BadFrame, Forbidden, Invalid, TooLarge, UnknownType
from chatserver.model.levels import parse_levels
from chatserver.model.types import AgentStatus, Author, AuthorKind, Message, iso
from chatserver.model.visitor import VisitorConversation, public_author

PROTOCOL_VERSION = 1
MAX_REF = 128
MAX_ID = 64
MAX_CURSORS = 500
MAX_FIELDS = 32
MAX_INT = 2**53 - 1
"""The largest integer a frame may carry (a seq, a cursor): exact in every JSON client (JavaScript's
``Number.MAX_SAFE_INTEGER``) and far inside the databases' 64-bit columns."""


def _with_ref(exc: ApiError, ref: str | None) -> ApiError:
    if ref is not None:
        exc.data.setdefault("ref", ref)
    return exc


@dataclass(frozen=True, slots=True)
class Ping:
    ref: str | None


@dataclass(frozen=True, slots=True)
class ConversationStart:
    ref: str | None
    language: str | None
    skills: dict[str, int]
    fields: dict[str, str]


@dataclass(frozen=True, slots=True)
class TemplateRequest:
    """``message.send {template: {name, language, parameters}}``: an approved message template (WhatsApp)."""

    name: str
    language: str
    parameters: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MessageSend:
    ref: str | None
    conversation_id: str
    client_id: str
    text: str
    private: bool
    lang: str | None = None
    """The language the text is in, when the sender knows (e.g. a translated draft)."""
    attachments: tuple[str, ...] = ()
    """Ids of files uploaded to this conversation (``POST /api/v1/widget/uploads`` or ``/api/v1/uploads``)."""
    template: TemplateRequest | None = None
    """Agents: send this approved template instead of free text (``text`` is then empty)."""


MAX_ATTACHMENTS = 10
"""Files one message may carry."""


@dataclass(frozen=True, slots=True)
class Typing:
    ref: str | None
    conversation_id: str
    state: Literal["start", "stop"]


@dataclass(frozen=True, slots=True)
class Read:
    ref: str | None
    conversation_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class Resume:
    ref: str | None
    cursors: dict[str, int]


@dataclass(frozen=True, slots=True)
class StatusSet:
    ref: str | None
    status: AgentStatus


@dataclass(frozen=True, slots=True)
class ConversationClaim:
    ref: str | None
    conversation_id: str
    agent_id: str | None


@dataclass(frozen=True, slots=True)
class ConversationView:
    ref: str | None
    conversation_id: str


@dataclass(frozen=True, slots=True)
class ConversationClose:
    ref: str | None
    conversation_id: str


@dataclass(frozen=True, slots=True)
class OfferAnswer:
    ref: str | None
    offer_id: str
    accept: bool


@dataclass(frozen=True, slots=True)
class ConversationTransfer:
    ref: str | None
    conversation_id: str
    agent_id: str | None
    team: str | None
    skills: dict[str, int] | None


@dataclass(frozen=True, slots=True)
class DraftTranslate:
    ref: str | None
    conversation_id: str
    text: str


@dataclass(frozen=True, slots=True)
class ConversationEscalate:
    ref: str | None
    conversation_id: str
    subject: str | None
    priority: str | None


@dataclass(frozen=True, slots=True)
class CsatSubmit:
    ref: str | None
    conversation_id: str
    score: int
    comment: str | None


@dataclass(frozen=True, slots=True)
class ActionClick:
    """A visitor clicked a bot's button (adapter API): stored as their message with its label."""

    ref: str | None
    conversation_id: str
    message_id: str
    action_id: str


ClientFrame = (
    Ping
    | ConversationStart
    | MessageSend
    | Typing
    | Read
    | Resume
    | StatusSet
    | ConversationClaim
    | ConversationView
    | ConversationClose
    | DraftTranslate
    | OfferAnswer
    | ConversationTransfer
    | ConversationEscalate
    | CsatSubmit
    | ActionClick
)

VISITOR_TYPES = frozenset(
    {"ping", "conversation.start", "message.send", "typing", "read", "resume", "csat.submit", "action"}
)
AGENT_TYPES = frozenset(
    {
        "ping",
        "message.send",
        "typing",
        "read",
        "resume",
        "status.set",
        "conversation.claim",
        "conversation.view",
        "conversation.close",
        "draft.translate",
        "offer.accept",
        "offer.decline",
        "conversation.transfer",
        "conversation.escalate",
    }
)
KNOWN_TYPES = VISITOR_TYPES | AGENT_TYPES


class _Fields:
    """Typed access to one frame's fields; every failure is an ``invalid`` error naming the field."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw

    def _get(self, name: str, required: bool) -> Any:
        if name not in self.raw or self.raw[name] is None:
            if required:
                raise Invalid(f"{name} is required", data={"field": name})
            return None
        return self.raw[name]

    def string(self, name: str, *, required: bool = True, max_len: int = MAX_ID) -> str | None:
        value = self._get(name, required)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise Invalid(f"{name} must be a non-empty string", data={"field": name})
        if len(value) > max_len:
            raise Invalid(f"{name} is longer than {max_len} characters", data={"field": name})
        return value

    def req_string(self, name: str, *, max_len: int = MAX_ID) -> str:
        value = self.string(name, required=True, max_len=max_len)
        assert value is not None
        return value

    def integer(self, name: str, *, minimum: int = 0, maximum: int = MAX_INT) -> int:
        return _integer(self._get(name, True), name, minimum=minimum, maximum=maximum)

    def boolean(self, name: str) -> bool:
        value = self._get(name, False)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise Invalid(f"{name} must be true or false", data={"field": name})
        return value

    def mapping(self, name: str) -> Mapping[str, Any]:
        value = self._get(name, False)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise Invalid(f"{name} must be an object", data={"field": name})
        return value


def _integer(value: Any, field: str, *, minimum: int = 0, maximum: int = MAX_INT) -> int:
    """Every integer from the wire goes through here: no bools, no floats (``3.0``), nothing outside
    ``minimum..maximum`` (so no value can overflow a database column deeper down)."""
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise Invalid(f"{field} must be an integer from {minimum} to {maximum}", data={"field": field})
    return value


def _language(f: _Fields, name: str = "language") -> str | None:
    lang = f.string(name, required=False, max_len=35)
    if lang is not None and not all(c.isalnum() or c == "-" for c in lang):
        raise Invalid(f"{name} must be a BCP 47 tag such as 'de' or 'pt-BR'", data={"field": name})
    return lang


def _skills(f: _Fields) -> dict[str, int]:
    return parse_levels(f.raw.get("skills"), "skills") or {}


def _string_map(f: _Fields, name: str) -> dict[str, str]:
    raw = f.mapping(name)
    if len(raw) > MAX_FIELDS:
        raise Invalid(f"{name} has more than {MAX_FIELDS} entries", data={"field": name})
    out: dict[str, str] = {}
    for key, value in raw.items():
        if not key or len(key) > MAX_ID or not isinstance(value, str) or len(value) > 1000:
            raise Invalid(f"{name} must map short names to strings (<= 1000 chars)", data={"field": name})
        out[key] = value
    return out


def _start(ref: str | None, f: _Fields, _: int) -> ClientFrame:
    return ConversationStart(ref, _language(f), _skills(f), _string_map(f, "fields"))


def _text(f: _Fields, max_text: int) -> str:
    text = f._get("text", True)
    if not isinstance(text, str):
        raise Invalid("text must be a string", data={"field": "text"})
    if not text.strip():
        raise Invalid("text must not be empty", data={"field": "text"})
    if "\x00" in text:
        raise Invalid("text must not contain NUL characters", data={"field": "text"})
    if len(text.encode("utf-8", "surrogatepass")) > max_text:
        raise TooLarge(f"text is over the limit of {max_text} bytes", data={"limit": max_text})
    return text


def _attachment_ids(f: _Fields) -> tuple[str, ...]:
    raw = f._get("attachments", False)
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_ATTACHMENTS:
        raise Invalid(
            f"attachments must be a list of at most {MAX_ATTACHMENTS} upload ids",
            data={"field": "attachments"},
        )
    if not all(isinstance(a, str) and 0 < len(a) <= 64 for a in raw) or len(set(raw)) != len(raw):
        raise Invalid("attachments must be distinct upload ids", data={"field": "attachments"})
    return tuple(raw)


def _send(ref: str | None, f: _Fields, max_text: int) -> ClientFrame:
    conversation_id = f.req_string("conversation_id")
    client_id = f.req_string("client_id")
    if f.raw.get("template") is not None:
        if f.raw.get("text") not in (None, ""):
            raise Invalid("send text or a template, not both", data={"field": "text"})
        if f.boolean("private"):
            raise Invalid("a template cannot be a private note", data={"field": "private"})
        return MessageSend(ref, conversation_id, client_id, "", False, template=_template(f))
    attachments = _attachment_ids(f)
    # a message with files may have no text (a photo)
    text = "" if attachments and f.raw.get("text") in (None, "") else _text(f, max_text)
    return MessageSend(
        ref,
        conversation_id,
        client_id,
        text,
        f.boolean("private"),
        _language(f, "lang"),
        attachments,
    )


MAX_TEMPLATE_PARAMETERS = 20


def _template(f: _Fields) -> TemplateRequest:
    t = _Fields(f.mapping("template"))
    try:
        name = t.req_string("name", max_len=512)
        language = t.req_string("language", max_len=35)
        raw = t._get("parameters", False) or []
    except Invalid as exc:
        field = exc.data.get("field")
        raise Invalid(f"template.{exc.message}", data={"field": f"template.{field}"}) from None
    if (
        not isinstance(raw, list)
        or len(raw) > MAX_TEMPLATE_PARAMETERS
        or not all(isinstance(p, str) and 0 < len(p) <= 1000 and "\x00" not in p for p in raw)
    ):
        raise Invalid(
            f"template.parameters must be a list of at most {MAX_TEMPLATE_PARAMETERS} non-empty strings",
            data={"field": "template.parameters"},
        )
    return TemplateRequest(name, language, tuple(raw))


def _draft(ref: str | None, f: _Fields, max_text: int) -> ClientFrame:
    return DraftTranslate(ref, f.req_string("conversation_id"), _text(f, max_text))


def _typing(ref: str | None, f: _Fields, _: int) -> ClientFrame:
    state = f.req_string("state")
    if state not in ("start", "stop"):
        raise Invalid("state must be 'start' or 'stop'", data={"field": "state"})
    return Typing(ref, f.req_string("conversation_id"), "start" if state == "start" else "stop")


def _read(ref: str | None, f: _Fields, _: int) -> ClientFrame:
    return Read(ref, f.req_string("conversation_id"), f.integer("seq"))


def _resume(ref: str | None, f: _Fields, _: int) -> ClientFrame:
    raw = f.mapping("cursors")
    if len(raw) > MAX_CURSORS:
        raise Invalid(f"at most {MAX_CURSORS} cursors", data={"field": "cursors"})
    cursors: dict[str, int] = {}
    for key, value in raw.items():
        if not key or len(key) > MAX_ID:
            raise Invalid("cursor keys are conversation ids", data={"field": "cursors"})
        try:
            cursors[key] = _integer(value, "cursors")
        except Invalid as exc:
            exc.data["conversation_id"] = key  # which cursor
            raise
    return Resume(ref, cursors)


def _status(ref: str | None, f: _Fields, _: int) -> ClientFrame:
    status = f.req_string("status")
    if status not in (AgentStatus.ONLINE, AgentStatus.AWAY):
        raise Invalid("status must be 'online' or 'away'", data={"field": "status"})
    return StatusSet(ref, AgentStatus(status))


def _claim(ref: str | None, f: _Fields, _: int) -> ClientFrame:
    return ConversationClaim(ref, f.req_string("conversation_id"), f.string("agent_id", required=False))


def _view(ref: str | None, f: _Fields, _: int) -> ClientFrame:
    return ConversationView(ref, f.req_string("conversation_id"))


def _close(ref: str | None, f: _Fields, _: int) -> ClientFrame:
    return ConversationClose(ref, f.req_string("conversation_id"))


def _transfer(ref: str | None, f: _Fields, _: int) -> ClientFrame:
    agent_id = f.string("agent_id", required=False)
    team = f.string("team", required=False)
    skills = _skills(f) if f.raw.get("skills") is not None else None
    if sum(x is not None for x in (agent_id, team, skills)) != 1:
        raise Invalid("give exactly one of agent_id, team or skills", data={"field": "agent_id"})
    if skills == {}:
        raise Invalid("skills must name at least one skill", data={"field": "skills"})
    return ConversationTransfer(ref, f.req_string("conversation_id"), agent_id, team, skills)


TICKET_PRIORITIES = ("low", "normal", "high", "urgent")


def _escalate(ref: str | None, f: _Fields, _: int) -> ClientFrame:
    subject = f.string("subject", required=False, max_len=300)
    if subject is not None and not subject.strip():
        raise Invalid("subject must not be blank", data={"field": "subject"})
    priority = f.string("priority", required=False)
    if priority is not None and priority not in TICKET_PRIORITIES:
        raise Invalid("priority must be one of " + ", ".join(TICKET_PRIORITIES), data={"field": "priority"})
    return ConversationEscalate(ref, f.req_string("conversation_id"), subject, priority)


def _csat(ref: str | None, f: _Fields, _: int) -> ClientFrame:
    score = f.raw.get("score")
    if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
        raise Invalid("score must be an integer from 1 to 5", data={"field": "score"})
    comment = f.string("comment", required=False, max_len=2000)
    return CsatSubmit(ref, f.req_string("conversation_id"), score, comment)


_DECODERS: dict[str, Callable[[str | None, _Fields, int], ClientFrame]] = {
    "ping": lambda ref, f, _: Ping(ref),
    "conversation.start": _start,
    "message.send": _send,
    "typing": _typing,
    "read": _read,
    "resume": _resume,
    "status.set": _status,
    "conversation.claim": _claim,
    "conversation.view": _view,
    "conversation.close": _close,
    "draft.translate": _draft,
    "offer.accept": lambda ref, f, _: OfferAnswer(ref, f.req_string("offer_id"), True),
    "offer.decline": lambda ref, f, _: OfferAnswer(ref, f.req_string("offer_id"), False),
    "conversation.transfer": _transfer,
    "conversation.escalate": _escalate,
    "csat.submit": _csat,
    "action": lambda ref, f, _: ActionClick(
        ref, f.req_string("conversation_id"), f.req_string("message_id"), f.req_string("action_id")
    ),
}


def decode(text: str | bytes, *, allowed: frozenset[str], max_text_bytes: int) -> ClientFrame:
    """Decode one client frame; raise an ApiError (with ``data['ref']`` when known) if it is bad."""
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise BadFrame("frame is not valid JSON") from exc
    if not isinstance(raw, dict):
        raise BadFrame("frame must be a JSON object")
    ref = raw.get("ref")
    if ref is not None and (not isinstance(ref, str) or len(ref) > MAX_REF):
        raise Invalid(f"ref must be a string of at most {MAX_REF} characters", data={"field": "ref"})
    kind = raw.get("type")
    try:
        if not isinstance(kind, str):
            raise Invalid("type is required and must be a string", data={"field": "type"})
        if kind not in KNOWN_TYPES:
            raise UnknownType(f"unknown frame type {kind[:64]!r}")
        if kind not in allowed:
            raise Forbidden(f"{kind} is not allowed on this connection")
        return _DECODERS[kind](ref, _Fields(raw), max_text_bytes)
    except ApiError as exc:
        raise _with_ref(exc, ref) from None


# ---------------------------------------------------------------------------------------------------------
# Server -> client frames. Each returns a plain dict ready for :func:`encode`.


def encode(frame: Mapping[str, Any]) -> str:
    return orjson.dumps(frame).decode()


def hello(session_id: str, heartbeat_s: float, you: Author, limits: Mapping[str, int]) -> dict[str, Any]:
    return {
        "type": "hello",
        "protocol": PROTOCOL_VERSION,
        "session_id": session_id,
        "heartbeat_s": heartbeat_s,
        "you": you.to_wire(),
        "limits": dict(limits),
    }


def ack(ref: str | None, message: Message) -> dict[str, Any]:
    return {
        "type": "ack",
        "ref": ref,
        "client_id": message.client_id,
        "message_id": message.id,
        "conversation_id": message.conversation_id,
        "seq": message.seq,
        "created_at": iso(message.created_at),
    }


def ack_simple(ref: str | None, **extra: Any) -> dict[str, Any]:
    return {"type": "ack", "ref": ref, **extra}


def message(msg: Message) -> dict[str, Any]:
    return {
        "type": "message",
        "conversation_id": msg.conversation_id,
        "seq": msg.seq,
        "message": msg.to_wire(),
    }


_ENCODED: OrderedDict[tuple[str, int], str] = OrderedDict()
_ENCODED_MAX = 4096


def conversation_text(conversation_id: str, version: int, payload: Mapping[str, Any]) -> str:
    """The encoded ``conversation`` frame of one change, built once for every connection that gets it."""
    key = (f"c:{conversation_id}", version)
    text = _ENCODED.get(key)
    if text is None:
        text = encode(conversation(payload))
        _ENCODED[key] = text
        if len(_ENCODED) > _ENCODED_MAX:
            _ENCODED.popitem(last=False)
    return text


def visitor_conversation_text(conversation_id: str, version: int, payload: Mapping[str, Any]) -> str:
    """The same change as visitors see it (:class:`~chatserver.model.visitor.VisitorConversation`)."""
    key = (f"v:{conversation_id}", version)
    text = _ENCODED.get(key)
    if text is None:
        text = encode(conversation(VisitorConversation.from_payload(payload).to_wire()))
        _ENCODED[key] = text
        if len(_ENCODED) > _ENCODED_MAX:
            _ENCODED.popitem(last=False)
    return text


def visitor_message(msg: Message) -> dict[str, Any]:
    """The ``message`` frame as a visitor gets it: someone on the agent side is ``{kind, name}`` only (as
    in the visitor's view of the conversation, chatserver/model/visitor.py); the visitor's own messages
    keep their author."""
    frame = message(msg)
    if msg.author.kind is not AuthorKind.CONTACT:
        frame["message"]["author"] = {"kind": msg.author.kind.value, "name": msg.author.name}
    return frame


def message_text(msg: Message, *, visitor: bool = False) -> str:
    """The encoded ``message`` frame, built once per message however many connections receive it (once
    for agents, once for visitors). Keyed by id and the number of translations, so a message read back
    with translations is fresh."""
    key = (msg.id if not visitor else "v:" + msg.id, len(msg.translations) + len(msg.untranslated))
    text = _ENCODED.get(key)
    if text is None:
        text = encode(visitor_message(msg) if visitor else message(msg))
        _ENCODED[key] = text
        if len(_ENCODED) > _ENCODED_MAX:
            _ENCODED.popitem(last=False)
    return text


def translated(
    conversation_id: str, message_id: str, seq: int, lang: str, text: str | None, reason: str | None
) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "type": "message.translated",
        "conversation_id": conversation_id,
        "message_id": message_id,
        "seq": seq,
        "lang": lang,
        "text": text,
    }
    if text is None:
        frame["reason"] = reason
    return frame


def message_status(
    conversation_id: str,
    message_id: str | None,
    state: str,
    reason: str | None,
    *,
    delivery_id: str,
    kind: str,
) -> dict[str, Any]:
    """An outbound delivery's state (queued, sent, delivered, read, failed + reason)."""
    frame: dict[str, Any] = {
        "type": "message.status",
        "conversation_id": conversation_id,
        "message_id": message_id,
        "delivery_id": delivery_id,
        "kind": kind,
        "state": state,
    }
    if reason is not None:
        frame["reason"] = reason
    return frame


def ticket(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "ticket", "ticket": dict(payload)}


def sla(ticket_payload: Mapping[str, Any], kind: str, target: str, due_at_ms: int) -> dict[str, Any]:
    return {
        "type": "sla",
        "ticket": dict(ticket_payload),
        "kind": kind,
        "target": target,
        "due_at": due_at_ms,
    }


def _who(author: Author, public: bool) -> dict[str, Any] | None:
    return public_author(author.to_wire()) if public else author.to_wire()


def typing(conversation_id: str, author: Author, state: str, *, public: bool = False) -> dict[str, Any]:
    """``public``: for a visitor, who is typing is a kind and a name only."""
    return {
        "type": "typing",
        "conversation_id": conversation_id,
        "author": _who(author, public),
        "state": state,
    }


def read(conversation_id: str, reader: Author, seq: int, *, public: bool = False) -> dict[str, Any]:
    """``public``: for a visitor, the reader is a kind and a name only (no agent id)."""
    return {"type": "read", "conversation_id": conversation_id, "reader": _who(reader, public), "seq": seq}


def conversation(payload: Mapping[str, Any], ref: str | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "conversation", "conversation": dict(payload)}
    if ref is not None:
        frame["ref"] = ref
    return frame


def offer(offer_id: str, payload: Mapping[str, Any], expires_at_ms: int) -> dict[str, Any]:
    return {
        "type": "offer",
        "offer_id": offer_id,
        "conversation": dict(payload),
        "expires_at": iso(expires_at_ms),
    }


def offer_revoked(offer_id: str, conversation_id: str, reason: str) -> dict[str, Any]:
    return {
        "type": "offer.revoked",
        "offer_id": offer_id,
        "conversation_id": conversation_id,
        "reason": reason,
    }


def notice(code: str, message: str) -> dict[str, Any]:
    return {"type": "notice", "code": code, "message": message}


def snapshot(conversation_ids: list[str]) -> dict[str, Any]:
    """Ends the burst of ``conversation`` frames sent after ``hello`` (and after a bus resync)."""
    return {"type": "snapshot", "conversation_ids": conversation_ids}


def presence(agent: Author, status: str) -> dict[str, Any]:
    return {"type": "presence", "agent": agent.to_wire(), "status": status}


def resumed(cursors: Mapping[str, int], ref: str | None) -> dict[str, Any]:
    return {"type": "resumed", "ref": ref, "cursors": dict(cursors)}


def pong(ref: str | None) -> dict[str, Any]:
    return {"type": "pong", "ref": ref}


def error(exc: ApiError) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": exc.code, "message": exc.message}
    ref = exc.data.get("ref")
    if ref is not None:
        frame["ref"] = ref
    extra = {k: v for k, v in exc.data.items() if k != "ref"}
    if extra:
        frame["data"] = extra
    return frame
