"""Telegram long polling against the fake Bot API (cursor persistence across restarts), embedded
``serve`` polling by itself, and the CLI: create-inbox for channels, telegram-set-webhook."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatserver.app import build_context, close_context
from chatserver.channels.inbound import Inbound
from chatserver.channels.polling import TelegramPollers
from chatserver.context import Context
from chatserver.errors import PermanentDeliveryError
from tests.adapters import fakes
from tests.adapters.fakes import FakePlatforms
from tests.adapters.test_pure import TELEGRAM_UPDATE
from tests.e2e.harness import SECRET, run_server, seed, settings_for


@pytest.fixture
async def fake() -> AsyncIterator[FakePlatforms]:
    async with fakes.running() as f:
        yield f


def update(update_id: int, message_id: int, text: str) -> dict[str, Any]:
    u: dict[str, Any] = json.loads(json.dumps(TELEGRAM_UPDATE))
    u["update_id"] = update_id
    u["message"]["message_id"] = message_id
    u["message"]["text"] = text
    return u


@pytest.fixture
async def context(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Context]:
    await seed(sqlite_url)
    c = await build_context(settings_for(sqlite_url, tmp_path))
    try:
        yield c
    finally:
        await close_context(c)


async def texts(c: Context, inbox_id: str) -> list[str]:
    out = []
    for conv in await c.store.list_conversations(newest_first=False):
        if conv.inbox_id == inbox_id:
            out += [m.text for m in await c.store.messages_after(conv.id, 0)]
    return out


async def test_polling_persists_its_cursor_across_restarts(context: Context, fake: FakePlatforms) -> None:
    c = context
    config = {"bot_token": fakes.BOT_TOKEN, "mode": "polling", "api_base": fake.url}
    inbox = await c.store.create_inbox("Bot", "telegram", (), config)
    fake.push_update(update(500, 1, "eins"))
    fake.push_update(update(501, 2, "zwei"))
    async with httpx.AsyncClient(timeout=10) as client:
        first = TelegramPollers(c.store, Inbound(c.service), client, timeout_s=0)
        assert await first.poll_once(inbox) == 2
        assert await c.store.channel_cursor(inbox.id) == 502
        assert "offset" not in fake.sent("telegram")[-1].body

        # a restart: a new poller starts from the stored cursor, which confirms 500 and 501 to Telegram
        fake.push_update(update(502, 3, "drei"))
        second = TelegramPollers(c.store, Inbound(c.service), client, timeout_s=0)
        assert await second.poll_once(inbox) == 1
        assert fake.sent("telegram")[-1].body["offset"] == 502
        assert await c.store.channel_cursor(inbox.id) == 503

        # an update delivered again (the cursor was not stored before a crash) is not imported twice
        fake.push_update(update(503, 3, "drei"))
        assert await second.poll_once(inbox) == 1
        assert await texts(c, inbox.id) == ["eins", "zwei", "drei"]

        # a webhook set on the bot makes getUpdates fail: nothing changes
        fake.webhook = {"url": "https://x", "secret_token": None}
        with pytest.raises(PermanentDeliveryError, match="webhook is active"):
            await second.poll_once(inbox)
        assert await c.store.channel_cursor(inbox.id) == 504


async def test_embedded_serve_polls_by_itself(sqlite_url: str, tmp_path: Path, fake: FakePlatforms) -> None:
    s = await seed(sqlite_url)
    from chatserver.store.db import Database, make_engine
    from chatserver.store.store import Store

    engine = make_engine(sqlite_url, pool_size=1)
    store = Store(Database(engine))
    config = {"bot_token": fakes.BOT_TOKEN, "mode": "polling", "api_base": fake.url}
    inbox = await store.create_inbox("Bot", "telegram", (), config)
    await engine.dispose()
    fake.push_update(update(900, 1, "Hallo aus dem Polling"))
    async with (
        run_server(settings_for(sqlite_url, tmp_path, embedded=True)) as server,
        httpx.AsyncClient(timeout=10) as http,
    ):
        headers = {"Authorization": f"Bearer {s.admin_token}"}
        found: list[dict[str, Any]] = []
        async with asyncio.timeout(15):
            while not found:
                r = await http.get(f"{server.url}/api/v1/conversations", headers=headers)
                found = [c for c in r.json()["items"] if c["channel"] == "telegram"]
                await asyncio.sleep(0.1)
        r = await http.get(
            f"{server.url}/api/v1/conversations/{found[0]['id']}/messages?after=0", headers=headers
        )
        assert [m["text"] for m in r.json()["items"]] == ["Hallo aus dem Polling"]
        assert found[0]["inbox_id"] == inbox.id


async def cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chatserver.cli",
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


@pytest.mark.slow
async def test_cli_channel_inbox_and_set_webhook(sqlite_url: str, fake: FakePlatforms) -> None:
    await seed(sqlite_url)
    env = {
        "DATABASE_URL": sqlite_url,
        "CHATSERVER_SECRET_KEY": SECRET,
        "CHATSERVER_PUBLIC_URL": "https://chat.example",
    }
    config = json.dumps({"bot_token": fakes.BOT_TOKEN, "secret_token": "cli-secret", "api_base": fake.url})
    code, out, err = await cli(
        env, "create-inbox", "--channel", "telegram", "--name", "Bot", "--config", config, "--json"
    )
    assert code == 0, err
    inbox = json.loads(out)
    assert inbox["webhook_url"] == f"https://chat.example/webhooks/telegram/{inbox['id']}"
    assert "cli-secret" not in out and fakes.BOT_TOKEN not in out

    code, out, err = await cli(env, "telegram-set-webhook", "--inbox", inbox["id"])
    assert code == 0, err
    assert inbox["webhook_url"] in out
    assert fake.webhook == {"url": inbox["webhook_url"], "secret_token": "cli-secret"}

    code, out, err = await cli(
        env, "create-inbox", "--channel", "sms", "--name", "S", "--config", '{"account_sid": "AC1"}'
    )
    assert code == 2 and "auth_token" in err
    code, out, err = await cli(env, "create-inbox", "--channel", "sms", "--name", "S", "--config", "{nope")
    assert code == 2 and "not JSON" in err
    code, out, err = await cli(env, "telegram-set-webhook", "--inbox", "ib_missing")
    assert code == 2 and "no inbox" in err

    bad = json.dumps({"bot_token": "999:wrong", "secret_token": "x", "api_base": fake.url})
    code, out, err = await cli(env, "create-inbox", "--channel", "telegram", "--name", "B", "--config", bad)
    assert code == 0 and "webhook URL" in out
    bad_id = out.split("inbox ", 1)[1].split()[0]
    code, out, err = await cli(env, "telegram-set-webhook", "--inbox", bad_id)
    assert code == 2 and "Unauthorized" in err


@pytest.mark.slow
async def test_worker_polls_telegram_inboxes(sqlite_url: str, fake: FakePlatforms) -> None:
    from chatserver.store.db import Database, make_engine
    from chatserver.store.store import Store

    await seed(sqlite_url)
    engine = make_engine(sqlite_url, pool_size=1)
    store = Store(Database(engine))
    config = {"bot_token": fakes.BOT_TOKEN, "mode": "polling", "api_base": fake.url}
    inbox = await store.create_inbox("Bot", "telegram", (), config)
    fake.push_update(update(700, 1, "vom Worker"))
    env = {"DATABASE_URL": sqlite_url, "CHATSERVER_SECRET_KEY": SECRET, "CHATSERVER_ROUTING": "manual"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chatserver.cli",
        "worker",
        env={**os.environ, **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(60):
            while await store.channel_cursor(inbox.id) != 701:
                assert proc.returncode is None, "the worker exited"
                await asyncio.sleep(0.2)
        [conv] = [c for c in await store.list_conversations() if c.inbox_id == inbox.id]
        assert [m.text for m in await store.messages_after(conv.id, 0)] == ["vom Worker"]
    finally:
        proc.terminate()
        await proc.wait()
        await engine.dispose()
