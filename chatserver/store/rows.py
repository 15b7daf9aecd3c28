"""Row -> domain type conversion (one place, so every query returns the same shapes)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Row

from chatserver.model.status import Status
from chatserver.model.system_lines import SystemLine
from chatserver.model.types import (
    Agent,
    AgentStatus,
    Author,
    AuthorKind,
    CannedResponse,
    Contact,
    Conversation,
    Inbox,
    Message,
    MessageAction,
    MessageKind,
    Role,
)


def inbox(r: Row[Any]) -> Inbox:
    return Inbox(
        r.id, r.name, r.channel, r.key, tuple(r.allowed_origins or ()), r.created_at, dict(r.config or {})
    )


def agent(r: Row[Any]) -> Agent:
    return Agent(
        id=r.id,
        email=r.email,
        name=r.name,
        role=Role(r.role),
        active=bool(r.active),
        status=AgentStatus(r.status),
        languages=dict(r.languages or {}),
        skills=dict(r.skills or {}),
        max_concurrent=r.max_concurrent,
        created_at=r.created_at,
        language=r.language,
        missed_offers=r.missed_offers or 0,
        last_assigned_at=r.last_assigned_at,
        avatar_url=r.avatar_url,
    )


def contact(r: Row[Any]) -> Contact:
    return Contact(
        id=r.id,
        name=r.name,
        email=r.email,
        phone=r.phone,
        language=r.language,
        verified=bool(r.verified),
        attributes=dict(r.attributes or {}),
        created_at=r.created_at,
        merged_into=getattr(r, "merged_into", None),
    )


def conversation(r: Row[Any]) -> Conversation:
    return Conversation(
        id=r.id,
        inbox_id=r.inbox_id,
        channel=r.channel,
        contact_id=r.contact_id,
        status=Status(r.status),
        priority=r.priority,
        skills=dict(r.skills or {}),
        language=r.language,
        team=r.team,
        assignee_id=r.assignee_id,
        fields=dict(r.fields or {}),
        last_seq=r.last_seq,
        version=r.version,
        created_at=r.created_at,
        updated_at=r.updated_at,
        first_response_at=r.first_response_at,
        resolved_at=r.resolved_at,
        enqueued_at=r.enqueued_at,
        routing=dict(r.routing or {}),
        offer_id=r.offer_id,
        offer_agent_id=r.offer_agent_id,
        offer_expires_at=r.offer_expires_at,
        pending_reason=r.pending_reason,
    )


def message(r: Row[Any]) -> Message:
    return Message(
        id=r.id,
        conversation_id=r.conversation_id,
        seq=r.seq,
        author=Author(AuthorKind(r.author_kind), r.author_id, r.author_name),
        kind=MessageKind(r.kind),
        text=r.text,
        created_at=r.created_at,
        client_id=r.client_id,
        actions=tuple(MessageAction.from_wire(a) for a in r._mapping.get("actions") or ()),
        lang=r.lang,
        translations=dict(r.translations or {}),
        untranslated=dict(r.untranslated or {}),
        attachments=tuple(r.attachments or ()),
        event=SystemLine.from_stored(r.event),
    )


def canned(r: Row[Any]) -> CannedResponse:
    return CannedResponse(r.id, r.shortcut, r.text, r.language, r.created_at)
