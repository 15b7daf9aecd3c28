"""``chatserver.client``: an async client of the adapter API for bots and custom channels.

::

    async with AdapterClient("http://localhost:8000", token) as client:
        async for event in client.events():
            if isinstance(event, MessageEvent) and event.author_kind == "contact":
                await client.send(event.conversation_id, "Hello!")

It reconnects by itself (with backoff) and resumes: what was missed while away arrives once, in
order; each ``send`` carries a ``client_id`` so a message re-sent after a reconnect is stored once.
Depends only on websockets and httpx.
"""

from chatserver.client.client import (
    AdapterClient,
    ClientError,
    ConnectionLost,
    ConversationEvent,
    DeliveryEvent,
    Event,
    File,
    MessageEvent,
    OtherEvent,
)

__all__ = [
    "AdapterClient",
    "ClientError",
    "ConnectionLost",
    "ConversationEvent",
    "DeliveryEvent",
    "Event",
    "File",
    "MessageEvent",
    "OtherEvent",
]
