"""The ticket-related client frames (``conversation.escalate``, ``csat.submit``), handled for a session."""

from __future__ import annotations

from typing import Any

from chatserver.chat import ChatService
from chatserver.errors import Unavailable
from chatserver.model import frames
from chatserver.model.types import Agent, Contact
from chatserver.tickets.model import Priority
from chatserver.tickets.service import agent_actor


async def handle_ticket_frame(
    service: ChatService,
    agent: Agent | None,
    contact: Contact | None,
    frame: frames.ConversationEscalate | frames.CsatSubmit,
) -> dict[str, Any]:
    """The ``ack`` for ``frame`` (errors are raised, and become ``error`` frames)."""
    match frame:
        case frames.ConversationEscalate():
            assert agent is not None
            if service.tickets is None:
                raise Unavailable("tickets are not enabled on this server")
            ticket = await service.tickets.escalate(
                agent_actor(agent),
                frame.conversation_id,
                subject=frame.subject,
                priority=Priority(frame.priority) if frame.priority else None,
            )
            return frames.ack_simple(
                frame.ref, conversation_id=frame.conversation_id, ticket=ticket.to_wire()
            )
        case frames.CsatSubmit():
            assert contact is not None
            if service.csat is None:
                raise Unavailable("ratings are not enabled on this server")
            rating = await service.csat.submit_from_widget(
                contact.id, frame.conversation_id, frame.score, frame.comment
            )
            return frames.ack_simple(frame.ref, conversation_id=frame.conversation_id, csat=rating.to_wire())
