"""The widget's header in a real browser: the team's faces from the inbox config (a picture, or initials on
a coloured disc when there is none or it does not load), then the assigned agent's name and face; usable at
320 px and right to left. Avatars live on an https CDN, which the browser context stands in for (a route that
answers with a PNG), since this machine reaches no other host.

Every wait is one of Playwright's auto-waiting ``expect`` assertions; nothing sleeps for a fixed time."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.conftest import Server
from tests.browser.test_routing_ui import admin_client
from tests.browser.test_widget_console import (
    console_login,
    open_demo,
    open_widget,
    unique_name,
    visitor_send,
    waiting_item,
    widget_text,
)
from tests.browser.test_widget_i18n import shot

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips (or fails under CI) with the reason
    expect = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from playwright.sync_api import Page, Route

pytestmark = pytest.mark.browser
CDN = "https://avatars.example.com"


def png(width: int = 8, height: int = 8) -> bytes:
    """A small valid PNG (one colour)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x30\x60\x90" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def cdn(page: Page) -> Page:
    """The CDN: ``/ok.png`` is a picture, anything else a 404."""

    def answer(route: Route) -> None:
        if route.request.url == f"{CDN}/ok.png":
            route.fulfill(status=200, body=png(), headers={"Content-Type": "image/png"})
        else:
            route.fulfill(status=404, body=b"not found")

    page.context.route(f"{CDN}/**", answer)
    return page


def faces(page: Page) -> Any:
    return page.locator("#chatserver-widget .head .faces .face")


@pytest.fixture(scope="module")
def team(server: Server) -> dict[str, str]:
    """The admin with a picture, one agent whose picture is gone (404), one with none."""
    with admin_client(server) as http:
        ada = next(a for a in http.get("/api/v1/agents").json()["items"] if a["email"] == server.email)
        r = http.patch(f"/api/v1/agents/{ada['id']}", json={"avatar_url": f"{CDN}/ok.png"})
        assert r.status_code == 200, r.text
        for name, avatar in (("Bea Gone", f"{CDN}/missing.png"), ("Zoe Quinn", None)):
            body = {"email": f"{name.split()[0].lower()}@agents.example.com", "name": name, "role": "agent"}
            r = http.post("/api/v1/agents", json={**body, "avatar_url": avatar})
            assert r.status_code == 201, r.text
    return {"admin": ada["name"]}


def test_team_faces_then_the_assigned_agents_face(
    server: Server, team: dict[str, str], new_page: Callable[..., Page]
) -> None:
    visitor = cdn(open_demo(new_page(viewport={"width": 1280, "height": 800}), server, unique_name("Fay")))
    open_widget(visitor)
    expect(faces(visitor)).to_have_count(3)
    admin_face = faces(visitor).nth(0)
    expect(admin_face).to_have_attribute("title", team["admin"])
    expect(admin_face.locator("img")).to_have_attribute("src", f"{CDN}/ok.png")
    visitor.wait_for_function(
        "() => { const i = document.querySelector('#chatserver-widget').shadowRoot"
        ".querySelector('.faces .face img'); return !!i && i.complete && i.naturalWidth === 8; }"
    )
    gone = faces(visitor).nth(1)
    expect(gone).to_have_attribute("title", "Bea Gone")
    expect(gone.locator("img")).to_have_count(0)  # it failed to load: the initials show instead
    expect(gone.locator(".ini")).to_have_text("BG")
    expect(gone.locator(".ini")).to_be_visible()
    none = faces(visitor).nth(2)
    expect(none).to_have_attribute("title", "Zoe Quinn")
    expect(none.locator(".ini")).to_have_text("ZQ")
    colours = {faces(visitor).nth(i).evaluate("e => getComputedStyle(e).backgroundColor") for i in (1, 2)}
    assert len(colours) == 2  # a colour per person
    shot(visitor, "widget-faces-team-1280x800")

    agent = console_login(new_page(viewport={"width": 1360, "height": 820}), server)
    name = visitor.evaluate("Chatserver._cfg.user.name")
    visitor_send(visitor, "Who is there?")
    waiting_item(agent, name).click()
    agent.get_by_role("button", name="Take").click()
    with_agent = widget_text("withAgent").replace("{name}", team["admin"])
    expect(visitor.locator("#chatserver-widget .sub")).to_have_text(with_agent)
    expect(faces(visitor)).to_have_count(1)
    expect(faces(visitor).first).to_have_attribute("title", team["admin"])
    expect(faces(visitor).first.locator("img")).to_have_attribute("src", f"{CDN}/ok.png")
    shot(visitor, "widget-faces-assigned-1280x800")
    # what the widget keeps of the agent: the name and the face (as the conversation frame gave them)
    kept = visitor.evaluate(
        "() => JSON.parse(localStorage.getItem('chatserver:' + Chatserver._cfg.inboxKey))"
    )
    assert list(kept["face"].values()) == [f"{CDN}/ok.png"] and list(kept["agent"].values()) == [
        team["admin"]
    ]


@pytest.mark.parametrize("lang", ["en", "he"])
def test_header_usable_at_320_px(
    server: Server, team: dict[str, str], new_page: Callable[..., Page], lang: str
) -> None:
    page = cdn(open_demo(new_page(locale=lang, viewport={"width": 320, "height": 640}), server, "Narrow"))
    page.locator("#chatserver-widget .launcher").click()  # on a phone the panel covers the launcher
    expect(page.get_by_role("dialog", name=widget_text("title", lang))).to_be_visible()
    expect(faces(page)).to_have_count(3)
    close = page.get_by_role("button", name=widget_text("close", lang))
    expect(close).to_be_visible()
    head = page.locator("#chatserver-widget .head").bounding_box()
    close_box = close.bounding_box()
    title = page.locator("#chatserver-widget .title").bounding_box()
    faces_box = page.locator("#chatserver-widget .faces").bounding_box()
    assert head and close_box and title and faces_box
    assert head["x"] >= 0 and head["x"] + head["width"] <= 320
    assert close_box["x"] >= 0 and close_box["x"] + close_box["width"] <= 320
    # nothing overlaps: faces, titles and the close button side by side (mirrored right to left)
    if lang == "he":
        assert (
            faces_box["x"] >= title["x"] + title["width"] - 1
            and close_box["x"] + close_box["width"] <= title["x"] + 1
        )
    else:
        assert (
            faces_box["x"] + faces_box["width"] <= title["x"] + 1
            and close_box["x"] >= title["x"] + title["width"] - 1
        )
    shot(page, f"widget-faces-{lang}-320x640")
    close.click()
    expect(page.get_by_role("dialog", name=widget_text("title", lang))).to_be_hidden()
