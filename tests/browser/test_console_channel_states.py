"""A custom channel's delivery reports in the agent console, in Chromium against a real server: the
agent's reply in an ``api`` conversation shows "Delivery: delivered" as the channel reports it, then
the failure with its reason, and the same after a reload of the console (from message history)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.browser.conftest import Server
from tests.browser.test_routing_ui import admin_client
from tests.browser.test_widget_console import agent_log, agent_send, console_login, unique_name, waiting_item
from tests.e2e.harness import ISSUED_SECRETS

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips (or fails under CI) with the reason
    expect = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


def test_a_custom_channels_reports_show_under_the_reply_live_and_after_a_reload(
    server: Server, new_page: Callable[..., Page]
) -> None:
    name = unique_name("Quinn")
    with admin_client(server) as http:
        inbox = http.post("/api/v1/inboxes", json={"name": "Bridge", "channel": "api"})
        assert inbox.status_code == 201, inbox.text
        bridge = http.post(
            "/api/v1/adapters", json={"name": "Bridge", "kind": "channel", "inboxes": [inbox.json()["id"]]}
        )
        assert bridge.status_code == 201, bridge.text
    token = bridge.json()["token"]
    ISSUED_SECRETS.add(token)
    # the channel calls with its own token only (no console session)
    with httpx.Client(
        base_url=server.url, timeout=10.0, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        r = http.post(
            "/api/v1/adapter/messages",
            json={
                "inbox_id": inbox.json()["id"],
                "contact": {"external_id": "q-1", "name": name},
                "external_id": "pm-1",
                "text": "Hello from the bridge",
            },
        )
        assert r.status_code == 201, r.text

        agent = console_login(new_page(viewport={"width": 1360, "height": 820}), server)
        waiting_item(agent, name).click()
        expect(agent_log(agent)).to_contain_text("Hello from the bridge")
        agent.get_by_role("button", name="Take").click()
        expect(agent.locator("#mine")).to_contain_text(name)
        agent_send(agent, "Hi, how can I help?")
        reply = agent_log(agent).locator(".msg.us", has_text="Hi, how can I help?")
        message_id = reply.get_attribute("data-id")
        assert message_id

        r = http.post("/api/v1/adapter/statuses", json={"message_id": message_id, "state": "delivered"})
        assert r.status_code == 200 and r.json()["changed"] is True, r.text
        expect(reply.locator(".delivery")).to_have_text("Delivery: delivered", timeout=15_000)
        r = http.post(
            "/api/v1/adapter/statuses",
            json={"message_id": message_id, "state": "failed", "reason": "the user blocked the page"},
        )
        assert r.status_code == 200 and r.json()["state"] == "failed", r.text
        expect(reply.locator(".delivery")).to_have_text("Delivery: failed (the user blocked the page)")
        expect(reply.locator(".delivery")).to_have_class("delivery failed")

    agent.reload()
    expect(agent.locator("#app")).to_be_visible()
    agent.locator("#mine").get_by_role("button", name=name).click()
    reloaded = agent_log(agent).locator(".msg.us", has_text="Hi, how can I help?")
    expect(reloaded.locator(".delivery")).to_have_text("Delivery: failed (the user blocked the page)")
