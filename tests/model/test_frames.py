from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatserver.errors import ApiError, BadFrame, Forbidden, Invalid, TooLarge, UnknownType
from chatserver.model import frames
from chatserver.model.types import AgentStatus

V = frames.VISITOR_TYPES
A = frames.AGENT_TYPES


def decode(raw: str, allowed: frozenset[str] = A, limit: int = 100) -> frames.ClientFrame:
    return frames.decode(raw, allowed=allowed, max_text_bytes=limit)


def test_decodes_each_frame_type_into_its_dataclass() -> None:
    assert decode('{"type":"ping","ref":"1"}') == frames.Ping("1")
    assert decode(
        '{"type":"message.send","conversation_id":"c","client_id":"k","text":"hi"}'
    ) == frames.MessageSend(None, "c", "k", "hi", False)
    assert decode('{"type":"typing","conversation_id":"c","state":"stop"}') == frames.Typing(
        None, "c", "stop"
    )
    assert decode('{"type":"read","conversation_id":"c","seq":3}') == frames.Read(None, "c", 3)
    assert decode('{"type":"resume","cursors":{"c":2}}') == frames.Resume(None, {"c": 2})
    assert decode('{"type":"status.set","status":"away"}') == frames.StatusSet(None, AgentStatus.AWAY)
    assert decode('{"type":"conversation.claim","conversation_id":"c"}') == frames.ConversationClaim(
        None, "c", None
    )
    start = decode(
        '{"type":"conversation.start","language":"pt-BR","skills":{"billing":3},"fields":{"topic":"x"}}', V
    )
    assert start == frames.ConversationStart(None, "pt-BR", {"billing": 3}, {"topic": "x"})


@pytest.mark.parametrize(
    ("raw", "exc"),
    [
        ("nope", BadFrame),
        ("null", BadFrame),
        ('{"type": null}', Invalid),
        ('{"type":"x.y"}', UnknownType),
        ('{"type":"ping","ref":5}', Invalid),
        ('{"type":"ping","ref":"' + "r" * 200 + '"}', Invalid),
        ('{"type":"read","conversation_id":"c","seq":true}', Invalid),
        ('{"type":"read","conversation_id":"' + "c" * 65 + '","seq":1}', Invalid),
        ('{"type":"status.set","status":"offline"}', Invalid),
        ('{"type":"message.send","conversation_id":"c","client_id":"k","text":"' + "ü" * 51 + '"}', TooLarge),
        ('{"type":"conversation.start","language":"de;drop"}', Invalid),
    ],
)
def test_bad_frames_raise_typed_errors(raw: str, exc: type[ApiError]) -> None:
    with pytest.raises(exc):
        decode(raw, A | V)


def test_agent_only_frames_are_forbidden_to_visitors_and_keep_ref() -> None:
    with pytest.raises(Forbidden) as info:
        decode('{"type":"conversation.close","conversation_id":"c","ref":"z"}', V)
    assert frames.error(info.value) == {
        "type": "error",
        "code": "forbidden",
        "message": "conversation.close is not allowed on this connection",
        "ref": "z",
    }


def test_error_frame_carries_field() -> None:
    with pytest.raises(Invalid) as info:
        decode('{"type":"read","conversation_id":"c","ref":"q"}')
    assert frames.error(info.value)["data"] == {"field": "seq"}


# Every frame that carries an integer, with a template whose ``N`` is the integer, and the field the
# error must name.
INTEGER_FIELDS = [
    ('{"type":"read","conversation_id":"c","seq":N}', "seq"),
    ('{"type":"resume","cursors":{"c":N}}', "cursors"),
    ('{"type":"resume","cursors":{"a":1,"c":N}}', "cursors"),
]
LEVEL_FIELDS = [
    ('{"type":"conversation.start","skills":{"billing":N}}', "skills.billing"),
    ('{"type":"conversation.transfer","conversation_id":"c","skills":{"billing":N}}', "skills.billing"),
]
OUT_OF_RANGE = ["-1", "-9223372036854775809", str(2**53), str(2**63), str(2**64 - 1), str(2**64)]
NOT_INTEGERS = ["true", "false", "1.0", "2.5", "1e3", '"7"', "[1]", "{}"]


@pytest.mark.parametrize("value", OUT_OF_RANGE + NOT_INTEGERS)
@pytest.mark.parametrize(("template", "field"), INTEGER_FIELDS + LEVEL_FIELDS)
def test_every_integer_from_the_wire_is_range_checked(template: str, field: str, value: str) -> None:
    with pytest.raises(Invalid) as info:
        decode(template.replace("N", value), A | V)
    assert info.value.data["field"] == field


@pytest.mark.parametrize(("template", "field"), INTEGER_FIELDS)
@pytest.mark.parametrize("value", [0, 1, 2**53 - 1])
def test_integers_in_range_are_accepted(template: str, field: str, value: int) -> None:
    frame = decode(template.replace("N", str(value)), A | V)
    assert value in ((frame.seq,) if isinstance(frame, frames.Read) else tuple(frame.cursors.values()))  # type: ignore[union-attr]


def test_a_range_error_keeps_the_ref_and_names_the_field() -> None:
    with pytest.raises(Invalid) as info:
        decode('{"type":"resume","ref":"r9","cursors":{"cv_1":' + str(2**63) + "}}")
    assert frames.error(info.value) == {
        "type": "error",
        "code": "invalid",
        "message": f"cursors must be an integer from 0 to {frames.MAX_INT}",
        "ref": "r9",
        "data": {"field": "cursors", "conversation_id": "cv_1"},
    }


@given(st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.booleans()))
def test_any_number_is_either_a_valid_seq_or_invalid(value: int | float | bool) -> None:
    number = str(value).lower() if isinstance(value, bool | int) else orjson.dumps(value).decode()
    raw = '{"type":"read","conversation_id":"c","seq":' + number + "}"
    ok = type(value) is int and 0 <= value <= frames.MAX_INT
    try:
        frame = decode(raw)
    except Invalid as exc:
        assert not ok and exc.data["field"] == "seq"
    except BadFrame:
        assert not ok  # beyond 64 bits: not even JSON the decoder accepts as a number
    else:
        assert ok and frame == frames.Read(None, "c", value)
