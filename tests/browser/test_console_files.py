"""Files in the agent console, in Chromium against a real server: a visitor's photo shows as a thumbnail
in the conversation, and the agent's Attach sends a PDF the visitor gets as a link."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.browser.conftest import Server
from tests.browser.test_widget_console import (
    agent_log,
    console_login,
    open_demo,
    open_widget,
    unique_name,
    visitor_send,
    waiting_item,
    widget_log,
)
from tests.browser.test_widget_files import PNG

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips (or fails under CI) with the reason
    expect = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


def test_photos_show_in_the_console_and_the_agent_sends_a_file(
    server: Server, new_page: Callable[..., Page], tmp_path: Path
) -> None:
    photo = tmp_path / "dent.png"
    photo.write_bytes(PNG)
    invoice = tmp_path / "invoice 42.pdf"
    invoice.write_bytes(b"%PDF-1.4 invoice")
    agent = console_login(new_page(viewport={"width": 1360, "height": 820}), server)
    name = unique_name("Greta")
    visitor = open_demo(new_page(), server, name)
    open_widget(visitor)
    visitor_send(visitor, "Look at this")
    waiting_item(agent, name).click()
    expect(agent_log(agent)).to_contain_text("Look at this")
    agent.get_by_role("button", name="Take").click()
    expect(agent.locator("#mine")).to_contain_text(name)

    visitor.locator("input[type=file]").set_input_files(str(photo))
    thumb = agent_log(agent).locator(".msg.them .files img.thumb")
    expect(thumb).to_have_attribute("alt", "dent.png", timeout=15_000)
    expect(thumb).to_have_attribute("src", re.compile(r"^/api/v1/attachments/att_\w+/content$"))
    expect(thumb).to_have_js_property("naturalWidth", 1)  # fetched with the agent's own session

    agent.locator("#attach-file").set_input_files(str(invoice))
    sent = agent_log(agent).locator(".msg.us .files a.file", has_text="invoice 42.pdf")
    expect(sent).to_be_visible(timeout=15_000)
    expect(agent_log(agent).locator(".msg.pending")).to_have_count(0)
    link = widget_log(visitor).locator(".msg.them .files a.file", has_text="invoice 42.pdf")
    expect(link).to_have_attribute(
        "href", re.compile(r"/files/att_\w+\?exp=\d+&sig=[0-9a-f]+$"), timeout=15_000
    )
    got = httpx.get(str(link.get_attribute("href")), timeout=10)  # what the visitor's browser opens
    assert got.content == b"%PDF-1.4 invoice" and got.headers["content-type"] == "application/pdf"

    # a type the server refuses: the console says why and sends nothing
    page = tmp_path / "page.html"
    page.write_bytes(b"<script>alert(1)</script>")
    before = agent_log(agent).locator(".msg.us").count()
    agent.locator("#attach-file").set_input_files(str(page))
    expect(agent.locator("#composer-hint")).to_contain_text("not accepted")
    expect(agent_log(agent).locator(".msg.us")).to_have_count(before)
