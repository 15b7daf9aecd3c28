"""The widget stays usable: the demo page after a restart on another port, a reload and a server outage in
the middle of a conversation, an offline period of the browser while the server stays up (every message
exactly once, both), and keyboard-only use (focus trap on a phone).

Every wait is one of Playwright's auto-waiting ``expect`` assertions; nothing sleeps for a fixed time."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import Server, _free_port
from tests.browser.test_widget_console import (
    agent_log,
    agent_send,
    console_login,
    open_demo,
    open_widget,
    unique_name,
    visitor_send,
    waiting_item,
    widget_log,
)

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips (or fails under CI) with the reason
    expect = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser
WIDE = {"viewport": {"width": 1360, "height": 820}}


@contextmanager
def static_page(html: str) -> Iterator[str]:
    """A page on another origin (127.0.0.1, another port): a site that embeds the widget."""
    body = html.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_demo_works_after_a_restart_on_another_port(
    tmp_path_factory: pytest.TempPathFactory, new_page: Callable[..., Page]
) -> None:
    server = Server(tmp_path_factory.mktemp("chatserver-ports"))
    server.start()
    server.stop()
    server.port = _free_port()  # the same data directory (and inbox), another port
    server.url = f"http://127.0.0.1:{server.port}"
    server.start()
    try:
        visitor = open_demo(new_page(), server, unique_name("Porter"))
        open_widget(visitor)
        visitor_send(visitor, "Does the demo work here?")
        expect(visitor.get_by_text("Chat is not available on this site.")).to_have_count(0)
        # a page elsewhere is refused, and the server's log says which origin and which inbox
        other = new_page()
        page_html = (
            f'<script src="{server.url}/widget/loader.js" data-inbox-key="{server.inbox_key}"></script>'
        )
        with static_page(page_html) as shop:
            other.goto(f"{shop}/")
            other.wait_for_function("() => !!window.Chatserver")
            other.evaluate("Chatserver.open()")
            expect(other.locator("#chatserver-widget .conn")).to_have_text(
                "Chat is not available on this site."
            )
        log = server.log_path.read_text()
        assert f"refused origin {shop} for inbox ib_" in log
    finally:
        server.stop()


def test_reload_and_outage_mid_conversation_each_message_once(
    tmp_path_factory: pytest.TempPathFactory, new_page: Callable[..., Page]
) -> None:
    server = Server(tmp_path_factory.mktemp("chatserver-outage"))
    server.start()
    try:
        agent = console_login(new_page(**WIDE), server)
        name = unique_name("Otto")
        visitor = open_demo(new_page(), server, name)
        open_widget(visitor)
        visitor_send(visitor, "one")
        waiting_item(agent, name).click()
        agent.get_by_role("button", name="Take").click()
        agent_send(agent, "two")
        expect(widget_log(visitor)).to_contain_text("two")
        server.stop()  # an outage: the visitor writes meanwhile (kept, shown as sending)
        box = visitor.get_by_role("textbox", name="Message")
        box.fill("three")
        box.press("Enter")
        expect(widget_log(visitor).locator(".msg.pending")).to_have_count(1)
        server.start()
        expect(widget_log(visitor).locator(".msg.pending")).to_have_count(0, timeout=60_000)
        expect(agent_log(agent)).to_contain_text("three", timeout=60_000)
        agent_send(agent, "four")
        expect(widget_log(visitor)).to_contain_text("four")
        visitor.reload()
        expect(visitor.get_by_role("dialog", name="Chat with us")).to_be_visible()  # it stays open
        bubbles = widget_log(visitor).locator(".msg > .bubble")
        expect(bubbles.get_by_text("four", exact=True)).to_have_count(1)
        assert [t for t in bubbles.all_inner_texts() if t in ("one", "two", "three", "four")] == [
            "one",
            "two",
            "three",
            "four",
        ]
    finally:
        server.stop()


def active(page: Page) -> str:
    """What has the focus, inside the widget's shadow root: tag.class, or 'page:<id>'."""
    result: str = page.evaluate(
        """() => {
          const host = document.activeElement;
          if (!host || host.id !== "chatserver-widget") return "page:" + (host ? host.tagName : "");
          const e = host.shadowRoot.activeElement;
          return e ? e.tagName.toLowerCase() + "." + e.className : "none";
        }"""
    )
    return result


def test_keyboard_only(server: Server, new_page: Callable[..., Page]) -> None:
    page = open_demo(new_page(), server, unique_name("Kim"))
    expect(page.get_by_role("button", name=re.compile("^Open chat"))).to_be_visible()
    page.keyboard.press("Tab")
    assert active(page).startswith("button.launcher")
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog", name="Chat with us")).to_be_visible()
    assert active(page) == "textarea."
    page.keyboard.type("typed only")
    page.keyboard.press("Enter")
    expect(widget_log(page).locator(".msg.me > .bubble").get_by_text("typed only")).to_be_visible()
    outline = page.locator("#chatserver-widget textarea").evaluate("e => getComputedStyle(e).outlineStyle")
    assert outline != "none" or active(page) == "textarea."  # the composer shows its own focus ring
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog", name="Chat with us")).to_be_hidden()
    assert active(page).startswith("button.launcher")  # focus returned


def test_focus_is_trapped_in_the_open_panel_on_a_phone(server: Server, new_page: Callable[..., Page]) -> None:
    page = open_demo(new_page(viewport={"width": 320, "height": 640}), server, unique_name("Pia"))
    page.get_by_role("button", name=re.compile("^Open chat")).click()
    expect(page.get_by_role("dialog", name="Chat with us")).to_be_visible()
    panel = page.locator("#chatserver-widget .panel")
    box = panel.bounding_box()
    assert box is not None and box["width"] <= 320  # usable at 320 px
    seen = set()
    for _ in range(8):
        page.keyboard.press("Tab")
        inside = page.evaluate(
            "() => { const r = document.getElementById('chatserver-widget').shadowRoot;"
            " return !!r.activeElement && r.querySelector('.panel').contains(r.activeElement); }"
        )
        assert inside, active(page)
        seen.add(active(page))
    assert len(seen) >= 2  # it moved between the panel's controls
    for _ in range(8):
        page.keyboard.press("Shift+Tab")
        assert "page:" not in active(page)


def test_offline_period_mid_conversation_each_message_once(
    server: Server, new_page: Callable[..., Page]
) -> None:
    """The browser goes offline (Playwright's offline mode) while the server stays up: the visitor writes
    meanwhile (kept, shown as sending), and back online each of those messages reaches the agent exactly
    once, in order; a reload shows each once too."""
    agent = console_login(new_page(**WIDE), server)
    name = unique_name("Olga")
    visitor = open_demo(new_page(), server, name)
    open_widget(visitor)
    visitor_send(visitor, "before")
    waiting_item(agent, name).click()
    agent.get_by_role("button", name="Take").click()
    agent_send(agent, "answer")
    expect(widget_log(visitor)).to_contain_text("answer")

    visitor.context.set_offline(True)
    expect(visitor.locator("#chatserver-widget .conn")).to_be_visible()  # it says it is reconnecting
    box = visitor.get_by_role("textbox", name="Message")
    for text in ("offline one", "offline two"):
        box.fill(text)
        box.press("Enter")
    expect(widget_log(visitor).locator(".msg.pending")).to_have_count(2)
    expect(agent_log(agent)).not_to_contain_text("offline one")

    visitor.context.set_offline(False)
    expect(widget_log(visitor).locator(".msg.pending")).to_have_count(0, timeout=60_000)
    agent_bubbles = agent_log(agent).locator(".msg > .bubble")
    expect(agent_bubbles.get_by_text("offline two", exact=True)).to_have_count(1, timeout=60_000)
    expect(agent_bubbles.get_by_text("offline one", exact=True)).to_have_count(1)
    agent_send(agent, "after")
    expect(widget_log(visitor)).to_contain_text("after")
    wanted = ["before", "answer", "offline one", "offline two", "after"]
    mine = [t for t in agent_bubbles.all_inner_texts() if t in wanted]
    assert mine == wanted
    visitor.reload()
    bubbles = widget_log(visitor).locator(".msg > .bubble")
    expect(bubbles.get_by_text("after", exact=True)).to_have_count(1)
    assert [t for t in bubbles.all_inner_texts() if t in wanted] == wanted
