"""Translation in the widget and the console, in a real browser against a server that translates with a
fake LibreTranslate (tests/translation/fakes.py, served from a thread by the ``libretranslate`` fixture).

The visitor's browser runs in German (context locale de-DE: the widget sends it as its locale), the agent
reads Spanish (set in the console's top bar). Every wait is one of Playwright's auto-waiting ``expect``
assertions; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

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
    widget_text,
)
from tests.translation import fakes

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips (or fails under CI) with the reason
    expect = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

    from tests.translation.fakes import LibreTranslateFake

pytestmark = pytest.mark.browser

# The visitor writes German, the agent Spanish. The first two pairs are in the fake's own phrase table.
SHOW_ORIGINAL = widget_text("showOriginal", "de")
DE_QUESTION = "Guten Morgen, ich habe eine Frage zu meiner Bestellung."
ES_QUESTION = "Buenos días, tengo una pregunta sobre mi pedido."
ES_REPLY = "Claro, ¿cuál es el número de pedido?"
DE_REPLY = "Natürlich, wie lautet die Bestellnummer?"
# ... and these are added to it for this module.
DE_NUMBER = "Die Nummer ist 12345."
ES_NUMBER = "El número es 12345."
ES_CHECKING = "Gracias, lo reviso ahora mismo."
DE_CHECKING = "Danke, ich prüfe das sofort."
ES_CANNED = "¿Me puede dar su número de pedido?"
DE_CANNED = "Können Sie mir Ihre Bestellnummer geben?"
ES_DRAFT = "Un momento, por favor, lo compruebo."
DE_DRAFT = "Einen Moment bitte, ich prüfe das."
EXTRA_PHRASES = {
    (DE_NUMBER, "es"): ES_NUMBER,
    (ES_CHECKING, "de"): DE_CHECKING,
    (ES_CANNED, "de"): DE_CANNED,
    (ES_DRAFT, "de"): DE_DRAFT,
}


# -- fixtures -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def phrases() -> Iterator[None]:
    """Teach the fake provider (same process) this module's phrases; removed afterwards."""
    added = {key: value for key, value in EXTRA_PHRASES.items() if key not in fakes.PHRASES}
    fakes.PHRASES.update(added)
    try:
        yield
    finally:
        for key in added:
            fakes.PHRASES.pop(key, None)


@pytest.fixture(scope="module")
def server(translating_server: Server, phrases: None) -> Server:
    return translating_server


@pytest.fixture
def provider(libretranslate: LibreTranslateFake) -> Iterator[LibreTranslateFake]:
    """The fake provider, answering normally again after the test."""
    libretranslate.mode = "ok"
    try:
        yield libretranslate
    finally:
        libretranslate.mode = "ok"


@pytest.fixture(scope="module")
def canned(server: Server) -> dict[str, str]:
    """Two canned responses in Spanish, created over REST by the admin (cookie session + CSRF header)."""
    with httpx.Client(base_url=server.url, timeout=10.0) as http:
        login = http.post("/api/v1/auth/login", json={"email": server.email, "password": server.password})
        assert login.status_code == 200, login.text
        headers = {"X-CSRF-Token": login.json()["csrf_token"]}
        made: dict[str, str] = {}
        for shortcut, text in (("ordernumber", ES_CANNED), ("thanks", "¡Gracias por su paciencia!")):
            r = http.post(
                "/api/v1/canned-responses",
                json={"shortcut": shortcut, "text": text, "language": "es"},
                headers=headers,
            )
            assert r.status_code == 201, r.text
            made[shortcut] = r.json()["id"]
        return made


# -- helpers ------------------------------------------------------------------------------------------------


def set_my_language(agent: Page, code: str) -> None:
    """Choose the agent's own language in the console's top bar (a PATCH of the agent, with CSRF)."""
    picker = agent.get_by_label("Your language")
    if picker.input_value() == code:
        return  # the module's server remembers it from an earlier test
    with agent.expect_response(
        lambda r: r.request.method == "PATCH" and "/api/v1/agents/" in r.url
    ) as answer:
        picker.select_option(code)
    assert answer.value.ok, answer.value.text()
    expect(picker).to_have_value(code)
    # the console reconnects so that the open connection uses the new language: busy until then
    expect(picker).not_to_have_attribute("aria-busy", "true")


def start_chat(server: Server, new_page: Callable[..., Page], who: str) -> tuple[Page, Page, str]:
    """A Spanish-reading agent takes a German visitor's conversation; both sides see the first message."""
    agent = console_login(new_page(viewport={"width": 1360, "height": 820}), server)
    set_my_language(agent, "es")
    name = unique_name(who)
    visitor = open_demo(new_page(locale="de-DE", viewport={"width": 1100, "height": 760}), server, name)
    open_widget(visitor, "de")  # a German browser: the widget speaks German
    visitor_send(visitor, DE_QUESTION, "de")
    waiting_item(agent, name).click()
    agent.get_by_role("button", name="Take").click()
    expect(agent.locator("#mine")).to_contain_text(name)
    # taking it translates the history into the agent's language
    expect(visitor_message(agent, DE_QUESTION).locator(".main")).to_have_text(ES_QUESTION)
    return agent, visitor, name


def visitor_message(agent: Page, original: str) -> Locator:
    """A visitor's message in the console, found by its original text."""
    return agent_log(agent).locator(".msg.them").filter(has_text=original)


def agent_message(agent: Page, text: str) -> Locator:
    return agent_log(agent).locator(".msg.us").filter(has_text=text)


def widget_reply(visitor: Page, index: int = 0) -> Locator:
    """The agents' messages in the widget (not the local greeting)."""
    return widget_log(visitor, "de").locator(".msg.them:not(.greet)").nth(index)


def probe(node: Locator) -> str:
    """Mark a DOM node, to check later that it was updated in place rather than replaced."""
    node.evaluate("n => { n.dataset.probe = 'kept'; }")
    return "[data-probe=kept]"


# -- the tests ----------------------------------------------------------------------------------------------


def test_german_visitor_and_spanish_agent_read_each_other(
    server: Server, new_page: Callable[..., Page]
) -> None:
    agent, visitor, _ = start_chat(server, new_page, "Hans")

    # the agent reads the translation, with the German original below it
    question = visitor_message(agent, DE_QUESTION)
    expect(question.locator(".main")).to_have_attribute("lang", "es")
    expect(question.locator(".alt")).to_contain_text("Original · DE")
    expect(question.locator(".alt-text")).to_have_text(DE_QUESTION)
    expect(agent.get_by_label("Conversation language")).to_have_value("de")

    # the reply: the agent sees what the visitor reads; the visitor reads German
    agent_send(agent, ES_REPLY)
    expect(agent_message(agent, ES_REPLY).locator(".alt")).to_contain_text("Visitor sees · DE")
    expect(agent_message(agent, ES_REPLY).locator(".alt-text")).to_have_text(DE_REPLY)
    reply = widget_reply(visitor)
    bubble = reply.locator(".bubble")
    expect(bubble).to_have_text(DE_REPLY)
    expect(bubble).to_have_attribute("lang", "de")
    expect(reply).to_contain_text(widget_text("translated", "de"))

    # the original is one toggle away, by mouse or keyboard
    toggle = reply.get_by_role("button", name=SHOW_ORIGINAL)
    expect(toggle).to_have_attribute("aria-pressed", "false")
    toggle.click()
    expect(bubble).to_have_text(ES_REPLY)
    expect(bubble).to_have_attribute("lang", "es")
    expect(toggle).to_have_attribute("aria-pressed", "true")
    toggle.press("Enter")
    expect(bubble).to_have_text(DE_REPLY)
    expect(toggle).to_have_attribute("aria-pressed", "false")
    toggle.press("Space")
    expect(bubble).to_have_text(ES_REPLY)
    expect(toggle).to_be_focused()
    # the visitor's own message is shown as written
    expect(widget_log(visitor, "de").locator(".msg.me .bubble")).to_have_text([DE_QUESTION])

    # the translation is cached with the message: a reload shows it before (and without) any resend
    visitor.reload()
    expect(widget_reply(visitor).locator(".bubble")).to_have_text(DE_REPLY)
    expect(widget_reply(visitor).get_by_role("button", name=SHOW_ORIGINAL)).to_have_attribute(
        "aria-pressed", "false"
    )

    # the agent overrides the conversation's language
    with agent.expect_response(
        lambda r: r.request.method == "PATCH" and "/api/v1/conversations/" in r.url
    ) as answer:
        agent.get_by_label("Conversation language").select_option("en")
    assert answer.value.ok, answer.value.text()
    agent.reload()
    expect(agent.get_by_label("Conversation language")).to_have_value("en")


def test_a_failed_translation_is_filled_in_place(
    server: Server, provider: LibreTranslateFake, new_page: Callable[..., Page]
) -> None:
    agent, visitor, _ = start_chat(server, new_page, "Greta")

    # the provider fails: the visitor's message arrives anyway, marked untranslated
    provider.mode = "server_error"
    visitor_send(visitor, DE_NUMBER, "de")
    number = visitor_message(agent, DE_NUMBER)
    expect(number.locator(".alt")).to_contain_text("Translation unavailable (provider unavailable)")
    expect(number.locator(".main")).to_have_text(DE_NUMBER)
    kept = probe(number)
    # it recovers (before the server's circuit breaker opens): the retry fills the translation in place
    provider.mode = "ok"
    expect(number.locator(".main")).to_have_text(ES_NUMBER)
    expect(number.locator(".alt-text")).to_have_text(DE_NUMBER)
    expect(agent_log(agent).locator(kept).locator(".main")).to_have_text(ES_NUMBER)

    # the same for the agent's reply: the visitor reads the original meanwhile, then the translation
    provider.mode = "server_error"
    agent_send(agent, ES_CHECKING)
    expect(agent_message(agent, ES_CHECKING).locator(".alt")).to_contain_text(
        "Translation unavailable (provider unavailable)"
    )
    reply = widget_reply(visitor)
    expect(reply.locator(".bubble")).to_have_text(ES_CHECKING)
    expect(reply).to_contain_text(widget_text("noTranslation", "de"))
    expect(reply.get_by_role("button", name=SHOW_ORIGINAL)).to_have_count(0)
    kept = probe(reply)
    provider.mode = "ok"
    expect(reply.locator(".bubble")).to_have_text(DE_CHECKING)
    expect(reply.get_by_role("button", name=SHOW_ORIGINAL)).to_have_attribute("aria-pressed", "false")
    expect(reply).not_to_contain_text(widget_text("noTranslation", "de"))
    expect(widget_log(visitor, "de").locator(kept).locator(".bubble")).to_have_text(DE_CHECKING)
    expect(agent_message(agent, ES_CHECKING).locator(".alt-text")).to_have_text(DE_CHECKING)


def test_a_canned_response_is_inserted_in_the_visitors_language(
    server: Server, canned: dict[str, str], new_page: Callable[..., Page]
) -> None:
    agent, _, _ = start_chat(server, new_page, "Klaus")
    reply = agent.get_by_role("textbox", name="Reply")
    listbox = agent.get_by_role("listbox", name="Canned responses")

    reply.press_sequentially("/")
    expect(listbox.get_by_role("option")).to_have_text([re.compile("^/ordernumber"), re.compile("^/thanks")])
    reply.press_sequentially("ord")
    expect(listbox.get_by_role("option")).to_have_text([re.compile("^/ordernumber")])
    expect(listbox.get_by_role("option")).to_have_attribute("aria-selected", "true")
    reply.press("Enter")
    expect(listbox).to_be_hidden()
    expect(reply).to_have_value(DE_CANNED)
    expect(reply).to_be_focused()

    # Escape closes the picker and leaves the text alone; the button opens it too
    reply.fill("")
    agent.get_by_role("button", name="Canned").click()
    expect(listbox.get_by_role("option")).to_have_count(2)
    reply.press("Escape")
    expect(listbox).to_be_hidden()
    expect(reply).to_have_value("/")


def test_translate_draft_previews_the_reply_in_german(server: Server, new_page: Callable[..., Page]) -> None:
    agent, _, _ = start_chat(server, new_page, "Lena")
    reply = agent.get_by_role("textbox", name="Reply")
    reply.fill(ES_DRAFT)
    agent.get_by_role("button", name="Translate draft").click()
    preview = agent.get_by_role("region", name="Translated draft")
    expect(preview).to_contain_text("Visitor sees · German")
    expect(preview.locator("#draft-text")).to_have_text(DE_DRAFT)
    expect(preview.locator("#draft-text")).to_have_attribute("lang", "de")

    # editing the draft makes the preview stale: it goes away
    reply.press("End")
    reply.press_sequentially(" Gracias.")
    expect(preview).to_be_hidden()

    # translate again and send the translation: exactly that text is sent
    reply.fill(ES_DRAFT)
    agent.get_by_role("button", name="Translate draft").click()
    expect(preview.locator("#draft-text")).to_have_text(DE_DRAFT)
    preview.get_by_role("button", name="Send translation").click()
    expect(preview).to_be_hidden()
    expect(reply).to_have_value("")
    expect(agent_log(agent).locator(".msg.us .main")).to_have_text([DE_DRAFT])
    expect(agent_log(agent).locator(".msg.pending")).to_have_count(0)
