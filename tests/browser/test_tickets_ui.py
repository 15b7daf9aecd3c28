"""Tickets in the agent console, in Chromium against a real server: escalating a live conversation,
the list (live from `ticket` frames), the detail (reply, internal note, status), a stale change's
conflict, and no CSP violation on the way."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import Server
from tests.browser.test_console_csp import watched
from tests.browser.test_routing_ui import admin_client, create_agent, login_as
from tests.browser.test_widget_console import (
    agent_log,
    console_login,
    open_demo,
    open_widget,
    unique_name,
    visitor_send,
    waiting_item,
)

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips (or fails under CI) with the reason
    expect = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = pytest.mark.browser

WIDE = {"viewport": {"width": 1500, "height": 900}}


def escalate_live_chat(
    agent: Page, new_page: Callable[..., Page], server: Server, subject: str, priority: str | None = None
) -> int:
    """A visitor writes; ``agent`` takes the chat and escalates it with ``subject`` (and ``priority``);
    the new ticket opens. Returns its number."""
    name = unique_name("Tess")
    visitor = open_demo(new_page(), server, name)
    open_widget(visitor)
    visitor_send(visitor, "My order never arrived")
    waiting_item(agent, name).click()
    expect(agent_log(agent)).to_contain_text("My order never arrived")
    agent.get_by_role("button", name="Take").click()
    expect(agent.locator("#mine")).to_contain_text(name)
    agent.get_by_role("button", name="Escalate to ticket").click()
    agent.get_by_label("Ticket subject").fill(subject)
    if priority is not None:
        agent.get_by_label("Escalate as").select_option(priority)
    agent.get_by_role("button", name="Create ticket").click()
    title = agent.locator("#td-title")
    expect(title).to_contain_text(subject)
    found = re.match(r"#(\d+) ", title.inner_text())
    assert found, title.inner_text()
    return int(found.group(1))


def row(page: Page, number: int) -> Locator:
    return page.locator(f'#tl-rows tr[data-number="{number}"]')


def open_from_list(page: Page, number: int) -> None:
    page.get_by_role("button", name=re.compile(r"^Tickets")).click()
    row(page, number).get_by_role("button", name=f"#{number}").click()
    expect(page.locator("#td-title")).to_contain_text(f"#{number} ")


def test_escalate_reply_note_and_solve_with_no_csp_violation(
    server: Server, new_page: Callable[..., Page]
) -> None:
    messages: list[str] = []
    agent = watched(new_page(**WIDE), messages)
    console_login(agent, server)
    subject = unique_name("Lost parcel <b>")
    number = escalate_live_chat(agent, new_page, server, subject)

    # the list shows it, sorted by due time, with its requester, status and assignee
    listed = row(agent, number)
    expect(listed).to_contain_text(subject)  # as text, not markup
    expect(listed).to_contain_text("Tess")
    expect(listed.locator(".pill")).to_have_text("open")
    expect(listed.locator(".tl-assignee")).to_have_text("Me")
    thread = agent.get_by_role("list", name="Ticket thread")
    expect(thread).to_contain_text("My order never arrived")

    # a reply the server refuses (too long) says why, keeps the draft and adds nothing
    before = thread.locator(".tm").count()
    agent.get_by_label("Ticket reply").fill("x" * 20_001)
    agent.get_by_role("button", name="Send reply").click()
    expect(agent.locator("#td-error")).to_contain_text("Could not send: text must be")
    expect(agent.get_by_label("Ticket reply")).to_have_value("x" * 20_001)
    expect(thread.locator(".tm")).to_have_count(before)

    # a public reply, then an internal note: shown apart
    agent.get_by_label("Ticket reply").fill("We are sending a new one today.")
    agent.get_by_role("button", name="Send reply").click()
    public = thread.locator(".tm.text", has_text="We are sending a new one today.")
    expect(public).to_be_visible()
    expect(public.locator(".tm-tag")).to_have_count(0)
    agent.get_by_label("Internal note").check()
    agent.get_by_label("Ticket reply").fill("Courier lost it twice; escalate if again.")
    agent.get_by_role("button", name="Add note").click()
    note = thread.locator(".tm.note", has_text="Courier lost it twice")
    expect(note.locator(".tm-tag")).to_have_text("Internal note")

    # only the legal moves are offered; solving it shows in the detail, the audit and the list
    status = agent.get_by_label("Status", exact=True)
    expect(status.locator("option")).to_have_text(["open", "pending", "on hold", "solved"])
    status.select_option("solved")
    agent.get_by_role("button", name="Save changes").click()
    expect(status.locator("option")).to_have_text(["solved", "open", "closed"])
    expect(agent.get_by_role("list", name="Ticket history")).to_contain_text(
        "changed status from open to solved"
    )
    expect(row(agent, number)).to_have_count(0)  # the default filter lists open-ish tickets only
    agent.get_by_label("Show").select_option("solved")
    expect(row(agent, number).locator(".pill")).to_have_text("solved")

    assert agent.evaluate("window.__csp") == []
    assert not [m for m in messages if "Content Security Policy" in m or "Refused to" in m], messages


def test_live_list_and_a_stale_change_gets_the_conflict_message(
    server: Server, new_page: Callable[..., Page]
) -> None:
    admin = console_login(new_page(**WIDE), server)
    number = escalate_live_chat(admin, new_page, server, unique_name("Broken hinge"))

    # a supervisor watches the list (every ticket frame reaches supervisors); a plain agent opens the ticket
    supervisor = login_as(new_page(**WIDE), server, create_agent(server, "Sue Pervisor", role="supervisor"))
    open_from_list(supervisor, number)
    plain = login_as(new_page(**WIDE), server, create_agent(server, "Pat Plain"))
    open_from_list(plain, number)
    expect(plain.get_by_label("Priority")).to_have_value("normal")

    # the admin changes the priority: the supervisor's list follows at once
    admin.get_by_label("Priority").select_option("urgent")
    admin.get_by_role("button", name="Save changes").click()
    expect(admin.get_by_role("list", name="Ticket history")).to_contain_text(
        "changed priority from normal to urgent"
    )
    expect(row(supervisor, number).locator(".tl-priority")).to_have_text("urgent")
    expect(supervisor.get_by_label("Priority")).to_have_value("urgent")

    # the plain agent still shows version it read: its change is refused, it says so and reloads
    plain.get_by_label("Status", exact=True).select_option("on_hold")
    plain.get_by_role("button", name="Save changes").click()
    expect(plain.get_by_role("alert").filter(has_text="changed by someone else")).to_be_visible()
    expect(plain.get_by_label("Priority")).to_have_value("urgent")
    expect(plain.get_by_label("Status", exact=True)).to_have_value("open")
    with admin_client(server) as http:
        current = http.get(f"/api/v1/tickets/{number}").json()
    assert current["status"] == "open" and current["priority"] == "urgent"  # the stale change changed nothing

    # saving again from the current version goes through
    plain.get_by_label("Status", exact=True).select_option("on_hold")
    plain.get_by_role("button", name="Save changes").click()
    expect(plain.locator("#td-conflict")).to_be_hidden()
    expect(row(supervisor, number).locator(".pill")).to_have_text("on hold")

    # a live change never overwrites an edit in progress: the list follows, the form stays, saving conflicts
    expect(admin.get_by_label("Status", exact=True)).to_have_value("on_hold")
    expect(supervisor.get_by_label("Status", exact=True)).to_have_value("on_hold")
    expect(supervisor.get_by_role("list", name="Ticket history")).to_contain_text("to on hold")
    supervisor.get_by_label("Tags").fill("later")
    admin.get_by_label("Priority").select_option("high")
    admin.get_by_role("button", name="Save changes").click()
    expect(row(supervisor, number).locator(".tl-priority")).to_have_text("high")
    expect(supervisor.get_by_label("Tags")).to_have_value("later")
    expect(supervisor.get_by_label("Priority")).to_have_value("urgent")
    supervisor.get_by_role("button", name="Save changes").click()
    expect(supervisor.locator("#td-conflict")).to_be_visible()
    expect(supervisor.get_by_label("Priority")).to_have_value("high")
    expect(supervisor.get_by_label("Tags")).to_have_value("")


def test_sla_warning_and_breach_raise_a_toast_and_a_badge(
    server: Server, new_page: Callable[..., Page]
) -> None:
    with admin_client(server) as http:
        policy = {
            "name": "VIP",
            "position": 1,
            "match": {"tag": "vip"},  # only this test's ticket: the others carry no tag
            "targets": {"first_response_s": 8},
            "warn_before_s": 4,
            "calendar": {"timezone": "UTC"},
        }
        r = http.post("/api/v1/sla-policies", json=policy)
        assert r.status_code == 201, r.text
    agent = console_login(new_page(**WIDE), server)
    number = escalate_live_chat(agent, new_page, server, unique_name("Urgent VIP"))
    agent.get_by_label("Tags").fill("vip")
    agent.get_by_role("button", name="Save changes").click()
    expect(agent.locator("#td-sla")).to_contain_text("VIP")
    # back in the conversation, away from the Tickets view: the alarms show as toasts and count on the badge
    agent.locator("#mine").get_by_role("button").first.click()
    expect(agent.locator("#tickets-view")).to_be_hidden()
    toast = agent.locator("#toast")
    badge = agent.locator("#tickets-badge")
    expect(toast).to_contain_text(f"SLA warning: #{number} first response due in", timeout=15_000)
    expect(badge).to_have_text("1")
    expect(toast).to_contain_text(f"SLA breached: #{number} first response was due", timeout=15_000)
    expect(badge).to_have_text("2")
    # the list marks it breached (in red); the Breached filter keeps it; opening the view clears the badge
    agent.get_by_role("button", name=re.compile(r"^Tickets")).click()
    expect(badge).to_be_hidden()
    due = row(agent, number).locator(".tl-due")
    expect(due).to_have_class(re.compile(r"\bbreached\b"))
    expect(due).to_contain_text("Breached")
    agent.get_by_label("Breached").check()
    expect(row(agent, number)).to_be_visible()
    expect(agent.locator("#tl-rows tr")).to_have_count(1)


def test_email_delivery_state_of_a_public_reply_shows_live(
    tmp_path_factory: pytest.TempPathFactory, new_page: Callable[..., Page]
) -> None:
    from tests.outbox.smtp_server import smtp_server

    with smtp_server("451 4.3.0 try again later") as smtp:
        mail = Server(
            tmp_path_factory.mktemp("chatserver-mail"),
            env={"CHATSERVER_SMTP_URL": smtp.url, "CHATSERVER_OUTBOX_RETRY_S": "1"},
        )
        mail.start()
        try:
            agent = console_login(new_page(**WIDE), mail)
            number = escalate_live_chat(agent, new_page, mail, unique_name("Refund"))
            with admin_client(mail) as http:
                ticket = http.get(f"/api/v1/tickets/{number}").json()
                r = http.patch(
                    f"/api/v1/contacts/{ticket['requester_id']}", json={"email": "tess@example.com"}
                )
                assert r.status_code == 200, r.text
            agent.get_by_label("Ticket reply").fill("Your refund is on its way.")
            agent.get_by_role("button", name="Send reply").click()
            reply = agent.get_by_role("list", name="Ticket thread").locator(
                ".tm", has_text="Your refund is on its way."
            )
            # the first attempt is refused for now (queued, with the reason), the retry goes out
            expect(reply.locator(".tm-delivery")).to_contain_text("email: queued", timeout=15_000)
            expect(reply.locator(".tm-delivery")).to_have_text("email: sent", timeout=15_000)
            assert smtp.mailbox.received, "the reply was not emailed"
        finally:
            mail.stop()


def test_assigned_to_me_and_load_more(server: Server, new_page: Callable[..., Page]) -> None:
    admin = console_login(new_page(**WIDE), server)
    number = escalate_live_chat(admin, new_page, server, unique_name("Requester"))
    pat = create_agent(server, "Pat Pages")
    with admin_client(server) as http:
        requester = http.get(f"/api/v1/tickets/{number}").json()["requester_id"]
        field = {"key": "order_no", "label": "Order number", "type": "text"}
        assert http.post("/api/v1/ticket-fields", json=field).status_code in (201, 409)
        body = {
            "requester_id": requester,
            "subject": "With fields",
            "tags": ["vat"],
            "fields": {"order_no": "A-17"},
        }
        r = http.post("/api/v1/tickets", json=body)
        assert r.status_code == 201, r.text
        with_fields = r.json()["number"]
        for i in range(51):  # one more than a page
            body = {"requester_id": requester, "subject": f"Page ticket {i}", "assignee_id": pat.id}
            r = http.post("/api/v1/tickets", json=body)
            assert r.status_code == 201, r.text
    page = login_as(new_page(**WIDE), server, pat)
    page.get_by_role("button", name=re.compile(r"^Tickets")).click()
    expect(row(page, number)).to_be_visible()  # everyone's, by default
    page.get_by_label("Assigned to me").check()
    expect(row(page, number)).to_have_count(0)
    rows = page.locator("#tl-rows tr")
    expect(rows).to_have_count(50)
    expect(rows.locator(".tl-assignee")).to_have_text(["Me"] * 50)
    page.get_by_role("button", name="Load more").click()
    expect(rows).to_have_count(51)
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    # its custom fields show under their labels, its tags in the form
    page.get_by_label("Assigned to me").uncheck()
    row(page, with_fields).get_by_role("button", name=f"#{with_fields}").click()
    expect(page.get_by_label("Order number")).to_have_value("A-17")
    expect(page.get_by_label("Tags")).to_have_value("vat")


def test_escalate_with_a_priority_edit_custom_fields_and_merge(
    server: Server, new_page: Callable[..., Page]
) -> None:
    with admin_client(server) as http:
        for field in (
            {"key": "order_no", "label": "Order number", "type": "text"},
            {"key": "vip", "label": "VIP customer", "type": "checkbox"},
            {"key": "units", "label": "Units", "type": "number"},
        ):
            r = http.post("/api/v1/ticket-fields", json=field)
            assert r.status_code in (201, 409), r.text
    agent = console_login(new_page(**WIDE), server)
    number = escalate_live_chat(agent, new_page, server, unique_name("Dented box"), priority="high")
    expect(agent.get_by_label("Priority")).to_have_value("high")

    # custom fields are edited in the form and land in the audit
    agent.get_by_label("Order number").fill("B-42")
    agent.get_by_label("VIP customer").check()
    agent.get_by_label("Units").fill("3")
    agent.get_by_role("button", name="Save changes").click()
    history = agent.get_by_role("list", name="Ticket history")
    expect(history).to_contain_text("changed fields.order no from — to B-42")
    expect(history).to_contain_text("changed fields.vip from — to true")
    expect(history).to_contain_text("changed fields.units from — to 3")
    with admin_client(server) as http:
        ticket = http.get(f"/api/v1/tickets/{number}").json()
        assert ticket["fields"]["order_no"] == "B-42" and ticket["fields"]["vip"] is True
        assert ticket["fields"]["units"] == 3
        other = http.post(
            "/api/v1/tickets", json={"requester_id": ticket["requester_id"], "subject": "Same parcel"}
        ).json()["number"]

    # a merge into itself is refused with the server's reason; into the other ticket, it opens the survivor
    agent.get_by_label("Merge into #").fill(str(number))
    agent.get_by_role("button", name="Merge").click()
    expect(agent.locator("#td-error")).to_contain_text(
        "Could not merge: a ticket cannot be merged into itself"
    )
    agent.get_by_label("Merge into #").fill(str(other))
    agent.get_by_role("button", name="Merge").click()
    expect(agent.locator("#td-title")).to_contain_text(f"#{other} Same parcel")
    expect(agent.locator("#toast")).to_contain_text(f"#{number} merged into #{other}")
    expect(agent.get_by_role("list", name="Ticket thread")).to_contain_text("My order never arrived")
    with admin_client(server) as http:
        merged = http.get(f"/api/v1/tickets/{number}").json()
    assert merged["merged_into"] == other and merged["status"] == "closed"
