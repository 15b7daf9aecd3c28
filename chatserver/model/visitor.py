"""What a visitor may see of their own conversation: a typed projection with an explicit field list.

Agents get the whole conversation (contact attributes and CRM notes, priority, skills, team, routing,
every reader's cursor). A visitor gets only what the widget needs to show the chat: its state, who is
answering (public name only), the language, the queue position while waiting, and how far the agent
side has read, and why a pending one waits. Everything else is left out by construction:
:meth:`VisitorConversation.to_wire` writes exactly :data:`VISITOR_FIELDS` (plus ``queue`` while
waiting), whatever the agents' payload carries.
See docs/protocol.md, "What a visitor sees".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

VISITOR_FIELDS = (
    "id",
    "status",
    "channel",
    "assignee",
    "language",
    "created_at",
    "resolved_at",
    "last_seq",
    "version",
    "reads",
    "pending_reason",
)
"""Every field of a visitor's ``conversation`` frame (``queue`` is added while it waits)."""
PUBLIC_AUTHOR_FIELDS = ("kind", "name", "avatar_url")


def public_author(author: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Who someone is to a visitor: their kind, public name and avatar when they have one (no id, email,
    role or skills)."""
    if not author:
        return None
    public = {"kind": author.get("kind"), "name": author.get("name")}
    if author.get("avatar_url"):
        public["avatar_url"] = author["avatar_url"]
    return public


@dataclass(frozen=True, slots=True)
class VisitorConversation:
    id: str
    status: str
    channel: str
    assignee: dict[str, Any] | None
    language: str | None
    created_at: str | None
    resolved_at: str | None
    last_seq: int
    version: int
    agent_read_seq: int
    """How far the agent side (any agent or bot) has read; never which agent read what."""
    contact_read_seq: int
    pending_reason: str | None = None
    """Why nobody answers yet (``no_agent_eligible``, ``outside_hours``, ...): the widget can say so."""
    queue: dict[str, Any] | None = None

    @classmethod
    def from_payload(
        cls, payload: Mapping[str, Any], queue: Mapping[str, Any] | None = None
    ) -> VisitorConversation:
        """Project the agents' wire form of a conversation (``Conversation.to_wire`` + ``reads``)."""
        agent_seq = contact_seq = 0
        for read in payload.get("reads") or ():
            kind = (read.get("reader") or {}).get("kind")
            seq = int(read.get("seq") or 0)
            if kind == "contact":
                contact_seq = max(contact_seq, seq)
            elif kind in ("agent", "bot"):
                agent_seq = max(agent_seq, seq)
        waiting = payload.get("status") in ("queued", "offered")
        q = queue if queue is not None else payload.get("queue")
        return cls(
            id=str(payload["id"]),
            status=str(payload["status"]),
            channel=str(payload.get("channel") or ""),
            assignee=public_author(payload.get("assignee")),
            language=payload.get("language"),
            created_at=payload.get("created_at"),
            resolved_at=payload.get("resolved_at"),
            last_seq=int(payload.get("last_seq") or 0),
            version=int(payload.get("version") or 0),
            agent_read_seq=agent_seq,
            contact_read_seq=contact_seq,
            pending_reason=payload.get("pending_reason") if payload.get("status") == "pending" else None,
            queue=(
                {"position": q.get("position"), "estimated_wait_s": q.get("estimated_wait_s")}
                if waiting and q
                else None
            ),
        )

    def to_wire(self) -> dict[str, Any]:
        reads = []
        if self.agent_read_seq:
            reads.append({"reader": {"kind": "agent"}, "seq": self.agent_read_seq})
        if self.contact_read_seq:
            reads.append({"reader": {"kind": "contact"}, "seq": self.contact_read_seq})
        wire: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "channel": self.channel,
            "assignee": self.assignee,
            "language": self.language,
            "created_at": self.created_at,
            "resolved_at": self.resolved_at,
            "last_seq": self.last_seq,
            "version": self.version,
            "reads": reads,
            "pending_reason": self.pending_reason,
        }
        if self.queue is not None:
            wire["queue"] = self.queue
        return wire


__all__ = ["PUBLIC_AUTHOR_FIELDS", "VISITOR_FIELDS", "VisitorConversation", "public_author"]
