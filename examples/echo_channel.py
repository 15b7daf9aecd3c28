"""A custom channel for the adapter API, bridging a fake platform: every line typed on stdin is a
platform user's message (injected into the inbox), and every agent's reply is "sent to the platform"
(printed) and reported delivered.

    chatserver create-inbox --name Echo --channel api                                # prints INBOX_ID
    chatserver create-adapter --name Echo --kind channel --inbox INBOX_ID              # prints TOKEN
    CHATSERVER_URL=http://127.0.0.1:8000 CHATSERVER_ADAPTER_TOKEN=TOKEN CHATSERVER_INBOX=INBOX_ID \\
        python examples/echo_channel.py
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from collections.abc import AsyncIterator, Callable

from chatserver.client import AdapterClient, DeliveryEvent

PlatformSend = Callable[[str | None, str], None]


def print_to_platform(user: str | None, text: str) -> None:
    print(f"-> {user}: {text}", flush=True)


async def bridge_replies(client: AdapterClient, platform_send: PlatformSend = print_to_platform) -> None:
    """Agents' replies to the platform, each reported ``delivered`` once handed over."""
    async for event in client.events():
        if isinstance(event, DeliveryEvent):
            platform_send(event.contact_external_id, str(event.message.get("text", "")))
            await client.report_status(str(event.message["id"]), "delivered")


async def bridge_inbound(
    client: AdapterClient, inbox_id: str, lines: AsyncIterator[str], user: str = "platform-user-1"
) -> None:
    """Platform messages into the inbox; the platform's message ids dedupe retries."""
    counter = itertools.count(1)
    async for line in lines:
        if line.strip():
            await client.inject(
                inbox_id,
                {"external_id": user, "name": "Platform user"},
                f"{user}-{next(counter)}",
                line.strip(),
            )


async def stdin_lines() -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        yield line


async def main() -> None:
    url = os.environ.get("CHATSERVER_URL", "http://127.0.0.1:8000")
    async with AdapterClient(url, os.environ["CHATSERVER_ADAPTER_TOKEN"]) as client:
        replies = asyncio.create_task(bridge_replies(client))
        await bridge_inbound(client, os.environ["CHATSERVER_INBOX"], stdin_lines())
        await replies


if __name__ == "__main__":
    asyncio.run(main())
