"""Typed bus events: what one process tells the others after a commit.

The bus is a low-latency notification only; the database is the source of truth (a lost event is
repaired from the store by seq gap detection and reconciliation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from chatserver.model.system_lines import SystemLine
from chatserver.model.types import Author, AuthorKind, Message, MessageAction, MessageKind

AGENTS_TOPIC = "agents"
"""Presence, tickets and SLA events for every agent connection (never conversation changes)."""
QUEUE_TOPIC = "queue"
"""Every conversation change; each process's hub passes on only the waiting queue's (arrivals, changes and
departures) to the connections watching the queue (supervisors; every agent with manual routing)."""
PENDING_TOPIC = "queue:pending"
"""Local to each process (never published): the pending part of the queue, which routing gave up on and
any agent may take, for the agents who do not watch the whole queue."""
ROUTING_TOPIC = "routing"


def agent_topic(agent_id: str) -> str:
    return f"agent:{agent_id}"


def inbox_topic(inbox_id: str) -> str:
    """Every change of the inbox's conversations: what adapters (bots, custom channels) of it follow."""
    return f"inbox:{inbox_id}"


def conversation_topic(conversation_id: str) -> str:
    return f"conv:{conversation_id}"


@dataclass(frozen=True, slots=True)
class MessageEvent:
    message: Message


@dataclass(frozen=True, slots=True)
class ConversationEvent:
    """A conversation changed (status, assignee, ...). ``payload`` is its wire form."""

    conversation_id: str
    version: int
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TypingEvent:
    conversation_id: str
    author: Author
    state: str


@dataclass(frozen=True, slots=True)
class ReadEvent:
    conversation_id: str
    reader: Author
    seq: int


@dataclass(frozen=True, slots=True)
class PresenceEvent:
    agent: Author
    status: str


@dataclass(frozen=True, slots=True)
class TranslatedEvent:
    """A message's translation into ``lang`` arrived (``text``), or failed for now (``reason``)."""

    conversation_id: str
    message_id: str
    seq: int
    lang: str
    text: str | None
    reason: str | None
    for_agents: bool = False
    """A translation for agents only (of a visitor's own message): visitors do not get it."""


@dataclass(frozen=True, slots=True)
class OfferEvent:
    """A conversation is offered to ``agent_id`` until ``expires_at`` (epoch ms)."""

    agent_id: str
    offer_id: str
    expires_at: int
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class OfferRevokedEvent:
    agent_id: str
    offer_id: str
    conversation_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class NoticeEvent:
    """Something an agent must be told (e.g. set away after missed offers)."""

    agent_id: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class AccessEvent:
    """An agent's access changed: their live connections must end (on every process).

    ``reason`` is ``deactivated`` (every connection closes with 4401), ``logout`` (only the connections
    of the login session whose hash is ``session_hash`` close, with 4401) or ``role`` (every connection
    closes with 4403: the client reconnects with its new rights)."""

    agent_id: str
    reason: str
    session_hash: str | None = None


ACCESS_REASONS = frozenset({"deactivated", "logout", "role"})


@dataclass(frozen=True, slots=True)
class QueueEvent:
    conversation_id: str
    position: int
    estimated_wait_s: float


@dataclass(frozen=True, slots=True)
class WakeEvent:
    """Something changed that the router should look at now."""

    reason: str


@dataclass(frozen=True, slots=True)
class DeliveryEvent:
    """An outbound delivery of a message changed state (queued, sent, delivered, read, failed)."""

    conversation_id: str
    message_id: str | None
    delivery_id: str
    kind: str
    state: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class TicketEvent:
    """A ticket changed. Agents get it when it is assigned to them, their team's (``watchers``: the
    team's members), or they follow one of its conversations; supervisors get every one."""

    number: int
    version: int
    payload: dict[str, Any]
    assignee_id: str | None
    watchers: tuple[str, ...]
    conversation_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SlaEvent:
    """An SLA target of a ticket is about to be breached (``warning``) or was (``breach``)."""

    number: int
    kind: str
    target: str
    due_at: int
    assignee_id: str | None
    ticket: dict[str, Any]


Event = (
    MessageEvent
    | ConversationEvent
    | TypingEvent
    | ReadEvent
    | PresenceEvent
    | TranslatedEvent
    | OfferEvent
    | OfferRevokedEvent
    | NoticeEvent
    | AccessEvent
    | QueueEvent
    | WakeEvent
    | DeliveryEvent
    | TicketEvent
    | SlaEvent
)


def _author(raw: dict[str, Any]) -> Author:
    return Author(AuthorKind(raw["kind"]), raw["id"], raw["name"])


def _author_json(a: Author) -> dict[str, Any]:
    return {"kind": a.kind.value, "id": a.id, "name": a.name}


def encode_event(event: Event) -> bytes:
    body: dict[str, Any]
    match event:
        case MessageEvent(message=m):
            body = {
                "t": "message",
                "id": m.id,
                "c": m.conversation_id,
                "seq": m.seq,
                "a": _author_json(m.author),
                "k": m.kind.value,
                "text": m.text,
                "at": m.created_at,
                "cid": m.client_id,
                "lang": m.lang,
                "tr": m.translations,
                "un": m.untranslated,
            }
            if m.actions:  # a bot's buttons (adapter API)
                body["ac"] = [a.to_wire() for a in m.actions]
            if m.attachments:
                body["att"] = [dict(a) for a in m.attachments]
            if m.event is not None:  # a system line's code and params
                body["ev"] = m.event.to_wire()
        case ConversationEvent():
            body = {"t": "conversation", "c": event.conversation_id, "v": event.version, "p": event.payload}
        case TypingEvent():
            body = {
                "t": "typing",
                "c": event.conversation_id,
                "a": _author_json(event.author),
                "s": event.state,
            }
        case ReadEvent():
            body = {
                "t": "read",
                "c": event.conversation_id,
                "a": _author_json(event.reader),
                "seq": event.seq,
            }
        case PresenceEvent():
            body = {"t": "presence", "a": _author_json(event.agent), "s": event.status}
        case TranslatedEvent():
            body = {
                "t": "translated",
                "c": event.conversation_id,
                "m": event.message_id,
                "seq": event.seq,
                "l": event.lang,
                "text": event.text,
                "r": event.reason,
                "ag": event.for_agents,
            }
        case OfferEvent():
            body = {
                "t": "offer",
                "a": event.agent_id,
                "o": event.offer_id,
                "x": event.expires_at,
                "p": event.payload,
            }
        case OfferRevokedEvent():
            body = {
                "t": "revoked",
                "a": event.agent_id,
                "o": event.offer_id,
                "c": event.conversation_id,
                "r": event.reason,
            }
        case NoticeEvent():
            body = {"t": "notice", "a": event.agent_id, "code": event.code, "m": event.message}
        case AccessEvent():
            body = {"t": "access", "a": event.agent_id, "r": event.reason, "s": event.session_hash}
        case QueueEvent():
            body = {
                "t": "queue",
                "c": event.conversation_id,
                "pos": event.position,
                "eta": event.estimated_wait_s,
            }
        case WakeEvent():
            body = {"t": "wake", "r": event.reason}
        case DeliveryEvent():
            body = {
                "t": "delivery",
                "c": event.conversation_id,
                "m": event.message_id,
                "d": event.delivery_id,
                "k": event.kind,
                "s": event.state,
                "r": event.reason,
            }
        case TicketEvent():
            body = {
                "t": "ticket",
                "n": event.number,
                "v": event.version,
                "p": event.payload,
                "a": event.assignee_id,
                "w": list(event.watchers),
                "c": list(event.conversation_ids),
            }
        case SlaEvent():
            body = {
                "t": "sla",
                "n": event.number,
                "k": event.kind,
                "g": event.target,
                "d": event.due_at,
                "a": event.assignee_id,
                "p": event.ticket,
            }
    return orjson.dumps(body)


def decode_event(data: bytes | str) -> Event:
    """Decode an event from the bus; raises ValueError/KeyError on a foreign payload."""
    raw = orjson.loads(data)
    match raw["t"]:
        case "message":
            return MessageEvent(
                Message(
                    id=raw["id"],
                    conversation_id=raw["c"],
                    seq=raw["seq"],
                    author=_author(raw["a"]),
                    kind=MessageKind(raw["k"]),
                    text=raw["text"],
                    created_at=raw["at"],
                    client_id=raw["cid"],
                    lang=raw["lang"],
                    translations=raw["tr"],
                    untranslated=raw.get("un") or {},
                    actions=tuple(MessageAction.from_wire(a) for a in raw.get("ac") or ()),
                    attachments=tuple(dict(a) for a in raw.get("att") or ()),
                    event=SystemLine.from_stored(raw.get("ev")),
                )
            )
        case "conversation":
            return ConversationEvent(raw["c"], raw["v"], raw["p"])
        case "typing":
            return TypingEvent(raw["c"], _author(raw["a"]), raw["s"])
        case "read":
            return ReadEvent(raw["c"], _author(raw["a"]), raw["seq"])
        case "presence":
            return PresenceEvent(_author(raw["a"]), raw["s"])
        case "translated":
            return TranslatedEvent(
                raw["c"], raw["m"], raw["seq"], raw["l"], raw["text"], raw["r"], bool(raw.get("ag"))
            )
        case "offer":
            return OfferEvent(raw["a"], raw["o"], raw["x"], raw["p"])
        case "revoked":
            return OfferRevokedEvent(raw["a"], raw["o"], raw["c"], raw["r"])
        case "notice":
            return NoticeEvent(raw["a"], raw["code"], raw["m"])
        case "access":
            if raw["r"] not in ACCESS_REASONS:
                raise ValueError(f"unknown access change {raw['r']!r}")
            return AccessEvent(raw["a"], raw["r"], raw.get("s"))
        case "queue":
            return QueueEvent(raw["c"], raw["pos"], raw["eta"])
        case "wake":
            return WakeEvent(raw["r"])
        case "ticket":
            return TicketEvent(raw["n"], raw["v"], raw["p"], raw["a"], tuple(raw["w"]), tuple(raw["c"]))
        case "sla":
            return SlaEvent(raw["n"], raw["k"], raw["g"], raw["d"], raw["a"], raw["p"])
        case "delivery":
            return DeliveryEvent(raw["c"], raw["m"], raw["d"], raw["k"], raw["s"], raw["r"])
    raise ValueError(f"unknown event type {raw['t']!r}")
