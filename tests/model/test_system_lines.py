"""System lines as code + params (chatserver/model/system_lines.py) and agents' avatar URLs
(chatserver/model/avatars.py): pure, no I/O."""

from __future__ import annotations

import typing

import pytest

from chatserver.errors import Invalid
from chatserver.model.avatars import avatar_url
from chatserver.model.events import MessageEvent, decode_event, encode_event
from chatserver.model.system_lines import TEMPLATES, SystemLine, escalated, placeholders
from chatserver.model.types import SYSTEM_AUTHOR, Message, MessageKind
from chatserver.routing.model import EscalationReason


def test_a_line_says_its_english_text_and_wire_form() -> None:
    line = SystemLine.of("agent_joined", name="Anna")
    assert line.text == "Anna joined the conversation"
    assert line.to_wire() == {"code": "agent_joined", "params": {"name": "Anna"}}
    assert SystemLine.from_stored(line.to_wire()) == line
    assert SystemLine.of("merged", number=12).params == {"number": "12"}


def test_bad_lines_are_refused_where_they_are_written() -> None:
    with pytest.raises(ValueError, match="unknown system line"):
        SystemLine.of("nope")
    with pytest.raises(ValueError, match="takes"):
        SystemLine.of("agent_joined")
    with pytest.raises(ValueError, match="takes"):
        SystemLine.of("agent_joined", name="A", extra="x")


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "agent_joined",
        {},
        {"code": "agent_joined"},
        {"code": "from_a_newer_server", "params": {}},
        {"code": "agent_joined", "params": {}},
        {"code": "agent_joined", "params": ["Anna"]},
    ],
)
def test_a_stored_line_this_version_cannot_say_is_none(raw: object) -> None:
    assert SystemLine.from_stored(raw) is None


def test_params_are_cut_and_templates_use_plain_placeholders() -> None:
    assert len(SystemLine.of("agent_joined", name="x" * 1000).params["name"]) == 200
    for code, template in TEMPLATES.items():
        assert all(p.isalpha() and p.islower() for p in placeholders(template)), code


def test_every_routing_escalation_reason_has_a_line() -> None:
    for reason in typing.get_args(EscalationReason):
        assert SystemLine.of(reason).text == TEMPLATES[reason]


def test_escalation_lines_by_reason() -> None:
    assert escalated(7, None).to_wire() == {"code": "escalated", "params": {"number": "7"}}
    assert escalated(7, "nobody was available").text == "Escalated to ticket #7 (nobody was available)"
    assert escalated(7, "the visitor left").code == "escalated_left"
    assert escalated(7, "something else").code == "escalated"


def test_the_line_travels_on_the_wire_and_the_bus() -> None:
    line = SystemLine.of("agent_closed", name="Bob")
    msg = Message("msg_1", "conv_1", 3, SYSTEM_AUTHOR, MessageKind.EVENT, line.text, 0, event=line)
    assert msg.to_wire()["event"] == {"code": "agent_closed", "params": {"name": "Bob"}}
    plain = Message("msg_2", "conv_1", 4, SYSTEM_AUTHOR, MessageKind.EVENT, "x", 0)
    assert "event" not in plain.to_wire()
    back = decode_event(encode_event(MessageEvent(msg)))
    assert isinstance(back, MessageEvent)
    assert back.message.event == line


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("https://cdn.example.com/a/anna.png", "https://cdn.example.com/a/anna.png"),
        ("  https://example.com:8443/x.jpg?v=2 ", "https://example.com:8443/x.jpg?v=2"),
        ("/files/anna.png", "/files/anna.png"),
        (None, None),
        ("", None),
    ],
)
def test_avatar_urls_accepted(raw: object, want: str | None) -> None:
    assert avatar_url(raw) == want


@pytest.mark.parametrize(
    "raw",
    [
        "http://example.com/a.png",
        "javascript:alert(1)",
        "data:image/png;base64,AAAA",
        "//evil.example/a.png",
        "/a/../../etc/passwd",
        "https://user:pw@example.com/a.png",
        "https://exa mple.com/a.png",
        'https://example.com/a.png" onerror="x',
        "https://example.com/a\\b.png",
        "https:///nohost.png",
        "ftp://example.com/a.png",
        "anna.png",
        "https://example.com/" + "a" * 600,
        42,
        ["https://example.com/a.png"],
    ],
)
def test_avatar_urls_refused(raw: object) -> None:
    with pytest.raises(Invalid) as exc:
        avatar_url(raw)
    assert exc.value.data == {"field": "avatar_url"}
