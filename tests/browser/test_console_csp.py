"""The console under its Content-Security-Policy in Chromium: it logs in and chats with a visitor
without a single CSP violation (inline script or style, eval, a foreign connection)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import Server
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

# Added by the browser itself (CDP), so it runs whatever the page's CSP says.
WATCH = (
    "window.__csp = [];"
    "document.addEventListener('securitypolicyviolation',"
    " e => window.__csp.push("
    "e.violatedDirective + ' ' + e.blockedURI + ' ' + e.sourceFile + ':' + e.lineNumber));"
)


def watched(page: Page, messages: list[str]) -> Page:
    page.add_init_script(WATCH)
    page.on("console", lambda m: messages.append(m.text))
    return page


def test_console_logs_in_and_chats_with_no_csp_violation(
    server: Server, new_page: Callable[..., Page]
) -> None:
    messages: list[str] = []
    agent = watched(new_page(viewport={"width": 1360, "height": 820}), messages)
    response = agent.goto(server.console)
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp
    console_login(agent, server)

    name = unique_name("Cora")
    visitor = open_demo(new_page(), server, name)
    open_widget(visitor)
    visitor_send(visitor, "Is the console safe?")
    item = waiting_item(agent, name)
    expect(item).to_be_visible()
    item.click()
    expect(agent_log(agent)).to_contain_text("Is the console safe?")
    agent.get_by_role("button", name="Take").click()
    expect(agent.locator("#mine")).to_contain_text(name)
    agent_send(agent, "Yes, under a strict policy.")
    expect(widget_log(visitor)).to_contain_text("Yes, under a strict policy.")
    agent_send(agent, "A note for colleagues", private=True)
    agent.get_by_role("button", name="Log out").click()
    expect(agent.locator("#login")).to_be_visible()

    assert agent.evaluate("window.__csp") == []
    assert not [m for m in messages if "Content Security Policy" in m or "Refused to" in m], messages


def test_the_policy_is_enforced_so_the_check_above_means_something(
    server: Server, new_page: Callable[..., Page]
) -> None:
    messages: list[str] = []
    page = watched(new_page(), messages)
    page.goto(server.console)
    expect(page.locator("#login")).to_be_visible()
    # an injected inline script is refused and reported
    page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.__ran = 1';"
        " document.head.appendChild(s); }"
    )
    page.wait_for_function("window.__csp.length > 0")
    assert page.evaluate("window.__ran") is None
    assert any("script-src" in v for v in page.evaluate("window.__csp"))
