"""The webhook events of changes, and which webhook gets which. Pure: no I/O, no clock.

Event: ``{id, type, created_at, data}``; ``id`` is the same on every retry and re-send (receivers dedupe
on it); ``created_at`` is when the change was made. Types and their ``data``:

- ``conversation.created`` ``{conversation}``
- ``conversation.status_changed`` ``{conversation, previous_status, status}``
- ``message.created`` ``{conversation_id, seq, message}`` (public messages: not notes or system lines)
- ``csat.submitted`` ``{conversation_id, message}``
- ``ticket.updated`` ``{ticket}``

Each object is as of its change (read inside the change's transaction).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from chatserver.model.ids import new_id
from chatserver.model.types import AuthorKind, Message, MessageKind, iso
from chatserver.outbox.registry import NewDelivery
from chatserver.store.changes import ConversationChange
from chatserver.webhooks.store import KIND, Webhook, delivery_key

Event = dict[str, Any]


def event(type_: str, data: Mapping[str, Any], created_at: str | None) -> Event:
    return {"id": new_id("evt_"), "type": type_, "created_at": created_at, "data": dict(data)}


def message_event(m: Message) -> Event | None:
    """A new message's event; None for notes and system lines."""
    if m.author.kind is AuthorKind.SYSTEM or m.kind is MessageKind.NOTE:
        return None
    at = iso(m.created_at)
    if m.kind is MessageKind.CSAT:
        return event("csat.submitted", {"conversation_id": m.conversation_id, "message": m.to_wire()}, at)
    data = {"conversation_id": m.conversation_id, "seq": m.seq, "message": m.to_wire()}
    return event("message.created", data, at)


def conversation_event(change: ConversationChange) -> Event:
    conv = change.conversation
    if change.previous is None:
        return event("conversation.created", {"conversation": conv}, conv.get("created_at"))
    data = {"conversation": conv, "previous_status": change.previous.value, "status": conv["status"]}
    return event("conversation.status_changed", data, conv.get("updated_at"))


def ticket_event(ticket: Mapping[str, Any]) -> Event:
    updated = ticket.get("updated_at")
    return event(
        "ticket.updated", {"ticket": dict(ticket)}, iso(updated) if isinstance(updated, int) else None
    )


def deliveries(events: Iterable[Event], hooks: Sequence[Webhook]) -> list[NewDelivery]:
    """One outbox row per (webhook, event) it subscribed to; the event itself is the row's payload."""
    return [
        NewDelivery(KIND, delivery_key(h.id, str(ev["id"])), {"webhook_id": h.id, "event": ev})
        for ev in events
        for h in hooks
        if ev["type"] in h.events
    ]
