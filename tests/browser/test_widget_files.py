"""Files from the widget in Chromium against a real server: a visitor attaches a photo and a PDF, the
upload shows, the agent receives both, the visitor sees the thumbnail through its signed link; a type
the server refuses says why and sends nothing."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import Server
from tests.browser.test_routing_ui import admin_client
from tests.browser.test_widget_console import (
    open_demo,
    open_widget,
    unique_name,
    visitor_send,
    widget_log,
    widget_text,
)

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips (or fails under CI) with the reason
    expect = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360f8cfc0f01f0005"
    "0001ff5ccc4c6d0000000049454e44ae426082"
)


def test_a_visitor_sends_a_photo_and_a_pdf_and_the_agent_gets_them(
    server: Server, new_page: Callable[..., Page], tmp_path: Path
) -> None:
    photo = tmp_path / "parcel <b>.png"
    photo.write_bytes(PNG)
    pdf = tmp_path / "receipt.pdf"
    pdf.write_bytes(b"%PDF-1.4 receipt")
    page = tmp_path / "page.html"
    page.write_bytes(b"<html><script>alert(1)</script></html>")

    name = unique_name("Fiona")
    visitor = open_demo(new_page(), server, name)
    open_widget(visitor)
    attach = visitor.get_by_role("button", name=widget_text("attach"))
    expect(attach).to_be_hidden()  # there is nothing to attach to before the first message
    visitor_send(visitor, "The parcel arrived broken")
    expect(attach).to_be_visible()

    picker = visitor.locator("input[type=file]")
    picker.set_input_files(str(photo))
    log = widget_log(visitor)
    thumb = log.locator(".msg.me .files img.thumb")
    expect(thumb).to_have_attribute("alt", "parcel _b_.png", timeout=15_000)  # the server's clean name
    expect(thumb).to_have_js_property("naturalWidth", 1)  # loaded through its signed link
    picker.set_input_files(str(pdf))
    expect(log.locator(".msg.me .files a.file", has_text="receipt.pdf")).to_have_attribute(
        "href", re.compile(r"/files/att_\w+\?exp=\d+&sig=[0-9a-f]+$")
    )
    expect(log.locator(".msg.pending")).to_have_count(0)

    # a page is not an accepted type: the widget says why, nothing is sent
    picker.set_input_files(str(page))
    expect(visitor.locator(".upload")).to_contain_text("not accepted")
    expect(log.locator(".msg.me")).to_have_count(3)

    # the agent side: both files on their messages, fetchable with the agent's credentials
    with admin_client(server) as http:
        convs = http.get("/api/v1/conversations", params={"limit": 50}).json()["items"]
        conv = next(c for c in convs if c["contact"]["name"] == name)
        items = http.get(f"/api/v1/conversations/{conv['id']}/messages").json()["items"]
        files = [a for m in items for a in m["attachments"]]
        assert [(a["name"], a["content_type"]) for a in files] == [
            ("parcel _b_.png", "image/png"),
            ("receipt.pdf", "application/pdf"),
        ]
        got = http.get(f"/api/v1/attachments/{files[1]['id']}/content")
        assert got.status_code == 200 and got.content == b"%PDF-1.4 receipt"
