"""The console with targeted fan-out: a plain agent sees its offers, its own conversations and how many
wait; a supervisor keeps the full Waiting list (a real server with routing on, Chromium)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import Server
from tests.browser.test_routing_ui import (
    WIDE,
    accept,
    create_agent,
    login_as,
    mine_item,
    offer_card,
    start_server,
    visitor_writes,
)
from tests.browser.test_widget_console import waiting_item, widget_log

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips (or fails under CI) with the reason
    expect = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser
__all__ = ["start_server"]  # the fixture, used by name


def test_a_plain_agent_sees_the_count_and_a_supervisor_the_whole_queue(
    start_server: Callable[..., Server], new_page: Callable[..., Page]
) -> None:
    server = start_server()
    paula = create_agent(server, "Paula Plain", max_concurrent=1)
    sam = create_agent(server, "Sam Supervisor", role="supervisor")
    supervisor = login_as(new_page(**WIDE), server, sam)
    supervisor.get_by_label("Your status").select_option("away")  # offers go to Paula only
    expect(supervisor.locator("#team .agent.away", has_text="(you)")).to_be_visible()
    agent = login_as(new_page(**WIDE), server, paula)

    # the first visitor is offered to Paula, who takes the chat
    _, first = visitor_writes(new_page, server, "Ivy", "My parcel is late")
    expect(offer_card(agent, first)).to_be_visible()
    expect(waiting_item(supervisor, first).locator(".ci-tag")).to_have_text("Offered")
    accept(agent, first)
    expect(supervisor.locator("#waiting")).not_to_contain_text(first)

    # a second one waits (Paula is at her capacity): Paula sees the count only, the supervisor the chat
    second_page, second = visitor_writes(new_page, server, "Jon", "Hello, anyone?")
    expect(agent.locator("#queue-summary")).to_contain_text(re.compile(r"^1 waiting · longest "))
    expect(agent.locator("#waiting-count")).to_have_text("1")
    expect(agent.locator("#waiting")).not_to_contain_text(second)
    expect(agent.locator("#waiting-empty")).to_be_hidden()
    expect(mine_item(agent, first)).to_be_visible()
    queued = waiting_item(supervisor, second)
    expect(queued.locator(".ci-tag")).to_have_text("Queued")
    expect(supervisor.locator("#waiting-count")).to_have_text("1")
    expect(supervisor.locator("#queue-summary")).to_contain_text(re.compile(r"^1 waiting"))

    # the supervisor takes it: it leaves both views, and the count goes to nobody
    queued.click()
    expect(supervisor.locator("#conv-title")).to_have_text(second)
    supervisor.get_by_role("button", name="Take").click()
    expect(mine_item(supervisor, second)).to_be_visible()
    expect(supervisor.locator("#waiting")).not_to_contain_text(second)
    expect(agent.locator("#queue-summary")).to_have_text("Nobody is waiting")
    expect(agent.locator("#waiting-count")).to_have_text("0")
    expect(widget_log(second_page).locator(".msg.event")).to_contain_text(["Sam Supervisor joined"])
    # Paula never had the second chat in her lists
    expect(agent.locator("#mine")).not_to_contain_text(second)
