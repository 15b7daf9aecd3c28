"""The conversation model as plain frozen dataclasses (see docs/architecture.md)."""

from __future__ import annotations

import enum
import functools
import time
from dataclasses import dataclass, field
from typing import Any

from chatserver.model.status import Status
from chatserver.model.system_lines import SystemLine


class Role(enum.StrEnum):
    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    AGENT = "agent"

    @property
    def supervises(self) -> bool:
        return self in (Role.ADMIN, Role.SUPERVISOR)


class AuthorKind(enum.StrEnum):
    CONTACT = "contact"
    AGENT = "agent"
    BOT = "bot"
    SYSTEM = "system"


class MessageKind(enum.StrEnum):
    TEXT = "text"
    NOTE = "note"
    EVENT = "event"
    ATTACHMENT = "attachment"
    CSAT = "csat"


class AgentStatus(enum.StrEnum):
    ONLINE = "online"
    AWAY = "away"
    OFFLINE = "offline"


def iso(ms: int | None) -> str | None:
    """Epoch milliseconds as an RFC 3339 UTC timestamp with milliseconds."""
    if ms is None:
        return None
    seconds, millis = divmod(ms, 1000)
    return f"{_iso_second(seconds)}.{millis:03d}Z"


@functools.lru_cache(maxsize=256)
def _iso_second(seconds: int) -> str:
    """The formatted second (every message and ack carries a timestamp; most share their second)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


@dataclass(frozen=True, slots=True)
class Author:
    kind: AuthorKind
    id: str
    name: str

    def to_wire(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "id": self.id, "name": self.name}


SYSTEM_AUTHOR = Author(AuthorKind.SYSTEM, "system", "System")


@dataclass(frozen=True, slots=True)
class MessageAction:
    """A button under a bot's message (``{id, label}``); on a visitor's click message, the button
    clicked, with ``reply_to`` the id of the bot's message it belonged to."""

    id: str
    label: str
    reply_to: str | None = None

    def to_wire(self) -> dict[str, str]:
        wire = {"id": self.id, "label": self.label}
        if self.reply_to is not None:
            wire["reply_to"] = self.reply_to
        return wire

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> MessageAction:
        return cls(str(raw["id"]), str(raw["label"]), raw.get("reply_to"))


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    conversation_id: str
    seq: int
    author: Author
    kind: MessageKind
    text: str
    created_at: int
    client_id: str | None = None
    lang: str | None = None
    translations: dict[str, str] = field(default_factory=dict)
    untranslated: dict[str, str] = field(default_factory=dict)
    """Target language -> why there is no translation yet (provider_unavailable, unsupported_pair, ...)."""
    attachments: tuple[dict[str, Any], ...] = ()
    """The files sent with it: ``{id, name, content_type, size}`` each (chatserver/files/)."""
    actions: tuple[MessageAction, ...] = ()
    """A bot's buttons, or the button a visitor clicked (adapter API); positional use: keep it here."""
    event: SystemLine | None = None
    """A system line's code and params (its ``text`` is the English form); None for every other message."""

    @property
    def private(self) -> bool:
        return self.kind is MessageKind.NOTE

    def to_wire(self) -> dict[str, Any]:
        wire = self._wire()
        if self.actions:
            wire["actions"] = [a.to_wire() for a in self.actions]
        if self.event is not None:
            wire["event"] = self.event.to_wire()
        return wire

    def _wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "author": self.author.to_wire(),
            "kind": self.kind.value,
            "text": self.text,
            "lang": self.lang,
            "translations": self.translations,
            "untranslated": self.untranslated,
            "attachments": [dict(a) for a in self.attachments],
            "client_id": self.client_id,
            "created_at": iso(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class Contact:
    id: str
    name: str
    email: str | None = None
    phone: str | None = None
    language: str | None = None
    verified: bool = False
    attributes: dict[str, Any] = field(default_factory=dict)
    created_at: int = 0
    merged_into: str | None = None
    """Set once this contact was merged into another (the survivor holds its identities now)."""

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "phone": self.phone,
            "language": self.language,
            "verified": self.verified,
            "attributes": self.attributes,
            "created_at": iso(self.created_at),
        }
        if self.merged_into is not None:
            wire["merged_into"] = self.merged_into
        return wire


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    inbox_id: str
    channel: str
    contact_id: str
    status: Status
    priority: int = 0
    skills: dict[str, int] = field(default_factory=dict)
    language: str | None = None
    team: str | None = None
    assignee_id: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    last_seq: int = 0
    version: int = 1
    created_at: int = 0
    updated_at: int = 0
    first_response_at: int | None = None
    resolved_at: int | None = None
    enqueued_at: int | None = None
    routing: dict[str, Any] = field(default_factory=dict)
    """Routing state: steps, max_wait_s, offer_timeout_s, preferred agent, declined_by, timed_out_by."""
    offer_id: str | None = None
    offer_agent_id: str | None = None
    offer_expires_at: int | None = None
    pending_reason: str | None = None

    def to_wire(self, *, contact: Contact | None = None, assignee: Author | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "inbox_id": self.inbox_id,
            "status": self.status.value,
            "channel": self.channel,
            "contact": contact.to_wire() if contact else {"id": self.contact_id},
            "assignee": assignee.to_wire() if assignee else None,
            "team": self.team,
            "language": self.language,
            "priority": self.priority,
            "skills": self.skills,
            "fields": self.fields,
            "last_seq": self.last_seq,
            "version": self.version,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "first_response_at": iso(self.first_response_at),
            "resolved_at": iso(self.resolved_at),
            "enqueued_at": iso(self.enqueued_at),
            "pending_reason": self.pending_reason,
        }


@dataclass(frozen=True, slots=True)
class Agent:
    id: str
    email: str
    name: str
    role: Role
    active: bool = True
    status: AgentStatus = AgentStatus.ONLINE
    """The status the agent chose (online/away); the effective one is offline without a connection."""
    languages: dict[str, int] = field(default_factory=dict)
    skills: dict[str, int] = field(default_factory=dict)
    max_concurrent: int | None = None
    created_at: int = 0
    language: str | None = None
    """The language the agent reads and writes; visitors' messages are translated into it."""
    missed_offers: int = 0
    last_assigned_at: int | None = None
    avatar_url: str | None = None
    """``https://...`` or a same-origin ``/path`` (checked by :func:`chatserver.model.avatars.avatar_url`)."""

    @property
    def author(self) -> Author:
        return Author(AuthorKind.AGENT, self.id, self.name)

    def to_wire(self, *, presence: AgentStatus | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "role": self.role.value,
            "active": self.active,
            "status": (presence or self.status).value,
            "languages": self.languages,
            "skills": self.skills,
            "max_concurrent": self.max_concurrent,
            "language": self.language,
            "avatar_url": self.avatar_url,
            "created_at": iso(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class Inbox:
    id: str
    name: str
    channel: str
    key: str
    allowed_origins: tuple[str, ...] = ()
    created_at: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    """A channel inbox's settings and secrets (see adapters/; email under "email", see mail/config.py);
    never sent to clients as it is."""

    def allows_origin(self, origin: str | None) -> bool:
        """Browsers always send Origin; a client without one is not a browser page and cannot be
        hijacked cross-site. An inbox with no allowed origins accepts any page."""
        if origin is None or not self.allowed_origins:
            return True
        return origin.rstrip("/") in self.allowed_origins

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "channel": self.channel,
            "key": self.key,
            "allowed_origins": list(self.allowed_origins),
            "created_at": iso(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class CannedResponse:
    """A prepared reply agents insert by shortcut; translated into the visitor's language when used."""

    id: str
    shortcut: str
    text: str
    language: str | None
    created_at: int = 0

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "shortcut": self.shortcut,
            "text": self.text,
            "language": self.language,
            "created_at": iso(self.created_at),
        }
