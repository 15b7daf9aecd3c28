"""The pure parts of channel delivery: the state rule, templates from the inbox config, and the
template field of ``message.send``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from adapters.base import Template
from adapters.meta import WHATSAPP, choose_template, parse_templates
from chatserver.channels.receipts import next_state
from chatserver.errors import Invalid
from chatserver.model import frames
from chatserver.model.frames import MessageSend, TemplateRequest
from chatserver.outbox.registry import DeliveryState as S


def parse_client_frame(raw: dict[str, Any], *, agent: bool) -> frames.ClientFrame:
    allowed = frames.AGENT_TYPES if agent else frames.VISITOR_TYPES
    return frames.decode(json.dumps(raw), allowed=allowed, max_text_bytes=4096)


WA = {"phone_number_id": "1", "access_token": "t", "app_secret": "s", "verify_token": "v"}


@pytest.mark.parametrize(
    ("current", "reported", "expected"),
    [
        (S.SENT, S.DELIVERED, S.DELIVERED),
        (S.SENT, S.READ, S.READ),
        (S.DELIVERED, S.READ, S.READ),
        (S.DELIVERED, S.DELIVERED, None),
        (S.READ, S.DELIVERED, None),  # never backwards
        (S.READ, S.SENT, None),
        (S.DELIVERED, S.SENT, None),
        (S.SENT, S.FAILED, S.FAILED),
        (S.DELIVERED, S.FAILED, S.FAILED),
        (S.READ, S.FAILED, None),  # it was read: a late failure cannot be true
        (S.QUEUED, S.DELIVERED, None),  # still being sent: the worker's record decides
        (S.FAILED, S.READ, None),
    ],
)
def test_delivery_states_only_move_forward(current: S, reported: S, expected: S | None) -> None:
    assert next_state(current, reported) == expected


def test_templates_config_is_validated_and_normalized() -> None:
    config = WHATSAPP.validate_config(
        {
            **WA,
            "templates": [
                {"name": "order_update", "language": "en_US", "body": "Hi {{1}}, order {{2}} shipped"},
                {"name": "hello_world", "language": "en_US"},
            ],
        }
    )
    assert config["templates"] == [
        {
            "name": "order_update",
            "language": "en_US",
            "parameters": 2,
            "body": "Hi {{1}}, order {{2}} shipped",
        },
        {"name": "hello_world", "language": "en_US", "parameters": 0},
    ]
    assert WHATSAPP.spec.redact(config) == {
        "phone_number_id": "1",
        "access_token_set": True,
        "app_secret_set": True,
        "verify_token_set": True,
    }


@pytest.mark.parametrize(
    ("templates", "field"),
    [
        ("hello", "config.templates"),
        ([1], "config.templates[0]"),
        ([{"name": "Hello World", "language": "en"}], "config.templates[0].name"),
        ([{"name": "a", "language": "english!"}], "config.templates[0].language"),
        ([{"name": "a", "language": "en", "parameters": -1}], "config.templates[0].parameters"),
        ([{"name": "a", "language": "en", "parameters": True}], "config.templates[0].parameters"),
        ([{"name": "a", "language": "en", "body": ""}], "config.templates[0].body"),
        ([{"name": "a", "language": "en", "extra": 1}], "config.templates[0]"),
        ([{"name": "a", "language": "en"}, {"name": "a", "language": "en"}], "config.templates[1].name"),
    ],
)
def test_bad_templates_config_names_the_field(templates: Any, field: str) -> None:
    with pytest.raises(Invalid) as err:
        WHATSAPP.validate_config({**WA, "templates": templates})
    assert err.value.data["field"] == field


def test_choose_and_render_a_template() -> None:
    specs = parse_templates(
        [
            {"name": "order_update", "language": "en_US", "body": "Hi {{1}}, order {{2}}"},
            {"name": "hi", "language": "de"},
        ]
    )
    spec = choose_template(specs, Template("order_update", "en_US", ("Ann", "A-1")))
    assert spec.render(("Ann", "A-1")) == "Hi Ann, order A-1"
    assert choose_template(specs, Template("hi", "de")).render(()) == "[template hi]"
    for wanted, field in (
        (Template("order_update", "de", ("a", "b")), "template.name"),  # not in that language
        (Template("nope", "en_US"), "template.name"),
        (Template("order_update", "en_US", ("only one",)), "template.parameters"),
    ):
        with pytest.raises(Invalid) as err:
            choose_template(specs, wanted)
        assert err.value.data["field"] == field


def test_message_send_with_a_template() -> None:
    frame = parse_client_frame(
        {
            "type": "message.send",
            "conversation_id": "cv_1",
            "client_id": "c1",
            "template": {"name": "order_update", "language": "en_US", "parameters": ["Ann", "A-1"]},
        },
        agent=True,
    )
    assert isinstance(frame, MessageSend)
    assert frame.template == TemplateRequest("order_update", "en_US", ("Ann", "A-1"))
    assert frame.text == ""


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"template": "hello"}, "template"),
        ({"template": {"language": "en"}}, "template.name"),
        ({"template": {"name": "a"}}, "template.language"),
        ({"template": {"name": "a", "language": "en", "parameters": "x"}}, "template.parameters"),
        ({"template": {"name": "a", "language": "en", "parameters": [""]}}, "template.parameters"),
        ({"template": {"name": "a", "language": "en", "parameters": [1]}}, "template.parameters"),
        ({"template": {"name": "a", "language": "en"}, "text": "both"}, "text"),
        ({"template": {"name": "a", "language": "en"}, "private": True}, "private"),
    ],
)
def test_bad_template_frames_are_invalid(extra: dict[str, Any], field: str) -> None:
    with pytest.raises(Invalid) as err:
        parse_client_frame(
            {"type": "message.send", "conversation_id": "cv_1", "client_id": "c1", **extra}, agent=True
        )
    assert err.value.data["field"] == field
