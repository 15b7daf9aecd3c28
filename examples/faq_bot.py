"""An FAQ bot for the adapter API: greets each new conversation with buttons, answers two questions,
and hands off to a person (with a summary of the chat) when asked.

    chatserver create-adapter --name "FAQ Bot" --kind bot --inbox INBOX_ID --bot-for   # prints TOKEN
    CHATSERVER_URL=http://127.0.0.1:8000 CHATSERVER_ADAPTER_TOKEN=TOKEN python examples/faq_bot.py

(a visitor typing "agent" is handed off by the server itself; the bot's own button does it here).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import defaultdict

from chatserver.client import AdapterClient, ClientError, ConversationEvent, MessageEvent

GREETING = "Hi! I'm the FAQ bot. What can I help you with?"
BUTTONS = [
    {"id": "hours", "label": "Opening hours"},
    {"id": "shipping", "label": "Shipping costs"},
    {"id": "agent", "label": "Talk to a person"},
]
ANSWERS = {
    "hours": "We are open Monday to Friday, 9:00 to 17:00.",
    "shipping": "Shipping is free from 50 EUR; below that it costs 4.90 EUR.",
}
KEYWORDS = {"open": "hours", "hours": "hours", "shipping": "shipping", "delivery": "shipping"}


def intent(event: MessageEvent) -> str | None:
    """The button clicked, or a keyword in what the visitor typed."""
    if event.actions:
        return event.actions[0]["id"]
    words = event.text.lower().replace("?", " ").split()
    if "agent" in words or "person" in words:
        return "agent"
    return next((KEYWORDS[w] for w in words if w in KEYWORDS), None)


async def run_bot(client: AdapterClient, stop: asyncio.Event | None = None) -> None:
    greeted: set[str] = set()
    said: defaultdict[str, list[str]] = defaultdict(list)
    async for event in client.events():
        if stop is not None and stop.is_set():
            return
        if isinstance(event, ConversationEvent):
            if event.status == "bot" and event.id not in greeted:
                greeted.add(event.id)
                await client.send(event.id, GREETING, actions=BUTTONS, client_id=f"greet-{event.id}")
            continue
        if not isinstance(event, MessageEvent) or event.author_kind != "contact" or event.kind != "text":
            continue
        cid = event.conversation_id
        said[cid].append(event.text)
        wanted = intent(event)
        try:
            if wanted == "agent":
                summary = "Visitor asked: " + " / ".join(said[cid][-5:])
                await client.handoff(cid, summary)
            elif wanted in ANSWERS:
                await client.send(cid, ANSWERS[wanted], actions=BUTTONS, client_id=f"{event.id}-answer")
            else:
                await client.send(
                    cid,
                    "Sorry, I did not get that. Pick one:",
                    actions=BUTTONS,
                    client_id=f"{event.id}-retry",
                )
        except ClientError as exc:
            if exc.code != "conflict":  # conflict: already handed off (e.g. the visitor typed "agent")
                raise


async def main() -> None:
    logging.basicConfig(level=logging.INFO)
    url = os.environ.get("CHATSERVER_URL", "http://127.0.0.1:8000")
    async with AdapterClient(url, os.environ["CHATSERVER_ADAPTER_TOKEN"]) as client:
        await run_bot(client)


if __name__ == "__main__":
    asyncio.run(main())
