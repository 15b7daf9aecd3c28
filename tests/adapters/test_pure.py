"""The pure parts of the adapters: signatures (reference vectors), parsing of the platforms' sample
payloads, text splitting, config validation and the WhatsApp window."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters import meta, telegram, twilio
from adapters.base import (
    DeliveryStatus,
    Echo,
    Ignored,
    InboundMessage,
    WebhookRequest,
    retry_after,
    split_text,
)
from adapters.channels import CHANNELS
from chatserver.errors import BadFrame, Forbidden, Invalid

# -- samples from the platforms' documentation (channel reference) ----------------------------------------

TELEGRAM_UPDATE = {
    "update_id": 10000,
    "message": {
        "message_id": 1365,
        "from": {
            "id": 1111111,
            "is_bot": False,
            "first_name": "Ann",
            "username": "ann",
            "language_code": "de",
        },
        "chat": {"id": 1111111, "first_name": "Ann", "username": "ann", "type": "private"},
        "date": 1441645532,
        "text": "Hallo",
    },
}
MESSENGER = {
    "object": "page",
    "entry": [
        {
            "id": "PAGE_ID",
            "time": 1458692752478,
            "messaging": [
                {
                    "sender": {"id": "PSID1"},
                    "recipient": {"id": "PAGE_ID"},
                    "timestamp": 1458692752478,
                    "message": {"mid": "mid.1457764197618:41d102a3e1ae206a38", "text": "hello, world!"},
                }
            ],
        }
    ],
}
WHATSAPP = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "102290129340398",
            "changes": [
                {
                    "field": "messages",
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "15550783881",
                            "phone_number_id": "106540352242922",
                        },
                        "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
                        "messages": [
                            {
                                "from": "16505551234",
                                "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
                                "timestamp": "1749416383",
                                "type": "text",
                                "text": {"body": "Does it come in another color?"},
                            }
                        ],
                    },
                }
            ],
        }
    ],
}
META_CONFIG = {"page_id": "PAGE_ID", "page_access_token": "t", "app_secret": "s3cret", "verify_token": "vt"}
WA_CONFIG = {
    "phone_number_id": "106540352242922",
    "access_token": "t",
    "app_secret": "s3cret",
    "verify_token": "vt",
}
TG_CONFIG = {"bot_token": "123:abc", "secret_token": "tok_123"}
SMS_CONFIG = {"account_sid": "AC1", "auth_token": "12345", "from_number": "+15550001111"}


def req(body: bytes, **headers: str) -> WebhookRequest:
    return WebhookRequest(body, {k.lower().replace("_", "-"): v for k, v in headers.items()})


# -- signatures -------------------------------------------------------------------------------------------


def test_twilio_signature_reference_vector() -> None:
    params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+12349013030"),
        ("Digits", "1234"),
        ("From", "+12349013030"),
        ("To", "+18005551212"),
    ]
    assert (
        twilio.signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params)
        == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    )


def test_twilio_verify_over_the_url_and_form() -> None:
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    body = (
        b"CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1234&From=%2B12349013030&To=%2B18005551212"
    )
    good = WebhookRequest(body, {"x-twilio-signature": "0/KCTR6DLpKmkAf8muzZqo1nDgQ="}, url=url)
    twilio.CHANNEL.verify(good, SMS_CONFIG)
    for bad in (
        WebhookRequest(body, {"x-twilio-signature": "0/KCTR6DLpKmkAf8muzZqo1nDgQ="}, url=url + "&x=1"),
        WebhookRequest(body + b"&Extra=1", {"x-twilio-signature": "0/KCTR6DLpKmkAf8muzZqo1nDgQ="}, url=url),
        WebhookRequest(body, {}, url=url),
        WebhookRequest(b"\xff\xfe", {"x-twilio-signature": "x"}, url=url),
    ):
        with pytest.raises(Forbidden):
            twilio.CHANNEL.verify(bad, SMS_CONFIG)


def test_meta_signature_is_over_the_raw_bytes() -> None:
    body = json.dumps(MESSENGER, ensure_ascii=False).replace("hello, world!", "héllo 👋").encode()
    sig = meta.signature("s3cret", body)
    assert sig.startswith("sha256=") and len(sig) == 7 + 64
    meta.MESSENGER.verify(req(body, x_hub_signature_256=sig), META_CONFIG)
    reserialized = json.dumps(json.loads(body)).encode()  # \u escapes: other bytes, same JSON
    assert reserialized != body
    for bad in (
        req(reserialized, x_hub_signature_256=sig),
        req(body),
        req(body, x_hub_signature_256="sha256=00"),
    ):
        with pytest.raises(Forbidden):
            meta.MESSENGER.verify(bad, META_CONFIG)


def test_telegram_secret_token() -> None:
    body = json.dumps(TELEGRAM_UPDATE).encode()
    telegram.CHANNEL.verify(req(body, x_telegram_bot_api_secret_token="tok_123"), TG_CONFIG)
    for headers in (
        {},
        {"x_telegram_bot_api_secret_token": "tok_12"},
        {"x_telegram_bot_api_secret_token": ""},
    ):
        with pytest.raises(Forbidden):
            telegram.CHANNEL.verify(req(body, **headers), TG_CONFIG)


def test_meta_handshake_answers_only_the_right_token() -> None:
    q = {"hub.mode": "subscribe", "hub.verify_token": "vt", "hub.challenge": "1158201444"}
    assert meta.WHATSAPP.handshake(q, WA_CONFIG) == "1158201444"
    for wrong in (
        {**q, "hub.verify_token": "nope"},
        {**q, "hub.mode": "unsubscribe"},
        {"hub.challenge": "1"},
    ):
        with pytest.raises(Forbidden):
            meta.WHATSAPP.handshake(wrong, WA_CONFIG)


# -- parsing ----------------------------------------------------------------------------------------------


def test_telegram_update() -> None:
    [event] = telegram.CHANNEL.parse(req(json.dumps(TELEGRAM_UPDATE).encode()), TG_CONFIG)
    assert isinstance(event, InboundMessage)
    assert event.external_id == "1111111:1365"
    assert event.text == "Hallo"
    assert event.sender.external_id == "1111111"
    assert event.sender.name == "Ann"
    assert event.sender.language == "de"
    assert event.sender.username == "ann"
    assert event.timestamp_ms == 1441645532000


def test_telegram_photo_and_ignored_updates() -> None:
    photo = json.loads(json.dumps(TELEGRAM_UPDATE))
    del photo["message"]["text"]
    photo["message"]["photo"] = [{"file_id": "small", "file_size": 10}, {"file_id": "big", "file_size": 900}]
    photo["message"]["caption"] = "look"
    [event] = telegram.CHANNEL.parse(req(json.dumps(photo).encode()), TG_CONFIG)
    assert isinstance(event, InboundMessage)
    assert event.text == "look"
    assert [(a.kind, a.ref, a.size) for a in event.attachments] == [("image", "big", 900)]

    group = json.loads(json.dumps(TELEGRAM_UPDATE))
    group["message"]["chat"] = {"id": -100, "type": "group"}
    edited = {"update_id": 3, "edited_message": TELEGRAM_UPDATE["message"]}
    sticker_only = json.loads(json.dumps(TELEGRAM_UPDATE))
    del sticker_only["message"]["text"]
    for update in (group, edited, sticker_only, {"hello": 1}, [1, 2]):
        [event] = telegram.CHANNEL.parse(req(json.dumps(update).encode()), TG_CONFIG)
        assert isinstance(event, Ignored), update


def test_messenger_message_echo_delivery_and_read() -> None:
    [msg] = meta.MESSENGER.parse(req(json.dumps(MESSENGER).encode()), META_CONFIG)
    assert isinstance(msg, InboundMessage)
    assert (msg.external_id, msg.text, msg.sender.external_id) == (
        "mid.1457764197618:41d102a3e1ae206a38",
        "hello, world!",
        "PSID1",
    )
    echo = json.loads(json.dumps(MESSENGER))
    echo["entry"][0]["messaging"][0]["message"]["is_echo"] = True
    assert meta.MESSENGER.parse(req(json.dumps(echo).encode()), META_CONFIG) == [
        Echo("mid.1457764197618:41d102a3e1ae206a38")
    ]
    receipts = {
        "object": "page",
        "entry": [
            {
                "id": "PAGE_ID",
                "messaging": [
                    {
                        "sender": {"id": "PSID1"},
                        "timestamp": 5,
                        "delivery": {"mids": ["m1", "m2"], "watermark": 4},
                    },
                    {"sender": {"id": "PSID1"}, "timestamp": 6, "read": {"watermark": 6}},
                    {"sender": {"id": "PSID1"}, "timestamp": 7, "reaction": {"mid": "m1", "emoji": "x"}},
                ],
            }
        ],
    }
    events = meta.MESSENGER.parse(req(json.dumps(receipts).encode()), META_CONFIG)
    assert events[:3] == [
        DeliveryStatus("delivered", 5, "m1", "PSID1", 4),
        DeliveryStatus("delivered", 5, "m2", "PSID1", 4),
        DeliveryStatus("read", 6, None, "PSID1", 6),
    ]
    assert isinstance(events[3], Ignored) and "reaction" in events[3].what


def test_instagram_envelope_is_its_own() -> None:
    ig = {**MESSENGER, "object": "instagram"}
    [event] = meta.INSTAGRAM.parse(req(json.dumps(ig).encode()), META_CONFIG)
    assert isinstance(event, InboundMessage)
    [wrong] = meta.MESSENGER.parse(req(json.dumps(ig).encode()), META_CONFIG)
    assert isinstance(wrong, Ignored)


def test_whatsapp_message_status_and_other_number() -> None:
    [msg] = meta.WHATSAPP.parse(req(json.dumps(WHATSAPP).encode()), WA_CONFIG)
    assert isinstance(msg, InboundMessage)
    assert msg.external_id.startswith("wamid.HBgL")
    assert msg.sender.name == "Sheena Nelson"
    assert msg.sender.phone == "+16505551234"
    assert msg.timestamp_ms == 1749416383000
    status = json.loads(json.dumps(WHATSAPP))
    value = status["entry"][0]["changes"][0]["value"]
    del value["messages"], value["contacts"]
    value["statuses"] = [
        {"id": "wamid.OUT1", "status": "delivered", "timestamp": "1749416400", "recipient_id": "16505551234"},
        {
            "id": "wamid.OUT2",
            "status": "failed",
            "timestamp": "1749416401",
            "recipient_id": "16505551234",
            "errors": [
                {"code": 131047, "title": "Re-engagement message", "error_data": {"details": "24h passed"}}
            ],
        },
    ]
    delivered, failed = meta.WHATSAPP.parse(req(json.dumps(status).encode()), WA_CONFIG)
    assert delivered == DeliveryStatus("delivered", 1749416400000, "wamid.OUT1", "16505551234")
    assert isinstance(failed, DeliveryStatus) and failed.state == "failed"
    assert failed.reason == "131047: 24h passed"
    [other] = meta.WHATSAPP.parse(req(json.dumps(WHATSAPP).encode()), {**WA_CONFIG, "phone_number_id": "9"})
    assert isinstance(other, Ignored)


def test_twilio_inbound_and_status() -> None:
    body = (
        b"MessageSid=SM1&AccountSid=AC1&From=%2B15551234567&To=%2B15550001111&Body=Hi+there&NumMedia=1"
        b"&MediaUrl0=https%3A%2F%2Fapi.example%2Fm.jpg&MediaContentType0=image%2Fjpeg"
    )
    [msg] = twilio.CHANNEL.parse(req(body), SMS_CONFIG)
    assert isinstance(msg, InboundMessage)
    assert (msg.external_id, msg.text, msg.sender.phone) == ("SM1", "Hi there", "+15551234567")
    assert [(a.kind, a.mime_type) for a in msg.attachments] == [("image", "image/jpeg")]
    status = b"MessageSid=SM9&AccountSid=AC1&MessageStatus=undelivered&ErrorCode=30003&To=%2B1555"
    [st_] = twilio.CHANNEL.parse_status_callback(req(status), SMS_CONFIG)
    assert st_ == DeliveryStatus("failed", 0, "SM9", "+1555", reason="Twilio error 30003")
    [queued] = twilio.CHANNEL.parse_status_callback(
        req(b"MessageSid=SM9&AccountSid=AC1&MessageStatus=queued"), SMS_CONFIG
    )
    assert isinstance(queued, Ignored)
    [other] = twilio.CHANNEL.parse(req(body.replace(b"AC1", b"AC2")), SMS_CONFIG)
    assert isinstance(other, Ignored)


@pytest.mark.parametrize("name", sorted(CHANNELS))
def test_bad_bodies_are_400(name: str) -> None:
    channel = CHANNELS[name]
    config = {"telegram": TG_CONFIG, "whatsapp": WA_CONFIG, "sms": SMS_CONFIG}.get(name, META_CONFIG)
    bad = [b"\xff\xfe\x00"] if name == "sms" else [b"\xff\xfe\x00", b"{not json", b'{"a": ']
    for body in bad:
        with pytest.raises(BadFrame):
            channel.parse(req(body), config)


@pytest.mark.parametrize("name", ["telegram", "messenger", "instagram", "whatsapp"])
def test_unknown_json_shapes_are_ignored(name: str) -> None:
    config = {"telegram": TG_CONFIG, "whatsapp": WA_CONFIG}.get(name, META_CONFIG)
    for shape in ({}, [], {"object": "page", "entry": "x"}, {"object": "whatsapp_business_account"}, 3, None):
        events = CHANNELS[name].parse(req(json.dumps(shape).encode()), config)
        assert events and all(isinstance(e, Ignored) for e in events), shape


# -- splitting --------------------------------------------------------------------------------------------


def test_split_prefers_spaces_and_keeps_order() -> None:
    text = ("word " * 2000).strip()
    parts = split_text(text, 4096)
    assert "".join(parts) == text
    assert all(len(p) <= 4096 for p in parts)
    assert all(p.endswith(" ") for p in parts[:-1])
    assert split_text("", 10) == [""]
    assert split_text("abc", 3) == ["abc"]


def test_split_bytes_never_cuts_a_character() -> None:
    text = "é" * 700 + "👋" * 300  # 1400 + 1200 bytes
    parts = split_text(text, 1000, unit="bytes")
    assert "".join(parts) == text
    assert all(len(p.encode()) <= 1000 for p in parts)
    assert len(parts) == 3


@given(st.text(min_size=0, max_size=3000), st.integers(min_value=4, max_value=1200))
def test_split_roundtrip(text: str, limit: int) -> None:
    for unit in ("chars", "bytes"):
        parts = split_text(text, limit, unit=unit)  # type: ignore[arg-type]
        assert "".join(parts) == text
        measure = len if unit == "chars" else (lambda s: len(s.encode()))
        assert all(measure(p) <= limit for p in parts)
        assert all(p for p in parts) or parts == [""]


def test_channel_limits() -> None:
    assert (CHANNELS["telegram"].text_limit, CHANNELS["telegram"].limit_unit) == (4096, "chars")
    assert (CHANNELS["instagram"].text_limit, CHANNELS["instagram"].limit_unit) == (1000, "bytes")
    assert (CHANNELS["whatsapp"].text_limit, CHANNELS["sms"].text_limit) == (4096, 1600)


def test_retry_after_header_forms() -> None:
    assert retry_after("7") == 7.0
    assert retry_after(None) is None
    assert retry_after("soon") is None
    assert retry_after("Wed, 21 Oct 2026 07:28:30 GMT", "Wed, 21 Oct 2026 07:28:00 GMT") == 30.0


# -- config and the window --------------------------------------------------------------------------------


def test_config_validation_and_redaction() -> None:
    spec = CHANNELS["whatsapp"].spec
    assert spec.redact(WA_CONFIG) == {
        "phone_number_id": "106540352242922",
        "access_token_set": True,
        "app_secret_set": True,
        "verify_token_set": True,
    }
    with pytest.raises(Invalid, match="access_token"):
        CHANNELS["whatsapp"].validate_config({k: v for k, v in WA_CONFIG.items() if k != "access_token"})
    with pytest.raises(Invalid, match="unknown config keys: page_id"):
        CHANNELS["whatsapp"].validate_config({**WA_CONFIG, "page_id": "1"})
    with pytest.raises(Invalid):
        CHANNELS["sms"].validate_config({**SMS_CONFIG, "auth_token": 5})
    with pytest.raises(Invalid, match="secret_token"):
        CHANNELS["telegram"].validate_config({"bot_token": "1:a", "secret_token": "has space"})
    with pytest.raises(Invalid, match="secret_token"):
        CHANNELS["telegram"].validate_config({"bot_token": "1:a"})
    assert CHANNELS["telegram"].validate_config({"bot_token": "1:a", "mode": "polling"})["mode"] == "polling"


def test_whatsapp_window() -> None:
    last = 1_749_416_383
    assert meta.whatsapp_window(last, last + 60).allowed
    assert meta.whatsapp_window(last, last + 24 * 3600 - 1).allowed
    late = meta.whatsapp_window(last, last + 24 * 3600)
    assert not late.allowed and "24 hours" in (late.reason or "")
    never = meta.whatsapp_window(None, last)
    assert not never.allowed and "template" in (never.reason or "")
