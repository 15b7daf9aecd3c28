"""The visitor's view of a conversation: exactly the listed fields, whatever the agents' payload holds."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from chatserver.model import frames
from chatserver.model.status import Status
from chatserver.model.types import Author, AuthorKind, Contact, Conversation
from chatserver.model.visitor import VISITOR_FIELDS, VisitorConversation

SECRET_BITS = ["CRM: pays late", "vip-tier", "ag_bob", "ag_eve", "billing", "tm_red", "bob@x.test"]


def agents_payload(status: str = "assigned", **extra: Any) -> dict[str, Any]:
    conv = Conversation(
        id="cv_1",
        inbox_id="ib_1",
        channel="widget",
        contact_id="ct_1",
        status=Status(status),
        priority=7,
        skills={"billing": 4},
        language="de",
        team="tm_red",
        assignee_id="ag_bob",
        fields={"topic": "refund"},
        last_seq=12,
        version=5,
        created_at=1_700_000_000_000,
        routing={"preferred_agent_id": "ag_eve"},
        pending_reason="everyone away",
    )
    contact = Contact(
        "ct_1", "Vera", email="vera@x.test", attributes={"note": "CRM: pays late", "tier": "vip-tier"}
    )
    payload = conv.to_wire(contact=contact, assignee=Author(AuthorKind.AGENT, "ag_bob", "Bob"))
    payload["reads"] = [
        {"reader": {"kind": "agent", "id": "ag_bob"}, "seq": 9},
        {"reader": {"kind": "agent", "id": "ag_eve"}, "seq": 11},
        {"reader": {"kind": "contact", "id": "ct_1"}, "seq": 12},
    ]
    payload["assignee"]["email"] = "bob@x.test"  # whatever the agents' form grows, it must not pass
    return {**payload, **extra}


def test_exactly_the_visitor_fields_and_nothing_else() -> None:
    wire = VisitorConversation.from_payload(agents_payload()).to_wire()
    assert tuple(wire) == VISITOR_FIELDS
    assert wire == {
        "id": "cv_1",
        "status": "assigned",
        "channel": "widget",
        "assignee": {"kind": "agent", "name": "Bob"},
        "language": "de",
        "created_at": "2023-11-14T22:13:20.000Z",
        "resolved_at": None,
        "last_seq": 12,
        "version": 5,
        "reads": [{"reader": {"kind": "agent"}, "seq": 11}, {"reader": {"kind": "contact"}, "seq": 12}],
        "pending_reason": None,  # only while pending
    }
    text = orjson.dumps(wire).decode()
    for secret in SECRET_BITS:
        assert secret not in text


@pytest.mark.parametrize("status", ["queued", "offered"])
def test_queue_position_only_while_waiting(status: str) -> None:
    queue = {"position": 3, "estimated_wait_s": 40.0, "agents_online": 2}
    wire = VisitorConversation.from_payload(agents_payload(status, assignee=None), queue).to_wire()
    assert tuple(wire) == (*VISITOR_FIELDS, "queue")
    assert wire["queue"] == {"position": 3, "estimated_wait_s": 40.0}
    assert wire["assignee"] is None
    assigned = VisitorConversation.from_payload(agents_payload("assigned"), queue).to_wire()
    assert "queue" not in assigned


def test_the_encoded_frame_for_visitors_is_the_projection() -> None:
    payload = agents_payload()
    text = frames.visitor_conversation_text("cv_1", 5, payload)
    assert orjson.loads(text) == {
        "type": "conversation",
        "conversation": VisitorConversation.from_payload(payload).to_wire(),
    }
    assert frames.conversation_text("cv_1", 5, payload) != text  # agents keep the whole conversation


def test_read_and_typing_frames_for_visitors_name_no_agent_id() -> None:
    bob = Author(AuthorKind.AGENT, "ag_bob", "Bob")
    assert frames.read("cv_1", bob, 4, public=True)["reader"] == {"kind": "agent", "name": "Bob"}
    assert frames.typing("cv_1", bob, "start", public=True)["author"] == {"kind": "agent", "name": "Bob"}
    assert frames.read("cv_1", bob, 4)["reader"] == {"kind": "agent", "id": "ag_bob", "name": "Bob"}


def test_a_pending_conversation_says_why() -> None:
    wire = VisitorConversation.from_payload(
        agents_payload("pending", pending_reason="outside_hours")
    ).to_wire()
    assert wire["pending_reason"] == "outside_hours"


def test_the_assigned_agents_face_is_public_and_nothing_more() -> None:
    payload = agents_payload()
    payload["assignee"] = {
        "kind": "agent",
        "id": "ag_bob",
        "name": "Bob",
        "email": "bob@x.test",
        "avatar_url": "https://cdn.example.com/bob.png",
    }
    wire = VisitorConversation.from_payload(payload).to_wire()
    assert wire["assignee"] == {
        "kind": "agent",
        "name": "Bob",
        "avatar_url": "https://cdn.example.com/bob.png",
    }
    payload["assignee"] = {"kind": "agent", "id": "ag_bob", "name": "Bob", "avatar_url": None}
    assert VisitorConversation.from_payload(payload).to_wire()["assignee"] == {"kind": "agent", "name": "Bob"}
