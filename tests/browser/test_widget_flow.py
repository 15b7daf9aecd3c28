"""The widget's flow around the messages in a real browser against a real server: the pre-chat form (validated
in the widget and by the server; its answers reach routing and the contact), the notice when nobody is
available (after the visitor's message, in their language) with the email request, the ticket whose reply
reaches the visitor by email and in the widget, the rating, bot buttons, and setUser.

Every wait is one of Playwright's auto-waiting ``expect`` assertions; nothing sleeps for a fixed time."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.conftest import Server
from tests.browser.test_routing_ui import admin_client
from tests.browser.test_widget_console import (
    agent_send,
    console_login,
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


def widget_inbox(server: Server) -> dict[str, Any]:
    with admin_client(server) as http:
        items = http.get("/api/v1/inboxes").json()["items"]
        found = next(i for i in items if i["key"] == server.inbox_key)
        inbox: dict[str, Any] = http.get(f"/api/v1/inboxes/{found['id']}").json()
        return inbox


def set_widget(server: Server, widget: dict[str, Any]) -> None:
    with admin_client(server) as http:
        r = http.patch(f"/api/v1/inboxes/{widget_inbox(server)['id']}", json={"widget": widget})
        assert r.status_code == 200, r.text


def conversations_of(server: Server, name: str) -> list[dict[str, Any]]:
    with admin_client(server) as http:
        items: list[dict[str, Any]] = http.get("/api/v1/conversations", params={"limit": 100}).json()["items"]
    return [c for c in items if (c.get("contact") or {}).get("name") == name]


def demo(page: Page, server: Server, settings: str = "{}") -> Page:
    page.add_init_script(f"window.chatserverSettings = {settings};")
    page.goto(server.demo)
    return page


def test_prechat_form_is_validated_and_feeds_routing_and_the_contact(
    server: Server, new_page: Callable[..., Page]
) -> None:
    set_widget(
        server,
        {
            "prechat": [
                {"type": "name", "required": True},
                {"type": "email", "required": True},
                {"key": "topic", "type": "dropdown", "label": "Topic", "options": ["billing", "returns"]},
            ]
        },
    )
    try:
        with admin_client(server) as http:
            rule = {"name": "billing", "match": {"fields": {"topic": "billing"}}, "priority": 3}
            assert http.post("/api/v1/routing/rules", json=rule).status_code == 201
        name = unique_name("Petra")
        visitor = demo(new_page(), server)
        open_widget(visitor)
        expect(visitor.get_by_role("textbox", name="Message")).to_be_hidden()
        start = visitor.get_by_role("button", name="Start chat")
        start.click()
        expect(visitor.get_by_text("This field is required.").first).to_be_visible()
        expect(visitor.get_by_label("Name *")).to_be_focused()
        visitor.get_by_label("Name *").fill(name)
        visitor.get_by_label("Email *").fill("petra@")
        start.click()
        expect(visitor.get_by_text("Enter a valid email address.")).to_be_visible()
        visitor.get_by_label("Email *").fill("petra@example.com")
        visitor.get_by_label("Topic (optional)").select_option("billing")
        start.click()
        expect(visitor.get_by_role("textbox", name="Message")).to_be_focused()
        visitor_send(visitor, "Where is my invoice?")

        def started() -> dict[str, Any] | None:
            found = conversations_of(server, name)
            return found[0] if found else None

        conv = None
        deadline = time.monotonic() + 15
        while conv is None and time.monotonic() < deadline:
            conv = started()  # polling the server's state, not the UI
        assert conv is not None
        assert conv["fields"] == {"name": name, "email": "petra@example.com", "topic": "billing"}
        assert conv["priority"] == 3  # the routing rule matched the pre-chat answer
        assert conv["contact"]["email"] == "petra@example.com"
        visitor.reload()  # answered once: no form again
        expect(widget_log(visitor)).to_contain_text("Where is my invoice?")
        expect(visitor.get_by_role("button", name="Start chat")).to_have_count(0)
    finally:
        set_widget(server, {"prechat": []})


def test_rating_after_the_agent_closes(server: Server, new_page: Callable[..., Page]) -> None:
    agent = console_login(new_page(**WIDE), server)
    name = unique_name("Rita")
    visitor = demo(new_page(), server, f"{{ user: {{ name: {name!r} }} }}")
    open_widget(visitor)
    visitor_send(visitor, "Thanks for the help")
    waiting_item(agent, name).click()
    agent.get_by_role("button", name="Take").click()
    agent_send(agent, "Glad to help!")
    expect(widget_log(visitor)).to_contain_text("Glad to help!")
    agent.get_by_role("button", name=re.compile("^(Close|Resolve)")).first.click()
    rating = visitor.get_by_role("group", name="How was this conversation?")
    expect(rating).to_be_visible()
    rating.get_by_role("button", name="4 of 5 stars").click()
    expect(rating.get_by_role("button", name="4 of 5 stars")).to_have_attribute("aria-pressed", "true")
    rating.get_by_label("Comment (optional)").fill("Quick and kind")
    rating.get_by_role("button", name="Send rating").click()
    expect(visitor.get_by_text("Thank you for your feedback!")).to_be_visible()
    cid = conversations_of(server, name)[0]["id"]
    with admin_client(server) as http:
        items = http.get(f"/api/v1/conversations/{cid}/messages").json()["items"]
    assert [m["text"] for m in items if m["kind"] == "csat"] == ["Rated 4/5: Quick and kind"]


def test_bot_buttons_render_and_send_the_action(server: Server, new_page: Callable[..., Page]) -> None:
    visitor = demo(new_page(), server)
    open_widget(visitor)
    sent = visitor.evaluate(
        """() => {
          const out = [];
          const box = Chatserver._m.panels.actions(
            [{id: "yes", label: "Yes please"}, {id: "no", label: "<b>No</b>"}, {label: "no id"}, null],
            (id) => out.push(id));
          document.body.appendChild(box);
          const buttons = [...box.querySelectorAll("button")].map((b) => b.textContent);
          box.querySelector("button").click();
          box.querySelector("button").click();
          const none = Chatserver._m.panels.actions(undefined, () => {});
          return {buttons, out, none, html: box.innerHTML.includes("<b>")};
        }"""
    )
    assert sent["buttons"] == ["Yes please", "<b>No</b>"]  # as text; invalid entries ignored
    assert sent["out"] == ["yes"]  # once
    assert sent["none"] is None and sent["html"] is False


def identity(secret: str, user_id: str, expires: int) -> str:
    return hmac.new(secret.encode(), f"{user_id}:{expires}".encode(), hashlib.sha256).hexdigest()


def test_set_user_valid_expired_forged(server: Server, new_page: Callable[..., Page]) -> None:
    secret = widget_inbox(server)["identity_secret"]
    future = int(time.time()) + 3600
    uid = unique_name("user").replace(" ", "-")
    good = {"id": uid, "name": "Vera Verified", "email": "vera@example.com", "expires": future}
    good["hash"] = identity(secret, uid, future)
    # a verified user on a phone writes; on a laptop (another browser context) the same history appears
    phone = new_page()
    phone.add_init_script(f"window.chatserverSettings = {{ user: {good!r} }};".replace("True", "true"))
    phone.goto(server.demo)
    open_widget(phone)
    visitor_send(phone, "Written on my phone")
    laptop = new_page()
    laptop.add_init_script(f"window.chatserverSettings = {{ user: {good!r} }};")
    laptop.goto(server.demo)
    open_widget(laptop)
    expect(widget_log(laptop)).to_contain_text("Written on my phone")
    # expired and forged hashes: anonymous, and the site's console says why
    for bad, reason in [
        ({**good, "expires": 1000, "hash": identity(secret, uid, 1000)}, "in the past"),
        ({**good, "hash": "0" * 64}, "does not match"),
    ]:
        page = new_page()
        warnings: list[str] = []
        page.on("console", lambda m, w=warnings: w.append(m.text) if m.type == "warning" else None)
        page.add_init_script(f"window.chatserverSettings = {{ user: {bad!r} }};")
        page.goto(server.demo)
        open_widget(page)
        visitor_send(page, "Am I known?")
        expect(widget_log(page)).not_to_contain_text("Written on my phone")
        deadline = time.monotonic() + 10
        while not any(reason in w for w in warnings) and time.monotonic() < deadline:
            page.wait_for_timeout(100)  # console messages arrive as events; wait for the one we expect
        assert any("setUser" in w and reason in w for w in warnings), warnings
    # reset() on logout forgets the verified visitor on this device
    laptop.evaluate("Chatserver.reset()")
    expect(widget_log(laptop)).not_to_contain_text("Written on my phone")


def test_nobody_available_notice_email_ticket_and_reply_on_return(
    tmp_path_factory: pytest.TempPathFactory, new_page: Callable[..., Page]
) -> None:
    """Offers routing and nobody online: the German notice comes after the visitor's message, the email they
    leave is stored, they leave, the conversation becomes a ticket, and the agent's reply reaches them by
    email (aiosmtpd) and in the widget when they come back."""
    from tests.outbox.smtp_server import smtp_server

    with smtp_server() as smtp:
        server = Server(
            tmp_path_factory.mktemp("chatserver-offline"),
            env={
                "CHATSERVER_ROUTING": "offers",
                "CHATSERVER_SMTP_URL": smtp.url,
                "CHATSERVER_VISITOR_GONE_S": "1",
                "CHATSERVER_OUTBOX_RETRY_S": "1",
            },
        )
        server.start()
        try:
            name = unique_name("Olga")
            page = new_page(locale="de-DE")
            page.add_init_script(f"window.chatserverSettings = {{ user: {{ name: {name!r} }} }};")
            page.goto(server.demo)
            page.get_by_role("button", name=re.compile("^Chat öffnen")).click()
            box = page.get_by_role("textbox", name="Nachricht")
            box.fill("Ist mein Paket schon unterwegs?")
            box.press("Enter")
            log = page.get_by_role("log", name="Gespräch")
            notice = log.locator(".notice")
            expect(notice).to_contain_text("Gerade ist niemand erreichbar")
            # after the visitor's message, never above it (nor any system line)
            order = log.evaluate(
                "l => [...l.children].map(c => c.classList.contains('notice') ? 'notice'"
                " : c.classList.contains('me') ? 'me' : c.classList.contains('event') ? 'event' : 'other')"
            )
            assert order.index("me") < order.index("notice"), order
            assert "event" not in order[: order.index("me")], order
            ask = notice.get_by_label(re.compile("Hinterlassen Sie Ihre E-Mail-Adresse"))
            ask.fill("olga@")
            notice.get_by_role("button", name="Speichern").click()
            expect(notice).to_contain_text("Bitte geben Sie eine gültige E-Mail-Adresse ein.")
            ask.fill("olga@example.com")
            notice.get_by_role("button", name="Speichern").click()
            expect(notice).to_contain_text("Danke! Wir antworten an olga@example.com.")
            context = page.context
            page.close()  # the visitor leaves

            number = None
            deadline = time.monotonic() + 30
            while number is None and time.monotonic() < deadline:
                with admin_client(server) as http:  # polling the server's state: the visitor-gone check
                    items = http.get("/api/v1/tickets").json()["items"]
                number = items[0]["number"] if items else None  # this server's only ticket
            assert number is not None, "no ticket"
            with admin_client(server) as http:
                ticket = http.get(f"/api/v1/tickets/{number}").json()
                requester = http.get(f"/api/v1/contacts/{ticket['requester_id']}").json()
                assert requester["name"] == name and requester["email"] == "olga@example.com"
                r = http.post(f"/api/v1/tickets/{number}/replies", json={"text": "Ja, es kommt morgen."})
                assert r.status_code in (200, 201), r.text
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not any(
                "Ja, es kommt morgen." in str(m.get_body(preferencelist=("plain",)).get_content())
                for m in smtp.mailbox.received
                if m.get_body(preferencelist=("plain",)) is not None
            ):
                time.sleep(0.2)  # polling the SMTP sink (a real server in this process)
            assert any(m["To"] and "olga@example.com" in m["To"] for m in smtp.mailbox.received)
            back = context.new_page()  # the same browser: the widget remembers the visitor
            back.goto(server.demo)
            back.get_by_role("button", name=re.compile("^Chat öffnen")).click()
            log = back.get_by_role("log", name="Gespräch")
            expect(log.locator(".msg.them .bubble", has_text="Ja, es kommt morgen.")).to_have_count(1)
            expect(log.locator(".msg.me .bubble", has_text="Ist mein Paket schon unterwegs?")).to_have_count(
                1
            )
        finally:
            server.stop()


def test_closed_inbox_says_so_after_the_first_message(server: Server, new_page: Callable[..., Page]) -> None:
    set_widget(server, {"timezone": "Europe/Berlin", "hours": {}})  # no opening hours at all: closed
    try:
        visitor = demo(new_page(), server)
        open_widget(visitor)
        log = widget_log(visitor)
        expect(log.locator(".msg.them.greet")).to_be_visible()
        expect(log.locator(".notice")).to_have_count(0)  # nothing before the visitor wrote
        visitor_send(visitor, "Are you there?")
        notice = log.locator(".notice")
        expect(notice).to_contain_text("We are closed right now.")
        expect(notice.get_by_label(re.compile("Leave your email address"))).to_be_visible()
        order = log.evaluate("l => [...l.children].map(c => c.className)")
        assert "notice" in order[-1] and any("msg me" in c for c in order[:-1]), order
    finally:
        set_widget(server, {"timezone": None, "hours": None})
