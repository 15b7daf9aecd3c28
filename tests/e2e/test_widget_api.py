"""The widget's REST side against a real server: config (cacheable, public, no secret), admin settings via
PATCH, identity (setUser) verification, the visitor's contact form, and origins (refused ones logged)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import ORIGIN, Client, Seed, Server, run_server, seed, settings_for, visitor_token
from tests.translation.fakes import serve
from tests.translation.helpers import make_fake

PRECHAT = [
    {"type": "email", "required": True},
    {"key": "topic", "type": "dropdown", "label": "Topic", "options": ["billing", "returns"]},
]


def admin(seeded: Seed) -> dict[str, str]:
    return {"Authorization": f"Bearer {seeded.admin_token}"}


async def set_widget(http: httpx.AsyncClient, server: Server, seeded: Seed, widget: object) -> httpx.Response:
    return await http.patch(
        f"{server.url}/api/v1/inboxes/{seeded.inbox_id}", json={"widget": widget}, headers=admin(seeded)
    )


async def test_config_is_public_cacheable_and_follows_the_admin(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    url = f"{server.url}/api/v1/widget/config?inbox_key={seeded.inbox_key}&lang=de"
    first = await http.get(url, headers={"Origin": ORIGIN})
    assert first.status_code == 200, first.text
    assert first.headers["access-control-allow-origin"] == ORIGIN
    assert "max-age" in first.headers["cache-control"] and first.headers["etag"]
    assert first.json()["open"] is True and first.json()["prechat"] == []
    again = await http.get(url, headers={"Origin": ORIGIN, "If-None-Match": first.headers["etag"]})
    assert again.status_code == 304

    r = await set_widget(
        http,
        server,
        seeded,
        {
            "color": "#112233",
            "title": "Talk to us",
            "texts": {"de": {"title": "Schreib uns"}},
            "prechat": PRECHAT,
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["widget"]["color"] == "#112233" and len(body["identity_secret"]) == 64  # admins see it
    changed = await http.get(url, headers={"Origin": ORIGIN, "If-None-Match": first.headers["etag"]})
    assert changed.status_code == 200
    view = changed.json()
    assert view["title"] == "Schreib uns" and view["color"] == "#112233"
    assert [f["key"] for f in view["prechat"]] == ["email", "topic"]
    assert "identity_secret" not in changed.text and body["identity_secret"] not in changed.text
    en = (await http.get(url.replace("lang=de", "lang=en"), headers={"Origin": ORIGIN})).json()
    assert en["title"] == "Talk to us"  # no translation provider: the admin's text as it is


async def test_bad_widget_settings_change_nothing(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    assert (await set_widget(http, server, seeded, {"color": "#abcdef"})).status_code == 200
    for bad, field in [
        ({"color": "javascript:alert(1)"}, "widget.color"),
        ({"prechat": [{"type": "dropdown", "key": "t"}]}, "widget.prechat[0].options"),
        ({"hours": {"mon": [["10:00", "09:00"]]}, "timezone": "UTC"}, "widget.hours.mon"),
    ]:
        r = await set_widget(http, server, seeded, bad)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["data"]["field"] == field
    r = await http.patch(
        f"{server.url}/api/v1/inboxes/{seeded.inbox_id}",
        json={"widget": {"color": "#000000"}, "allowed_origins": ["not a url"]},
        headers=admin(seeded),
    )
    assert r.status_code == 422
    got = await http.get(f"{server.url}/api/v1/inboxes/{seeded.inbox_id}", headers=admin(seeded))
    assert got.json()["widget"]["color"] == "#abcdef"
    plain = await http.patch(
        f"{server.url}/api/v1/inboxes/{seeded.inbox_id}",
        json={"widget": {"color": "#000"}},
        headers={"Authorization": f"Bearer {seeded.agent_token}"},
    )
    assert plain.status_code == 403


async def test_refused_origin_is_logged_with_the_inbox_and_own_origin_works(
    http: httpx.AsyncClient, server: Server, seeded: Seed, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="chatserver.widget")
    r = await http.post(
        f"{server.url}/api/v1/widget/sessions",
        json={"inbox_key": seeded.inbox_key},
        headers={"Origin": "https://evil.example"},
    )
    assert r.status_code == 403
    assert r.headers["access-control-allow-origin"] == "https://evil.example"  # the widget can read why
    logged = [rec.getMessage() for rec in caplog.records if "refused origin" in rec.getMessage()]
    assert logged and "https://evil.example" in logged[0] and seeded.inbox_id in logged[0]
    # a page the server serves itself (the demo) works on whatever port it was started on
    own = await http.post(
        f"{server.url}/api/v1/widget/sessions",
        json={"inbox_key": seeded.inbox_key},
        headers={"Origin": server.url},
    )
    assert own.status_code == 201, own.text
    token = own.json()["token"]
    async with Client.connect(f"{server.ws}/ws/visitor?token={token}", origin=server.url) as same_site:
        await same_site.expect("hello")
    caplog.clear()
    async with Client.connect(f"{server.ws}/ws/visitor?token={token}", origin="https://evil.example") as evil:
        assert await evil.closed_with() == 4403
    assert any(
        "https://evil.example" in r.getMessage() and seeded.inbox_id in r.getMessage() for r in caplog.records
    )
    config = await http.get(
        f"{server.url}/api/v1/widget/config?inbox_key={seeded.inbox_key}",
        headers={"Origin": "https://evil.example"},
    )
    assert config.status_code == 403
    missing = await http.get(f"{server.url}/api/v1/widget/config", headers={"Origin": ORIGIN})
    assert missing.status_code == 422
    unknown = await http.get(f"{server.url}/api/v1/widget/config?inbox_key=nope", headers={"Origin": ORIGIN})
    assert unknown.status_code == 404


def user(secret: str, user_id: str, expires: int, **extra: object) -> dict[str, object]:
    digest = hmac.new(secret.encode(), f"{user_id}:{expires}".encode(), hashlib.sha256).hexdigest()
    return {"id": user_id, "expires": expires, "hash": digest, **extra}


async def test_set_user_same_contact_on_every_device_and_refusals(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    secret = (await http.get(f"{server.url}/api/v1/inboxes/{seeded.inbox_id}", headers=admin(seeded))).json()[
        "identity_secret"
    ]
    future = int(time.time()) + 3600
    good = user(secret, "u-42", future, name="Ada Lovelace", email="ada@example.com")
    one = await visitor_token(http, server.url, seeded.inbox_key, user=good)
    two = await visitor_token(http, server.url, seeded.inbox_key, user=good)  # another device: no token
    assert one["identity"] == "verified" and one["contact_id"] == two["contact_id"]
    assert one["contact"] == {
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "phone": None,
        "verified": True,
    }
    for bad, reason in [
        (user(secret, "u-42", int(time.time()) - 10), "expired"),
        ({**good, "hash": "0" * 64}, "bad_hash"),
        ({"id": "u-42", "expires": future}, "missing_hash"),
    ]:
        got = await visitor_token(http, server.url, seeded.inbox_key, user=bad, token=one["token"])
        assert got["identity"] == "anonymous" and got["identity_error"]["reason"] == reason
        assert got["contact_id"] != one["contact_id"]  # never the verified user's history
        assert secret not in str(got)
    # the history follows the user: a conversation started on one device is resumed on the other
    async with Client.connect(f"{server.ws}/ws/visitor?token={one['token']}") as a:
        await a.expect("hello")
        cid = (await a.request({"type": "conversation.start"}))["conversation_id"]
        await a.request(
            {"type": "message.send", "conversation_id": cid, "client_id": "c1", "text": "from phone"}
        )
    async with Client.connect(f"{server.ws}/ws/visitor?token={two['token']}") as b:
        await b.expect("hello")
        await b.send({"type": "resume", "cursors": {cid: 0}})
        msg = await b.expect("message", conversation_id=cid)
        assert msg["message"]["text"] == "from phone"
    rotated = await http.get(f"{server.url}/api/v1/inboxes/{seeded.inbox_id}", headers=admin(seeded))
    assert rotated.json()["identity_secret"] == secret  # stable until rotated


async def test_contact_form_validates_and_stores(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    assert (await set_widget(http, server, seeded, {"prechat": PRECHAT})).status_code == 200
    tok = (await visitor_token(http, server.url, seeded.inbox_key))["token"]
    url = f"{server.url}/api/v1/widget/contact"
    auth = {"Authorization": f"Bearer {tok}", "Origin": ORIGIN}
    for bad, field in [
        ({"fields": {"topic": "billing"}}, "fields.email"),
        ({"fields": {"email": "nope"}}, "fields.email"),
        ({"fields": {"email": "a@b.example", "topic": "other"}}, "fields.topic"),
        ({"email": "not-mail"}, "email"),
        ({"phone": "call me maybe"}, "phone"),
        ({"password": "x"}, "password"),
    ]:
        r = await http.post(url, json=bad, headers=auth)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["data"]["field"] == field
    assert (await http.post(url, json={"email": "a@b.example"})).status_code == 401
    ok = await http.post(
        url, json={"fields": {"email": "vis@shop.example", "topic": "returns"}}, headers=auth
    )
    assert ok.status_code == 200, ok.text
    assert ok.json() == {
        "contact": {"name": "Visitor", "email": "vis@shop.example", "phone": None, "verified": False},
        "fields": {"email": "vis@shop.example", "topic": "returns"},
    }
    later = await http.post(url, json={"email": "new@shop.example", "phone": "+1 555 0100"}, headers=auth)
    assert later.json()["contact"]["email"] == "new@shop.example"
    assert later.json()["contact"]["phone"] == "+1 555 0100"


async def test_conversation_start_checks_the_prechat_answers(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    assert (await set_widget(http, server, seeded, {"prechat": PRECHAT})).status_code == 200
    tok = (await visitor_token(http, server.url, seeded.inbox_key))["token"]
    async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as visitor:
        await visitor.expect("hello")
        for bad, field in [({"email": "nope"}, "fields.email"), ({"topic": "other"}, "fields.topic")]:
            err = await visitor.request({"type": "conversation.start", "fields": bad})
            assert err["type"] == "error" and err["data"]["field"] == field, err
        ok = await visitor.request(
            {"type": "conversation.start", "fields": {"email": "v@shop.example", "plan": "pro"}}
        )
        assert ok["type"] == "ack", ok  # other fields (setAttributes, JS settings) pass; none is required


async def test_inbox_texts_translated_once_through_the_provider(
    tmp_path: Path, http: httpx.AsyncClient
) -> None:
    """No German texts from the admin: the default ones are translated once (cached), then served from the
    cache; an outage shows the admin's own text and is not cached."""
    async with serve(make_fake("libretranslate")) as fake:
        url = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
        s = await seed(url)
        settings = settings_for(
            url,
            tmp_path,
            translation_provider="libretranslate",
            translation_url=fake.url,
            languages=("de", "es", "en"),
        )
        async with run_server(settings) as server:
            widget = {
                "title": "Talk to us",
                "greeting": "Welcome to the shop",
                "texts": {"es": {"title": "Hola"}},
            }
            r = await http.patch(
                f"{server.url}/api/v1/inboxes/{s.inbox_id}",
                json={"widget": widget},
                headers={"Authorization": f"Bearer {s.admin_token}"},
            )
            assert r.status_code == 200, r.text
            config = f"{server.url}/api/v1/widget/config?inbox_key={s.inbox_key}"
            fake.mode = "server_error"
            down = (await http.get(config + "&lang=de", headers={"Origin": ORIGIN})).json()
            assert down["title"] == "Talk to us"  # untranslated, never missing
            fake.mode = "ok"
            before = len(fake.requests)
            de = (await http.get(config + "&lang=de", headers={"Origin": ORIGIN})).json()
            assert de["title"] == "[de] Talk to us" and de["greeting"] == "[de] Welcome to the shop"
            asked = len(fake.requests) - before
            assert asked >= 1
            again = (await http.get(config + "&lang=de", headers={"Origin": ORIGIN})).json()
            assert again == de and len(fake.requests) - before == asked  # cached: the provider is not asked
            es = (await http.get(config + "&lang=es", headers={"Origin": ORIGIN})).json()
            assert (
                es["title"] == "Hola" and es["greeting"] == "[es] Welcome to the shop"
            )  # the admin's own wins


async def test_avatars_set_through_the_agent_api_and_shown_as_team_faces(
    http: httpx.AsyncClient, server: Server, seeded: Seed
) -> None:
    """An agent sets their own avatar, an admin anyone's; a bad URL is refused and changes nothing; the
    widget's config shows up to 3 faces, each only a display name and an avatar (nothing else public)."""
    bob = {"Authorization": f"Bearer {seeded.agent_token}"}
    own = f"{server.url}/api/v1/agents/{seeded.agent_id}"
    r = await http.patch(own, json={"avatar_url": "https://cdn.example.com/bob.png"}, headers=bob)
    assert r.status_code == 200, r.text
    assert r.json()["avatar_url"] == "https://cdn.example.com/bob.png"
    for bad in ["javascript:alert(1)", "http://cdn.example.com/bob.png", "//evil.example/x.png", 7]:
        r = await http.patch(own, json={"avatar_url": bad}, headers=bob)
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["error"]["data"]["field"] == "avatar_url"
    r = await http.patch(
        f"{server.url}/api/v1/agents/{seeded.admin_id}", json={"avatar_url": "/static/x.png"}, headers=bob
    )
    assert r.status_code == 403  # not someone else's
    r = await http.patch(
        f"{server.url}/api/v1/agents/{seeded.admin_id}",
        json={"avatar_url": "/media/ada.png"},
        headers=admin(seeded),
    )
    assert r.status_code == 200 and r.json()["avatar_url"] == "/media/ada.png"
    got = (await http.get(own, headers=bob)).json()
    assert got["avatar_url"] == "https://cdn.example.com/bob.png"  # the refused ones changed nothing

    for i in range(3):  # more agents than faces; those without an avatar come after those with one
        r = await http.post(
            f"{server.url}/api/v1/agents",
            json={"email": f"extra{i}@x.test", "name": f"Extra {i}", "role": "agent"},
            headers=admin(seeded),
        )
        assert r.status_code == 201, r.text
    url = f"{server.url}/api/v1/widget/config?inbox_key={seeded.inbox_key}"
    faces = (await http.get(url, headers={"Origin": ORIGIN})).json()["faces"]
    assert len(faces) == 3
    assert all(set(f) == {"name", "avatar_url"} for f in faces)
    assert {f["name"] for f in faces[:2]} == {"Ada", "Bob"}
    assert faces[2]["avatar_url"] is None and faces[2]["name"].startswith("Extra")

    r = await http.patch(own, json={"avatar_url": None}, headers=bob)
    assert r.status_code == 200 and r.json()["avatar_url"] is None
