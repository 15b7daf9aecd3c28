"""The widget settings model, identity hashes and pre-chat validation: pure functions, as tables."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from chatserver.errors import Invalid
from chatserver.widgetcfg import identity
from chatserver.widgetcfg.model import (
    WidgetSettings,
    contact_values,
    etag,
    load_widget,
    parse_widget,
    public_view,
    texts_for,
    validate_answers,
)

PRECHAT = [
    {"type": "name", "required": True},
    {"type": "email", "required": True},
    {"type": "phone"},
    {
        "key": "topic",
        "type": "dropdown",
        "label": "Topic",
        "options": ["billing", "returns"],
        "required": True,
    },
    {"key": "order", "type": "text", "label": "Order number"},
]


def settings() -> WidgetSettings:
    return parse_widget(
        {
            "color": "#0a7",
            "position": "left",
            "title": "Talk to Shop",
            "greeting": "Hello!",
            "texts": {"de": {"title": "Sprich mit Shop"}},
            "timezone": "Europe/Berlin",
            "hours": {"mon": [["09:00", "17:00"]]},
            "prechat": PRECHAT,
        }
    )


def test_parse_round_trips_through_storage() -> None:
    s = settings()
    assert load_widget(s.to_json()) == s
    assert s.texts == {
        "de": {"title": "Sprich mit Shop"},
        "default": {"title": "Talk to Shop", "greeting": "Hello!"},
    }


def test_partial_update_keeps_the_rest_and_null_clears() -> None:
    s = parse_widget({"color": None, "greeting": None}, settings())
    assert s.color is None
    assert s.texts["default"] == {"title": "Talk to Shop"}
    assert s.position == "left" and len(s.prechat) == 5


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"color": "red; background:url(x)"}, "widget.color"),
        ({"position": "top"}, "widget.position"),
        ({"size": 3}, "widget.size"),
        ({"hours": {"mon": [["09:00", "17:00"]]}}, "widget.timezone"),
        ({"timezone": "Mars/Olympus"}, "widget.timezone"),
        ({"timezone": "UTC", "hours": {"funday": []}}, "widget.hours"),
        ({"prechat": [{"type": "ssn"}]}, "widget.prechat[0].type"),
        ({"prechat": [{"type": "dropdown", "key": "x"}]}, "widget.prechat[0].options"),
        ({"prechat": [{"type": "text", "key": "Bad Key"}]}, "widget.prechat[0].key"),
        ({"prechat": [{"type": "text", "key": "a", "options": ["x"]}]}, "widget.prechat[0].options"),
        ({"prechat": [{"type": "email"}, {"type": "email"}]}, "widget.prechat"),
        ({"prechat": [{"type": "text", "key": "a", "required": "yes"}]}, "widget.prechat[0].required"),
        ({"texts": {"deutsch": {"title": "x"}}}, "widget.texts"),
        ({"texts": {"de": {"footer": "x"}}}, "widget.texts.de"),
        ({"greeting": "x" * 501}, "widget.greeting"),
        ([1], "widget."),
    ],
)
def test_bad_settings_name_the_field(raw: object, field: str) -> None:
    with pytest.raises(Invalid) as err:
        parse_widget(raw)
    assert err.value.data["field"] == field


def test_business_hours_in_the_inbox_time_zone() -> None:
    s = settings()
    berlin = ZoneInfo("Europe/Berlin")
    assert s.is_open(datetime(2026, 12, 7, 9, 0, tzinfo=berlin).timestamp())  # a Monday
    assert not s.is_open(datetime(2026, 12, 7, 17, 0, tzinfo=berlin).timestamp())
    assert not s.is_open(datetime(2026, 12, 8, 10, 0, tzinfo=berlin).timestamp())  # Tuesday: closed
    assert WidgetSettings().is_open(0)


def test_texts_given_for_a_language_win_and_the_rest_is_to_translate() -> None:
    s = settings()
    own, missing = texts_for(s, "de")
    assert own == {"title": "Sprich mit Shop"}
    assert missing == {"greeting": "Hello!", "field.topic": "Topic", "field.order": "Order number"}
    own, missing = texts_for(s, "en")  # the default texts' own language: nothing to translate
    assert missing == {} and own["title"] == "Talk to Shop"


def test_public_view_has_no_secret_and_a_changing_etag() -> None:
    s = settings()
    view = public_view(s, inbox_id="ib_1", lang="de", texts={"title": "T", "field.topic": "Thema"}, now=0)
    assert view["title"] == "T"
    assert [f.get("label") for f in view["prechat"]] == [None, None, None, "Thema", "Order number"]
    assert "identity_secret" not in str(view)
    other = public_view(s, inbox_id="ib_1", lang="de", texts={"title": "U"}, now=0)
    assert etag(view) != etag(other) and etag(view) == etag(dict(view))


def test_answers_are_validated_and_feed_the_contact() -> None:
    fields = settings().prechat
    good = {"name": " Ada ", "email": "ada@example.com", "topic": "billing", "phone": "+49 30 1234567"}
    answers = validate_answers(fields, good)
    assert answers == {
        "name": "Ada",
        "email": "ada@example.com",
        "topic": "billing",
        "phone": "+49 30 1234567",
    }
    assert contact_values(fields, answers) == {
        "name": "Ada",
        "email": "ada@example.com",
        "phone": "+49 30 1234567",
    }


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"name": ""}, "fields.name", "required"),
        ({"email": "not-an-email"}, "fields.email", "email"),
        ({"phone": "call me"}, "fields.phone", "phone"),
        ({"topic": "other"}, "fields.topic", "option"),
        ({"order": "x" * 501}, "fields.order", "too_long"),
        ({"nickname": "x"}, "fields.nickname", None),
        ({"name": 3}, "fields.name", None),
    ],
)
def test_bad_answers_name_the_field(change: dict[str, object], field: str, reason: str | None) -> None:
    raw = {"name": "Ada", "email": "ada@example.com", "topic": "billing", **change}
    with pytest.raises(Invalid) as err:
        validate_answers(settings().prechat, raw)
    assert err.value.data["field"] == field
    assert err.value.data.get("reason") == reason


SECRET = "s" * 64


def sign(user_id: str, expires: int, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), f"{user_id}:{expires}".encode(), hashlib.sha256).hexdigest()


def test_identity_hash_is_the_documented_hmac() -> None:
    assert identity.identity_hash(SECRET, "u1", 2000000000) == sign("u1", 2000000000)


@pytest.mark.parametrize(
    ("user", "reason"),
    [
        ({"id": "u1", "expires": 2000, "hash": sign("u1", 2000)}, "expired"),
        ({"id": "u1", "expires": 5000, "hash": sign("u1", 5000, "other")}, "bad_hash"),
        ({"id": "u2", "expires": 5000, "hash": sign("u1", 5000)}, "bad_hash"),
        ({"id": "u1", "expires": 5000}, "missing_hash"),
        ({"id": "u1", "hash": sign("u1", 5000)}, "missing_expires"),
        ({"id": "u1", "expires": "5000", "hash": sign("u1", 5000)}, "missing_expires"),
        ({"expires": 5000, "hash": "ab"}, "missing_id"),
        ({"id": "u1", "expires": 10**9, "hash": sign("u1", 10**9)}, "expires_too_far"),
        ("u1", "malformed"),
    ],
)
def test_identity_refusals(user: object, reason: str) -> None:
    found = identity.verify(SECRET, user, 3000)
    assert found == identity.Refused(reason)
    assert reason in identity.REASONS


def test_identity_verified_and_no_secret() -> None:
    user = {"id": 42, "name": "Ada", "email": "ada@example.com", "expires": 5000, "hash": sign("42", 5000)}
    assert identity.verify(SECRET, user, 3000) == identity.VerifiedUser("42", "Ada", "ada@example.com")
    assert identity.verify(None, user, 3000) == identity.Refused("no_secret")
