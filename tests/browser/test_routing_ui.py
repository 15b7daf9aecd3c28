"""Skill-based routing in the console and the widget, in a real browser against a server with
``CHATSERVER_ROUTING=offers``: offer cards (accept, decline, expiry), the RONA banner, transfers,
supervisors' manual assignment, and the visitor's queue position.

Routing state (queued conversations, missed offers, away agents) outlives a test, so every test starts its
own server. Agents are created over REST by the admin; an agent is online while a console is connected.
Every wait is one of Playwright's auto-waiting ``expect`` assertions; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
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
    from playwright.sync_api import Locator, Page, Route

pytestmark = pytest.mark.browser

ROUTING_ENV = {
    "CHATSERVER_ROUTING": "offers",
    "CHATSERVER_OFFER_TIMEOUT_S": "30",  # long enough never to expire by accident; test (c) shortens it
    "CHATSERVER_RONA_THRESHOLD": "3",
    "CHATSERVER_MAX_CONCURRENT": "3",
    "CHATSERVER_AGENT_GRACE_S": "600",  # a closed console never hands its conversations back mid-test
}
AGENT_PASSWORD = "routing-agent-password"
WIDE = {"viewport": {"width": 1360, "height": 820}}


@dataclass(frozen=True)
class Agent:
    id: str
    name: str
    email: str
    password: str = AGENT_PASSWORD


# -- fixtures -----------------------------------------------------------------------------------------------


@pytest.fixture
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Server]]:
    """Start a routing server for this test (``start_server(CHATSERVER_X="...")`` adds settings); stopped
    after the test's pages are closed (this fixture comes first in every test's arguments)."""
    started: list[Server] = []

    def start(**env: str) -> Server:
        instance = Server(tmp_path_factory.mktemp("chatserver-routing"), env={**ROUTING_ENV, **env})
        started.append(instance)
        instance.start()
        return instance

    try:
        yield start
    finally:
        for instance in started:
            instance.stop()


# -- helpers ------------------------------------------------------------------------------------------------


@contextmanager
def admin_client(server: Server) -> Iterator[httpx.Client]:
    """An httpx client logged in as the admin (cookie session), sending the CSRF token with every request."""
    with httpx.Client(base_url=server.url, timeout=10.0) as http:
        login = http.post("/api/v1/auth/login", json={"email": server.email, "password": server.password})
        assert login.status_code == 200, login.text
        http.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        yield http


def create_agent(server: Server, name: str, **fields: Any) -> Agent:
    """A plain agent (role ``agent`` unless ``role=`` says otherwise) with a password."""
    email = f"{uuid.uuid4().hex[:8]}@agents.example.com"
    body = {"email": email, "name": name, "role": "agent", "password": AGENT_PASSWORD, **fields}
    with admin_client(server) as http:
        r = http.post("/api/v1/agents", json=body)
    assert r.status_code == 201, r.text
    return Agent(id=r.json()["id"], name=name, email=email)


def agent_status(server: Server, agent: Agent) -> str:
    with admin_client(server) as http:
        r = http.get(f"/api/v1/agents/{agent.id}")
    assert r.status_code == 200, r.text
    status: str = r.json()["status"]
    return status


def login_as(page: Page, server: Server, agent: Agent) -> Page:
    """Sign in to the console as ``agent`` and wait until it is connected (the agent is online then)."""
    page.goto(server.console)
    page.get_by_label("Email").fill(agent.email)
    page.get_by_label("Password").fill(agent.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#app")).to_be_visible()
    return connected(page)


def connected(page: Page) -> Page:
    """Wait until the console's connection is up: the agent shows as online in the Team list then."""
    expect(page.locator("#conn")).to_be_hidden()
    expect(page.locator("#team .agent.online", has_text="(you)")).to_be_visible()
    return page


def offer_card(agent: Page, visitor_name: str) -> Locator:
    return agent.get_by_role("alertdialog", name=re.compile(re.escape(visitor_name)))


def mine_item(agent: Page, name: str) -> Locator:
    return agent.locator("#mine").get_by_role("button", name=re.compile(re.escape(name)))


def visitor_writes(new_page: Callable[..., Page], server: Server, who: str, text: str) -> tuple[Page, str]:
    name = unique_name(who)
    visitor = open_demo(new_page(), server, name)
    open_widget(visitor)
    visitor_send(visitor, text)
    return visitor, name


def accept(agent: Page, visitor_name: str) -> None:
    """Accept the offer: the card goes, the conversation opens (in Mine) with the reply box focused."""
    card = offer_card(agent, visitor_name)
    card.get_by_role("button", name="Accept").click()
    expect(card).to_be_hidden()
    expect(agent.locator("#conv-title")).to_have_text(visitor_name)
    expect(mine_item(agent, visitor_name)).to_be_visible()
    expect(agent.get_by_role("textbox", name="Reply")).to_be_focused()


# -- the tests ----------------------------------------------------------------------------------------------


def test_offer_accept_chat_and_queue_position(
    start_server: Callable[..., Server], new_page: Callable[..., Page]
) -> None:
    server = start_server()
    olivia = create_agent(server, "Olivia Offer", max_concurrent=1)
    agent = login_as(new_page(**WIDE), server, olivia)

    # a visitor writes: the only online agent gets an offer card with the message, the visitor's details
    # and a countdown
    first, first_name = visitor_writes(new_page, server, "Vera", "Hello, I need help with my order")
    card = offer_card(agent, first_name)
    expect(card).to_be_visible()
    expect(card.locator(".offer-preview")).to_have_text("Hello, I need help with my order")
    expect(card.locator(".offer-facts")).to_contain_text("English")
    expect(card.get_by_role("timer")).to_have_text(re.compile(r"^\d+ s$"))
    expect(agent.get_by_role("button", name=re.compile("^Accept the chat with " + re.escape(first_name))))
    expect(waiting_item(agent, first_name).locator(".ci-tag")).to_have_text("Offered to you")
    assert agent.title().startswith("New chat offer")

    accept(agent, first_name)
    expect(widget_log(first).locator(".msg.event")).to_contain_text(["Olivia Offer joined the conversation"])
    agent_send(agent, "Hi! Happy to help.")
    expect(widget_log(first).locator(".msg.them")).to_contain_text(["Hi! Happy to help."])
    visitor_send(first, "Order 12345 never arrived")
    expect(agent_log(agent)).to_contain_text("Order 12345 never arrived")

    # a second visitor waits: Olivia is at her capacity (1), so they are told their place in the queue
    second, second_name = visitor_writes(new_page, server, "Walt", "Is anyone there?")
    expect(second.locator(".sub")).to_have_text(re.compile(r"^You are number 1 in line · "))
    # a plain agent sees how many wait, not who: routing offers it to her when she is free
    expect(agent.locator("#queue-summary")).to_contain_text(re.compile(r"^1 waiting · longest "))
    expect(agent.locator("#waiting-count")).to_have_text("1")
    expect(agent.locator("#waiting")).not_to_contain_text(second_name)
    expect(offer_card(agent, second_name)).to_have_count(0)
    expect(agent.get_by_role("button", name="Take")).to_be_hidden()

    # closing the first chat frees her: the waiting visitor is offered to her, and she accepts
    mine_item(agent, first_name).click()
    expect(agent.locator("#conv-title")).to_have_text(first_name)
    agent.get_by_role("button", name="Close").click()
    expect(offer_card(agent, second_name)).to_be_visible()
    accept(agent, second_name)
    expect(second.locator(".sub")).to_have_text("You are chatting with Olivia Offer")
    agent_send(agent, "Sorry for the wait!")
    expect(widget_log(second).locator(".msg.them")).to_contain_text(["Sorry for the wait!"])


def test_declined_offer_goes_to_the_next_agent(
    start_server: Callable[..., Server], new_page: Callable[..., Page]
) -> None:
    server = start_server()
    dana = login_as(new_page(**WIDE), server, create_agent(server, "Dana Decline"))
    _, name = visitor_writes(new_page, server, "Xena", "Can I change my delivery address?")
    card = offer_card(dana, name)
    expect(card).to_be_visible()

    # a second agent comes online; the offer stays Dana's until she answers
    ben = login_as(new_page(**WIDE), server, create_agent(server, "Ben Backup"))
    expect(ben.locator("#queue-summary")).to_contain_text(re.compile(r"^1 waiting"))
    expect(ben.locator("#waiting")).not_to_contain_text(name)  # Dana's offer is not his business
    expect(offer_card(ben, name)).to_have_count(0)

    card.get_by_role("button", name="Decline").click()
    expect(card).to_be_hidden()
    expect(dana.locator("#offers")).to_be_hidden()
    # ... and it goes to Ben, who takes it
    expect(offer_card(ben, name)).to_be_visible()
    expect(offer_card(ben, name).locator(".offer-preview")).to_have_text("Can I change my delivery address?")
    accept(ben, name)
    expect(dana.locator("#waiting")).not_to_contain_text(name)


def test_unanswered_offer_sets_the_agent_away_until_they_go_online(
    start_server: Callable[..., Server], new_page: Callable[..., Page]
) -> None:
    server = start_server(CHATSERVER_OFFER_TIMEOUT_S="2", CHATSERVER_RONA_THRESHOLD="1")
    rona = create_agent(server, "Ron Away")
    agent = login_as(new_page(**WIDE), server, rona)
    visitor, name = visitor_writes(new_page, server, "Yann", "Hello?")
    card = offer_card(agent, name)
    expect(card).to_be_visible()

    # nobody answers: after two seconds the offer is withdrawn and the agent is set away (threshold 1)
    expect(card).to_be_hidden(timeout=15_000)
    banner = agent.get_by_role("alert").filter(has=agent.get_by_role("button", name="Go online"))
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("You were set to away because an offer went unanswered")
    expect(agent.get_by_label("Your status")).to_have_value("away")
    expect(agent.locator("#toast")).to_have_text(f"The chat offer from {name} expired.")
    assert agent_status(server, rona) == "away"
    # nobody else is online: the conversation is pending, with the reason, in the console and the widget
    expect(waiting_item(agent, name).locator(".ci-tag")).to_have_text("No agent available")
    expect(visitor.locator(".sub")).to_have_text("We will reply as soon as we can")
    expect(widget_log(visitor)).to_contain_text("No agent is available for this right now")

    banner.get_by_role("button", name="Go online").click()
    expect(banner).to_be_hidden()
    expect(agent.get_by_label("Your status")).to_have_value("online")
    # the server has them online: the pending conversation is offered to them again at once (its offer
    # expires in two seconds and sets them away again, so the status itself is not asserted here)
    expect(offer_card(agent, name)).to_be_visible(timeout=15_000)


def test_transfer_to_an_online_agent(
    start_server: Callable[..., Server], new_page: Callable[..., Page]
) -> None:
    server = start_server()
    tara = create_agent(server, "Tara Transfer")
    umar = create_agent(server, "Umar Receiver")
    carl = create_agent(server, "Carl Offline")  # never signs in
    sender = login_as(new_page(**WIDE), server, tara)
    visitor, name = visitor_writes(new_page, server, "Zoe", "I need someone from billing")
    expect(offer_card(sender, name)).to_be_visible()
    accept(sender, name)  # before Umar is online, so the offer is Tara's
    receiver = login_as(new_page(**WIDE), server, umar)

    # the console believes Carl is online (a stale list): the server refuses, shown inline, nothing moves
    def carl_online(route: Route) -> None:
        response = route.fetch()
        data = response.json()
        for item in data["items"]:
            if item["id"] == carl.id:
                item["status"] = "online"
        route.fulfill(response=response, json=data)

    sender.route("**/api/v1/agents", carl_online)
    sender.get_by_role("button", name="Transfer").click()
    panel = sender.get_by_role("form", name="Transfer to")
    expect(panel).to_be_visible()
    target = panel.get_by_label("Transfer to")
    expect(target).to_be_focused()
    expect(target.locator("option", has_text="Carl Offline")).to_have_count(1)
    target.select_option(label="Carl Offline")
    sender.unroute("**/api/v1/agents", carl_online)
    panel.get_by_role("button", name="Transfer").click()
    expect(panel.get_by_role("alert")).to_have_text(
        "Could not transfer: Carl Offline is not online; the conversation stays where it is"
    )
    expect(mine_item(sender, name)).to_be_visible()
    # the list is refreshed after the refusal: only agents really online remain
    expect(target.locator("option", has_text="Carl Offline")).to_have_count(0)
    expect(target.locator("option")).to_have_text(["Choose an agent or a team…", "Umar Receiver"])

    target.select_option(label="Umar Receiver")
    panel.get_by_role("button", name="Transfer").click()
    expect(panel).to_be_hidden()
    expect(sender.locator("#toast")).to_have_text("Transferred to Umar Receiver: they get an offer.")
    expect(sender.locator("#mine")).not_to_contain_text(name)

    # Umar gets the offer, accepts, and the chat goes on with him
    card = offer_card(receiver, name)
    expect(card).to_be_visible()
    expect(card.locator(".offer-preview")).to_have_text("I need someone from billing")
    accept(receiver, name)
    expect(agent_log(receiver)).to_contain_text("Tara Transfer transferred the conversation to Umar Receiver")
    agent_send(receiver, "Hi, billing here.")
    expect(widget_log(visitor).locator(".msg.them")).to_contain_text(["Hi, billing here."])


def test_supervisor_takes_and_assigns_by_hand(
    start_server: Callable[..., Server], new_page: Callable[..., Page]
) -> None:
    server = start_server()
    # the admin (a supervisor) is away, so nothing is offered to them
    admin = connected(console_login(new_page(**WIDE), server))
    admin.get_by_label("Your status").select_option("away")
    expect(admin.locator("#team .agent.away", has_text="(you)")).to_be_visible()
    _, name = visitor_writes(new_page, server, "Abel", "Nobody online?")
    # no agent is online: pending, with its reason
    item = waiting_item(admin, name)
    expect(item.locator(".ci-tag")).to_have_text("No agent available")
    item.click()
    expect(admin.locator("#conv-sub")).to_contain_text("No agent available")
    expect(admin.get_by_role("button", name="Take")).to_be_visible()

    # an agent comes online; the supervisor assigns the conversation to them
    pia = create_agent(server, "Pia Plain")
    plain = login_as(new_page(**WIDE), server, pia)
    admin.get_by_role("button", name="Assign to…").click()
    panel = admin.get_by_role("form", name="Assign to")
    panel.get_by_label("Assign to").select_option(label="Pia Plain (online)")
    panel.get_by_role("button", name="Assign").click()
    expect(panel).to_be_hidden()
    expect(admin.locator("#conv-sub")).to_contain_text("assigned to Pia Plain")
    mine = mine_item(plain, name)
    expect(mine).to_be_visible()
    mine.click()
    expect(agent_log(plain)).to_contain_text("Nobody online?")
    agent_send(plain, "Pia here, sorry for the wait.")
