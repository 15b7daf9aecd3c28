"""The example bot as docs/adapters.md runs it (``python examples/faq_bot.py`` with the token in the
environment), killed with SIGKILL mid-conversation: no close frame, only a dropped connection. After
``CHATSERVER_BOT_GRACE_S`` its conversation is handed off to people, and the agent sees why."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.adapterapi.helpers import make_bot
from tests.adapterapi.test_example_bot import EXAMPLES
from tests.e2e.harness import Client, Seed, Server, visitor_token

pytestmark = pytest.mark.slow


@pytest.fixture
def server_overrides() -> dict[str, Any]:
    # long enough for the bot's interpreter to start and connect on a loaded machine (a bot that has not
    # connected within the grace period is handed off too), short enough for the test
    return {"bot_grace_s": 3.0}


async def test_the_example_bot_killed_mid_conversation_hands_off_after_the_grace_period(
    http: httpx.AsyncClient, server: Server, seeded: Seed, tmp_path: Path
) -> None:
    bot = await make_bot(http, server, seeded, name="FAQ Bot")
    log = (tmp_path / "bot.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / "faq_bot.py"),
        env={**os.environ, "CHATSERVER_URL": server.url, "CHATSERVER_ADAPTER_TOKEN": bot["token"]},
        stdout=log,
        stderr=log,
    )
    try:
        tok = (await visitor_token(http, server.url, seeded.inbox_key))["token"]
        async with Client.connect(f"{server.ws}/ws/visitor?token={tok}") as v:
            await v.expect("hello")
            cid = (await v.request({"type": "conversation.start"}))["conversation_id"]
            greeting = await v.expect("message", conversation_id=cid, message__author__kind="bot", timeout=30)
            assert greeting["message"]["author"]["name"] == "FAQ Bot"
            sent = await v.request(
                {
                    "type": "message.send",
                    "conversation_id": cid,
                    "client_id": "q1",
                    "text": "When are you open?",
                }
            )
            answer = await v.expect("message", conversation_id=cid, message__author__kind="bot", timeout=10)
            assert answer["seq"] > sent["seq"] and "Monday to Friday" in answer["message"]["text"]

            proc.send_signal(signal.SIGKILL)  # no goodbye: the socket just drops
            await proc.wait()
            queued = await v.expect(
                "conversation", conversation__id=cid, conversation__status="queued", timeout=20
            )
            assert queued["conversation"]["status"] == "queued"
        r = await http.get(
            f"{server.url}/api/v1/conversations/{cid}",
            headers={"Authorization": f"Bearer {seeded.agent_token}"},
        )
        handoff = r.json()["handoff"]
        assert r.json()["status"] == "queued" and handoff["reason"] == "grace" and handoff["by"] == "FAQ Bot"
        messages = await http.get(
            f"{server.url}/api/v1/conversations/{cid}/messages",
            headers={"Authorization": f"Bearer {seeded.agent_token}"},
        )
        notes = [m["text"] for m in messages.json()["items"] if m["kind"] == "note"]
        assert notes == [f"Handoff from FAQ Bot: {handoff['summary']}"], messages.json()["items"]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()
