"""`chatserver worker` sends channel replies too (the `channel` sender is registered there), records the
platform ids of what it sent, and never sends a delivery twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

from chatserver.channels.receipts import ReceiptQueries
from chatserver.channels.sender import CHANNEL_KIND, reply_payload
from chatserver.outbox import DeliveryState, NewDelivery, OutboxQueries
from chatserver.store.db import Database, make_engine
from chatserver.store.migrate import upgrade
from chatserver.store.store import Store
from tests.adapters import fakes
from tests.e2e.harness import run_cli


async def test_worker_once_sends_a_channel_reply(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'chatserver.db'}"
    engine = make_engine(url)
    await upgrade(engine)
    store = Store(Database(engine))
    try:
        async with fakes.running() as fake:
            config = {"bot_token": fakes.BOT_TOKEN, "secret_token": "s", "api_base": fake.url}
            inbox = await store.create_inbox("Telegram", "telegram", [], config)
            outbox = OutboxQueries(store.db)
            payload = reply_payload(inbox_id=inbox.id, to="4242", text="Hello from the worker")
            (delivery_id,) = await outbox.enqueue([NewDelivery(CHANNEL_KIND, "chr_worker1", payload)])
            env = {"CHATSERVER_DATA_DIR": str(tmp_path)}
            await asyncio.to_thread(run_cli, env, "worker", "--once")
            [call] = fake.sent("telegram")
            assert (call.path, call.body) == (
                "sendMessage",
                {"chat_id": 4242, "text": "Hello from the worker"},
            )
            await asyncio.to_thread(run_cli, env, "worker", "--once")  # nothing twice
            assert len(fake.sent("telegram")) == 1
        assert (await outbox.get(delivery_id)).state is DeliveryState.SENT
        assert await ReceiptQueries(store.db).sent_parts(delivery_id) == ["4242:1"]
    finally:
        await store.close()
