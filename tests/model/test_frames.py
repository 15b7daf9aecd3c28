from __future__ import annotations

import pytest

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
