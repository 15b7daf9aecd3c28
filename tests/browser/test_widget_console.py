"""The widget and the agent console in a real browser against a real server.

Every wait is one of Playwright's auto-waiting ``expect`` assertions (or ``wait_for_function``); nothing
sleeps for a fixed time.
"""

from __future__ import annotations

import gzip
import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import PageProblems, Server

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips (or fails under CI) with the reason
    expect = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = pytest.mark.browser

WIDGET_DIR = Path(__file__).resolve().parents[2] / "widget"
HOSTILE = "<img src=x onerror=alert(1)>"


# -- helpers: the console -----------------------------------------------------------------------------------


def console_login(page: Page, server: Server) -> Page:
    page.goto(server.console)
    page.get_by_label("Email").fill(server.email)
    page.get_by_label("Password").fill(server.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#conn")).to_be_hidden()
    return page


def waiting_item(agent: Page, name: str) -> Locator:
    return agent.locator("#waiting").get_by_role("button", name=re.compile(re.escape(name)))


def agent_log(agent: Page) -> Locator:
    return agent.get_by_role("log", name="Messages")


def agent_send(agent: Page, text: str, *, private: bool = False) -> None:
    toggle = agent.get_by_label("Private note")
    if private:
        toggle.check()
    else:
        toggle.uncheck()
    agent.get_by_role("textbox", name="Reply").fill(text)
    agent.get_by_role("button", name="Add note" if private else "Send").click()
    # shown at once as pending (synchronously on submit), then acknowledged by the server
    expect(agent_log(agent).locator(".msg.pending")).to_have_count(0)
    bubbles = agent_log(agent).locator(".msg > .bubble")
    expect(bubbles.get_by_text(text, exact=True).last).to_be_visible()


# -- helpers: the widget ------------------------------------------------------------------------------------


def open_demo(page: Page, server: Server, name: str) -> Page:
    page.add_init_script(f"window.chatserverSettings = {{ user: {{ name: {name!r} }} }};")
    page.goto(server.demo)
    return page


def widget_text(key: str, lang: str = "en") -> str:
    """A label of the widget's UI in ``lang`` (its catalogue, widget/i18n/<lang>.json)."""
    text: str = json.loads((WIDGET_DIR / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))[key]
    return text


def open_widget(visitor: Page, lang: str = "en") -> None:
    launcher = visitor.get_by_role("button", name=re.compile("^" + re.escape(widget_text("open", lang))))
    launcher.click()
    expect(visitor.get_by_role("dialog", name=widget_text("title", lang))).to_be_visible()
    minimize = visitor.get_by_role("button", name=widget_text("minimize", lang))
    expect(minimize).to_have_attribute("aria-expanded", "true")


def widget_log(visitor: Page, lang: str = "en") -> Locator:
    return visitor.get_by_role("log", name=widget_text("log", lang))


def thread(log: Locator) -> Locator:
    """The texts of a conversation in order: message bubbles and event lines (not the local greeting)."""
    return log.locator(".msg:not(.greet) > .bubble, .msg.event > span")


def visitor_send(visitor: Page, text: str, lang: str = "en") -> None:
    box = visitor.get_by_role("textbox", name=widget_text("label", lang))
    box.fill(text)
    box.press("Enter")
    # shown at once as pending (synchronously on Enter), then acknowledged by the server
    expect(widget_log(visitor, lang).locator(".msg.pending")).to_have_count(0)
    mine = widget_log(visitor, lang).locator(".msg.me > .bubble")
    expect(mine.get_by_text(text, exact=True).last).to_be_visible()


def unique_name(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:6]}"


# -- the tests ----------------------------------------------------------------------------------------------


def test_visitor_and_agent_chat_live(server: Server, new_page: Callable[..., Page]) -> None:
    agent = console_login(new_page(viewport={"width": 1360, "height": 820}), server)
    name = unique_name("Alice")
    visitor = open_demo(new_page(), server, name)
    visitor.evaluate(
        "window.__events = [];"
        "Chatserver.on('message', m => __events.push(m.kind + ':' + m.text));"
        "Chatserver.on('open', () => __events.push('open'));"
        "Chatserver.on('close', () => __events.push('close'));"
    )

    open_widget(visitor)
    dialog = visitor.get_by_role("dialog", name="Chat with us")
    expect(widget_log(visitor)).to_have_attribute("aria-live", "polite")
    visitor_send(visitor, "Hello, is anyone there?")

    # the agent sees the new conversation arrive in Waiting, live
    item = waiting_item(agent, name)
    expect(item).to_be_visible()
    item.click()
    expect(agent_log(agent)).to_contain_text("Hello, is anyone there?")
    # the console sent `read` for what it shows: the visitor sees "Read" under their message
    expect(widget_log(visitor).locator(".receipt")).to_have_text("Read")

    agent.get_by_role("button", name="Take").click()
    expect(agent.locator("#mine")).to_contain_text(name)
    expect(agent.locator("#waiting")).not_to_contain_text(name)
    expect(widget_log(visitor).locator(".msg.event")).to_contain_text(["Admin joined the conversation"])

    agent_send(agent, "Hi! How can I help?")
    expect(widget_log(visitor).locator(".msg.them")).to_contain_text(["Hi! How can I help?"])
    visitor.wait_for_function("window.__events.includes('text:Hi! How can I help?')")

    # a private note: styled as one in the console, never delivered to the visitor
    agent_send(agent, "Internal: VIP customer", private=True)
    note = agent_log(agent).locator(".msg.note", has_text="Internal: VIP customer")
    expect(note.locator(".note-label")).to_have_text("Private note")

    # the visitor types: the agent sees it
    visitor.get_by_role("textbox", name="Message").press_sequentially("I want to ret")
    expect(agent.locator("#typing")).to_contain_text(f"{name} is typing")
    visitor.get_by_role("textbox", name="Message").fill("")
    visitor_send(visitor, "I want to return my order")
    expect(agent_log(agent)).to_contain_text("I want to return my order")

    agent.get_by_role("button", name="Close").click()
    closing = widget_log(visitor).locator(".msg.event", has_text="Admin closed the conversation")
    expect(closing).to_be_visible()
    expect(visitor.locator(".sub")).to_have_text(re.compile("ended"))
    # the note (seq before the closing event) was never shown to the visitor
    expect(widget_log(visitor)).not_to_contain_text("VIP")
    assert visitor.evaluate("window.__events.some(e => e.includes('VIP'))") is False
    expect(agent.locator("#mine")).not_to_contain_text(name)

    # keyboard: Escape closes the panel and gives focus back to the launcher
    visitor.get_by_role("textbox", name="Message").press("Escape")
    expect(dialog).to_be_hidden()
    launcher = visitor.get_by_role("button", name=re.compile("^Open chat"))
    expect(launcher).to_have_attribute("aria-expanded", "false")
    expect(launcher).to_be_focused()
    assert visitor.evaluate("window.__events.filter(e => e === 'open' || e === 'close')") == ["open", "close"]


def test_the_widget_keeps_its_token_out_of_the_websocket_url(
    server: Server, new_page: Callable[..., Page]
) -> None:
    visitor = new_page()
    urls: list[str] = []
    visitor.on("websocket", lambda ws: urls.append(ws.url))
    open_demo(visitor, server, unique_name("Quiet"))
    open_widget(visitor)
    visitor_send(visitor, "no token in my URL")
    token = visitor.evaluate(
        "Object.keys(localStorage).filter(k => k.startsWith('chatserver:'))"
        ".map(k => JSON.parse(localStorage.getItem(k)).token).find(Boolean)"
    )
    assert token and urls
    assert all(u.endswith("/ws/visitor") and token not in u for u in urls), urls


def test_reload_keeps_the_conversation_and_delivers_missed_messages(
    server: Server, new_page: Callable[..., Page]
) -> None:
    agent = console_login(new_page(), server)
    name = unique_name("Bob")
    visitor = open_demo(new_page(), server, name)
    open_widget(visitor)
    visitor_send(visitor, "First question")
    waiting_item(agent, name).click()
    agent.get_by_role("button", name="Take").click()
    agent_send(agent, "First answer")
    log = widget_log(visitor)
    expect(log).to_contain_text("First answer")

    # a reload shows the same conversation (the panel stays open within the tab)
    visitor.reload()
    expect(visitor.get_by_role("dialog", name="Chat with us")).to_be_visible()
    expect(thread(log)).to_have_text(["First question", "Admin joined the conversation", "First answer"])

    # (restored open without taking the page's focus); minimized with Escape from inside the widget,
    # a new agent message shows as an unread badge on the launcher
    expect(visitor.get_by_role("textbox", name="Message")).not_to_be_focused()
    visitor.get_by_role("textbox", name="Message").press("Escape")
    agent_send(agent, "Are you still there?")
    expect(visitor.get_by_role("button", name="Open chat, 1 unread")).to_be_visible()

    # the page goes away; the agent writes meanwhile; the visitor comes back
    visitor.goto("about:blank")
    agent_send(agent, "Sent while you were away")
    visitor.goto(server.demo)
    launcher = visitor.get_by_role("button", name="Open chat, 2 unread")
    expect(launcher.locator(".badge")).to_have_text("2")
    launcher.click()
    expect(thread(log)).to_have_text(
        [
            "First question",
            "Admin joined the conversation",
            "First answer",
            "Are you still there?",
            "Sent while you were away",
        ]
    )
    expect(visitor.get_by_role("button", name="Minimize chat").locator(".badge")).to_be_hidden()
    # every message exactly once
    expect(log.locator(".msg", has_text="First question")).to_have_count(1)

    # still the same conversation: the agent gets the next message in the open thread
    visitor_send(visitor, "Thanks, I am back")
    expect(agent_log(agent)).to_contain_text("Thanks, I am back")
    expect(agent.locator("#mine").get_by_role("button", name=re.compile(re.escape(name)))).to_have_count(1)


def test_both_sides_reconnect_and_resume_after_a_server_restart(
    server: Server, new_page: Callable[..., Page]
) -> None:
    agent = console_login(new_page(), server)
    name = unique_name("Carol")
    visitor = open_demo(new_page(), server, name)
    open_widget(visitor)
    visitor_send(visitor, "Before the restart")
    waiting_item(agent, name).click()
    agent.get_by_role("button", name="Take").click()
    agent_send(agent, "Reply before the restart")
    log = widget_log(visitor)
    expect(log).to_contain_text("Reply before the restart")

    server.stop()
    expect(visitor.get_by_role("status")).to_contain_text("Reconnecting")
    expect(agent.locator("#conn")).to_contain_text("Reconnecting")
    # written while the server is down: kept as pending, sent (once) after the reconnect
    box = visitor.get_by_role("textbox", name="Message")
    box.fill("Written during the outage")
    box.press("Enter")
    expect(log.locator(".msg.pending")).to_have_count(1)

    server.start()
    # reconnects with exponential backoff (a few seconds at most), resends and resumes
    expect(agent_log(agent)).to_contain_text("Written during the outage", timeout=20_000)
    expect(log.locator(".msg.pending")).to_have_count(0, timeout=20_000)
    expect(visitor.get_by_role("status")).to_be_hidden()
    expect(agent.locator("#conn")).to_be_hidden()
    agent_send(agent, "Welcome back")
    expect(thread(log)).to_have_text(
        [
            "Before the restart",
            "Admin joined the conversation",
            "Reply before the restart",
            "Written during the outage",
            "Welcome back",
        ]
    )
    expect(agent_log(agent).locator(".msg", has_text="Written during the outage")).to_have_count(1)


def test_hostile_text_is_shown_as_text(
    server: Server, new_page: Callable[..., Page], problems: PageProblems
) -> None:
    agent = console_login(new_page(), server)
    visitor = open_demo(new_page(), server, HOSTILE)
    open_widget(visitor)
    visitor_send(visitor, HOSTILE)

    item = waiting_item(agent, HOSTILE)
    expect(item).to_be_visible()
    item.click()
    expect(agent.locator("#conv-title")).to_have_text(HOSTILE)
    expect(agent_log(agent).locator(".msg.them .bubble")).to_have_text([HOSTILE])
    agent.get_by_role("button", name="Take").click()
    reply = "<b>bold</b><script>alert(2)</script>" + HOSTILE
    agent_send(agent, reply)
    agent_send(agent, HOSTILE, private=True)

    expect(widget_log(visitor).locator(".msg.them:not(.greet) .bubble")).to_have_text([reply])
    expect(widget_log(visitor).locator(".msg.me .bubble")).to_have_text([HOSTILE])
    # nothing was parsed as HTML: no element from the text exists in either page (the widget's shadow
    # DOM included: Playwright's CSS engine pierces open shadow roots)
    for page in (agent, visitor):
        expect(page.locator("img")).to_have_count(0)
        expect(page.locator("b")).to_have_count(0)
        expect(page.locator(".bubble script, .ci-name *, #conv-title *")).to_have_count(0)
    assert problems.dialogs == []


def test_wrong_password_shows_an_error(server: Server, new_page: Callable[..., Page]) -> None:
    page = new_page()
    page.goto(server.console)
    page.get_by_label("Email").fill(server.email)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    expect(page.locator("#app")).to_be_hidden()

    # the right password works, and logging out returns to the form
    page.get_by_label("Password").fill(server.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#app")).to_be_visible()
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    page.reload()  # the session is gone on the server too
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def test_widget_size_budget() -> None:
    def gz(path: Path) -> int:
        return len(gzip.compress(path.read_bytes(), compresslevel=9))

    loader = WIDGET_DIR / "loader.js"
    assets = [p for p in sorted(WIDGET_DIR.iterdir()) if p.suffix in (".js", ".css")]
    assert loader in assets and len(assets) >= 2
    assert gz(loader) <= 10 * 1024, f"loader.js is {gz(loader)} bytes gzipped (budget 10 KB)"
    total = sum(gz(p) for p in assets)
    assert total <= 60 * 1024, f"widget assets are {total} bytes gzipped (budget 60 KB)"
