"""The widget in the visitor's language (a German browser, an Arabic one right to left), on a hostile host
page, and within its size budget, against a real server in Debian's Chromium.

Screenshots go to ``test-artifacts/browser/`` (or ``$BROWSER_ARTIFACTS``) for a human to look at."""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.browser.conftest import Server

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips (or fails under CI) with the reason
    expect = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from collections.abc import Callable

    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("BROWSER_ARTIFACTS", ROOT / "test-artifacts" / "browser"))
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 360, "height": 740}}
HOSTILE_CSS = (
    "* { all: unset !important; } html { font-size: 8px !important; } div { z-index: 2147483647 !important; }"
)


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def test_german_browser_gets_the_german_ui(server: Server, new_page: Callable[..., Page]) -> None:
    page = new_page(locale="de-DE", viewport=VIEWPORTS["desktop"], reduced_motion="reduce")
    page.goto(server.demo)
    launcher = page.get_by_role("button", name=re.compile("^Chat öffnen"))
    launcher.click()
    dialog = page.get_by_role("dialog", name="Schreiben Sie uns")
    expect(dialog).to_be_visible()
    expect(page.get_by_placeholder("Nachricht schreiben…")).to_be_focused()
    expect(page.get_by_role("button", name="Chat schließen")).to_be_visible()
    expect(dialog.get_by_text("Hallo! Wie können wir Ihnen heute helfen?")).to_be_visible()
    expect(page.locator("#chatserver-widget .cs")).to_have_attribute("lang", "de")
    shot(page, "widget-de-1280x800")


@pytest.mark.parametrize(("lang", "title"), [("ar", "تحدّث معنا"), ("he", "דברו איתנו")])
def test_right_to_left_languages(
    server: Server, new_page: Callable[..., Page], lang: str, title: str
) -> None:
    for viewport in VIEWPORTS.values():
        page = new_page(locale=lang, viewport=viewport, reduced_motion="reduce")
        page.goto(server.demo)
        page.locator("#chatserver-widget .launcher").click()
        expect(page.get_by_role("dialog", name=title)).to_be_visible()
        expect(page.locator("#chatserver-widget .cs")).to_have_attribute("dir", "rtl")
        direction = page.locator("#chatserver-widget .panel").evaluate("e => getComputedStyle(e).direction")
        assert direction == "rtl"
        shot(page, f"widget-{lang}-{viewport['width']}x{viewport['height']}")
        page.close()


def test_a_setting_overrides_the_browser_language(server: Server, new_page: Callable[..., Page]) -> None:
    page = new_page(locale="de-DE")
    page.add_init_script("window.chatserverSettings = { locale: 'es' };")
    page.goto(server.demo)
    page.get_by_role("button", name=re.compile("^Abrir chat")).click()
    expect(page.get_by_role("dialog", name="Chatea con nosotros")).to_be_visible()


def test_hostile_host_css_does_not_change_the_widget(server: Server, new_page: Callable[..., Page]) -> None:
    boxes = []
    for hostile in (False, True):
        page = new_page(viewport=VIEWPORTS["desktop"], reduced_motion="reduce")
        if hostile:
            page.add_init_script(
                "document.addEventListener('DOMContentLoaded', () => {"
                " const s = document.createElement('style');"
                f" s.textContent = {HOSTILE_CSS!r}; document.head.appendChild(s); }});"
            )
        page.goto(server.demo)
        page.get_by_role("button", name=re.compile("^Open chat")).click()
        dialog = page.get_by_role("dialog", name="Chat with us")
        expect(dialog).to_be_visible()
        page.get_by_role("textbox", name="Message").fill("hello")
        boxes.append(
            (
                dialog.bounding_box(),
                page.locator("#chatserver-widget .title").evaluate("e => getComputedStyle(e).fontSize"),
            )
        )
        if hostile:
            shot(page, "widget-hostile-css-1280x800")
            # nothing of the page covers the widget: the element at the send button is the widget's host
            at = page.evaluate(
                "() => { const root = document.querySelector('#chatserver-widget').shadowRoot;"
                " const b = root.querySelector('.send').getBoundingClientRect();"
                " return document.elementFromPoint(b.x + b.width / 2, b.y + b.height / 2).id; }"
            )
            assert at == "chatserver-widget"
        page.close()
    assert boxes[0] == boxes[1]


def test_size_budget(server: Server) -> None:
    """gzip what the server serves: the loader <= 10 KB; everything before the first message <= 60 KB."""

    def gz(path: str) -> int:
        r = httpx.get(server.url + path, timeout=10)
        assert r.status_code == 200, path
        return len(gzip.compress(r.content, 9))

    loader = gz("/widget/loader.js")
    assert loader <= 10 * 1024
    scripts = re.findall(r'"([a-z]+\.js)"', (ROOT / "widget" / "loader.js").read_text())
    assert "chat.js" in scripts
    largest_catalogue = max(gz(f"/widget/i18n/{p.name}") for p in (ROOT / "widget" / "i18n").glob("*.json"))
    config = gz(f"/api/v1/widget/config?inbox_key={server.inbox_key}")
    total = (
        loader
        + sum(gz(f"/widget/{s}") for s in scripts)
        + gz("/widget/chat.css")
        + largest_catalogue
        + config
    )
    assert total <= 60 * 1024, total


def test_system_lines_in_the_visitors_language_without_a_provider(
    server: Server, new_page: Callable[..., Page]
) -> None:
    """This server has no translation provider: the agent joins and closes, and a German visitor reads
    both lines in German (from the widget's catalogue, by the lines' codes); the console keeps English."""
    from tests.browser.test_widget_console import (
        agent_log,
        console_login,
        open_demo,
        open_widget,
        unique_name,
        visitor_send,
        waiting_item,
        widget_log,
        widget_text,
    )

    assert not any(k.startswith("CHATSERVER_TRANSLATION") for k in server.extra_env)  # no provider
    agent = console_login(new_page(viewport={"width": 1360, "height": 820}), server)
    name = unique_name("Greta")
    visitor = open_demo(new_page(locale="de-DE"), server, name)
    open_widget(visitor, "de")
    visitor_send(visitor, "Hallo, ist jemand da?", "de")
    waiting_item(agent, name).click()
    agent.get_by_role("button", name="Take").click()
    joined = widget_text("sys.agent_joined", "de").replace("{name}", "Admin")
    assert joined == "Admin ist dem Gespräch beigetreten"
    line = widget_log(visitor, "de").locator(".msg.event[data-code=agent_joined]")
    expect(line).to_have_text(joined)
    expect(agent_log(agent)).to_contain_text("Admin joined the conversation")  # the console: English

    agent.get_by_role("button", name="Close").click()
    closed = widget_text("sys.agent_closed", "de").replace("{name}", "Admin")
    expect(widget_log(visitor, "de").locator(".msg.event[data-code=agent_closed]")).to_have_text(closed)
    expect(widget_log(visitor, "de")).not_to_contain_text("joined the conversation")
    expect(widget_log(visitor, "de")).not_to_contain_text("closed the conversation")
    # a reload renders the cached lines the same way
    visitor.reload()
    expect(widget_log(visitor, "de").locator(".msg.event")).to_have_text([joined, closed])
