"""The pure parts of the adapter API and webhooks: signatures (with the documented test vector), which
addresses a webhook may reach, frame decoding, handoff words, the grace clock."""

from __future__ import annotations

import ipaddress

import orjson
import pytest

from chatserver.adapterapi import frames as af
from chatserver.adapterapi.model import GraceClock, handoff_requested, parse_actions
from chatserver.errors import ApiError, Forbidden, Invalid, PermanentDeliveryError, TemporaryDeliveryError
from chatserver.model import frames as v1
from chatserver.webhooks import signing
from chatserver.webhooks.sender import HttpPoster, WebhookSender
from chatserver.webhooks.ssrf import check_url, parse, refusal
from tests.adapterapi.receiver import running_receiver

VECTOR_SECRET = "whsec_test_secret"
VECTOR_BODY = b'{"id":"evt_1","type":"message.created"}'
VECTOR_SIG = "af78cd8dc0709d405bd9bc60f8c63d9981daa5b92d12e2fe5c4ff26f993e45e7"


def test_signature_matches_the_documented_vector() -> None:
    assert signing.header(VECTOR_SECRET, 1700000000, VECTOR_BODY) == f"t=1700000000,v1={VECTOR_SIG}"
    value = f"t=1700000000,v1={VECTOR_SIG}"
    assert signing.verify(VECTOR_SECRET, value, VECTOR_BODY, now=1700000100)
    assert not signing.verify(VECTOR_SECRET, value, VECTOR_BODY + b" ", now=1700000100)
    assert not signing.verify("other", value, VECTOR_BODY, now=1700000100)
    assert not signing.verify(VECTOR_SECRET, value, VECTOR_BODY, now=1700000000 + 3600)  # replayed late
    assert not signing.verify(VECTOR_SECRET, "garbage", VECTOR_BODY, now=1700000000)
    assert not signing.verify(VECTOR_SECRET, "t=x,v1=00", VECTOR_BODY, now=1700000000)


@pytest.mark.parametrize(
    ("address", "allowed_public", "allowed_private"),
    [
        ("93.184.216.34", True, True),
        ("2606:2800:220:1::1", True, True),
        ("127.0.0.1", False, True),
        ("::1", False, True),
        ("10.1.2.3", False, True),
        ("192.168.0.9", False, True),
        ("169.254.169.254", False, False),
        ("fe80::1", False, False),
        ("::ffff:169.254.169.254", False, False),
        ("0.0.0.0", False, False),
        ("224.0.0.1", False, False),
    ],
)
def test_which_addresses_a_webhook_may_reach(
    address: str, allowed_public: bool, allowed_private: bool
) -> None:
    ip = ipaddress.ip_address(address)
    assert (refusal(ip, allow_private=False) is None) is allowed_public
    assert (refusal(ip, allow_private=True) is None) is allowed_private


@pytest.mark.parametrize(
    "url",
    ["ftp://x.test/", "javascript:alert(1)", "http:///nohost", "http://u:p@x.test/", "http://x.test:99999/"],
)
def test_urls_that_are_not_http_are_refused(url: str) -> None:
    with pytest.raises(Invalid):
        parse(url)


async def test_check_url_resolves_and_refuses() -> None:
    with pytest.raises(Invalid, match="CHATSERVER_WEBHOOK_ALLOW_PRIVATE"):
        await check_url("http://localhost:8080/hook", allow_private=False)
    target = await check_url("http://127.0.0.1:8080/a?b=1", allow_private=True)
    assert target.connect_url == "http://127.0.0.1:8080/a?b=1" and target.host_header == "127.0.0.1:8080"
    with pytest.raises(Invalid, match="metadata"):
        await check_url("http://169.254.169.254/", allow_private=True)


async def test_send_time_check_never_connects_to_a_refused_address() -> None:
    """The URL is checked again when sent (a name may resolve elsewhere by then): refused, no request."""
    import httpx

    async with running_receiver() as rx, httpx.AsyncClient(trust_env=False) as client:
        strict = HttpPoster(client, timeout_s=2, allow_private=False)
        with pytest.raises(TemporaryDeliveryError, match="ALLOW_PRIVATE"):
            await strict.post(rx.url + "/ok", "secret", {"id": "evt_1", "type": "x"})
        assert rx.requests == []
        lenient = HttpPoster(client, timeout_s=2, allow_private=True)
        await lenient.post(rx.url + "/ok", "secret", {"id": "evt_1", "type": "x"})
        assert len(rx.requests) == 1
        assert signing.verify(
            "secret",
            rx.requests[0].headers["x-chatserver-signature"],
            rx.requests[0].body,
            now=int(__import__("time").time()),
        )


async def test_an_old_delivery_is_given_up() -> None:
    from chatserver.outbox.registry import Delivery, DeliveryState

    async def never(d: Delivery) -> tuple[str, str, dict[str, object]]:
        raise AssertionError("not resolved")

    import httpx

    async with httpx.AsyncClient() as client:
        sender = WebhookSender(HttpPoster(client, timeout_s=1, allow_private=True), never)
        old = Delivery(
            "dl_1", "webhook", "wh:x:y", {}, None, None, DeliveryState.QUEUED, None, 5, 0, created_at=1
        )
        with pytest.raises(PermanentDeliveryError, match="24 hours"):
            await sender(old)


def _decode(frame: dict[str, object]) -> object:
    return af.decode(orjson.dumps(frame).decode(), max_text_bytes=1000)


def test_adapter_frames_decode_and_refuse() -> None:
    sent = _decode(
        {
            "type": "message.send",
            "conversation_id": "cv_1",
            "client_id": "c",
            "text": "Hi",
            "actions": [{"id": "a", "label": "A"}],
        }
    )
    assert isinstance(sent, af.BotSend) and sent.actions[0].label == "A"
    assert isinstance(_decode({"type": "ping"}), v1.Ping)
    handoff = _decode(
        {"type": "conversation.handoff", "conversation_id": "cv_1", "summary": "s", "priority": 3}
    )
    assert isinstance(handoff, af.HandoffFrame) and handoff.priority == 3
    inject = _decode(
        {
            "type": "message.inject",
            "inbox_id": "ib",
            "contact": {"external_id": "u1"},
            "external_id": "m1",
            "text": "x",
        }
    )
    assert isinstance(inject, af.Inject) and inject.contact.external_id == "u1"
    bad: list[tuple[dict[str, object], type[ApiError]]] = [
        (
            {
                "type": "message.send",
                "conversation_id": "cv",
                "client_id": "c",
                "text": "x",
                "actions": [{"id": "a"}],
            },
            Invalid,
        ),
        (
            {
                "type": "message.send",
                "conversation_id": "cv",
                "client_id": "c",
                "text": "x",
                "actions": [{"id": "a", "label": "A"}] * 2,
            },
            Invalid,
        ),
        ({"type": "conversation.handoff", "conversation_id": "cv"}, Invalid),
        (
            {"type": "conversation.handoff", "conversation_id": "cv", "summary": "s", "priority": True},
            Invalid,
        ),
        ({"type": "conversation.update", "conversation_id": "cv"}, Invalid),
        ({"type": "contact.update", "conversation_id": "cv", "password": "x"}, Invalid),
        ({"type": "contact.update", "conversation_id": "cv", "attributes": {"k": {"nested": 1}}}, Invalid),
        ({"type": "message.inject", "inbox_id": "ib", "external_id": "m", "text": "x"}, Invalid),
        ({"type": "message.status", "message_id": "m", "state": "lost"}, Invalid),
        ({"type": "offer.accept", "offer_id": "o"}, Forbidden),
    ]
    for frame, error in bad:
        frame["ref"] = "r1"
        with pytest.raises(error) as info:
            _decode(frame)
        assert info.value.data.get("ref") == "r1", frame


def test_actions_and_handoff_words() -> None:
    assert parse_actions(None) == ()
    with pytest.raises(Invalid):
        parse_actions([{"id": "x" * 65, "label": "L"}])
    words = ("agent", "human")
    assert handoff_requested("Agent!", words) and handoff_requested("  human ", words)
    assert not handoff_requested("my agent id is 4", words) and not handoff_requested("", words)


def test_grace_clock_reports_a_bot_once_per_period() -> None:
    clock = GraceClock(30)
    clock.disconnected("ad_1", now=100)
    clock.disconnected("ad_1", now=110)  # still the first disconnect
    assert clock.due(now=129) == []
    assert clock.due(now=130) == ["ad_1"]
    assert clock.due(now=131) == []
    clock.disconnected("ad_2", now=0)
    clock.connected("ad_2")
    assert clock.due(now=1000) == []
