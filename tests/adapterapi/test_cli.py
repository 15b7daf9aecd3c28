"""The adapter API's commands: create-adapter (the token printed once, usable), revoke-adapter,
create-webhook (refused as the REST API refuses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.harness import ISSUED_SECRETS, Client, ServerProcess, run_cli

pytestmark = pytest.mark.slow


def _fails(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "chatserver.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    return out.stderr


async def test_adapter_and_webhook_commands(tmp_path: Path) -> None:
    env = {"CHATSERVER_DATA_DIR": str(tmp_path / "data"), "CHATSERVER_ADMIN_PASSWORD": "admin-pass-1"}
    inbox = json.loads(run_cli(env, "create-inbox", "--name", "Web", "--json"))
    bot = json.loads(
        run_cli(
            env,
            "create-adapter",
            "--name",
            "Bot",
            "--kind",
            "bot",
            "--inbox",
            inbox["id"],
            "--bot-for",
            "--json",
        )
    )
    ISSUED_SECRETS.add(bot["token"])
    assert bot["kind"] == "bot" and bot["inboxes"] == [inbox["id"]] and bot["token"].startswith("cst_")
    plain = run_cli(env, "create-adapter", "--name", "Bridge", "--kind", "channel", "--inbox", inbox["id"])
    assert plain.startswith("cst_") and "\n" not in plain  # the token alone, once
    assert "no such inbox" in _fails(
        env, "create-adapter", "--name", "X", "--kind", "bot", "--inbox", "ib_nope"
    )

    hook = json.loads(
        run_cli(env, "create-webhook", "--url", "https://93.184.216.34/chat", "--events", "message.created")
    )
    assert hook["events"] == ["message.created"] and len(hook["secret"]) >= 32
    assert "metadata" in _fails(
        env, "create-webhook", "--url", "http://169.254.169.254/", "--events", "message.created"
    )
    assert "unknown event" in _fails(
        env, "create-webhook", "--url", "https://93.184.216.34/", "--events", "nope"
    )

    server = ServerProcess(env=env, log=tmp_path / "server.log")
    server.start()
    try:
        async with Client.connect(f"{server.ws}/ws/adapter?token={bot['token']}", origin=None) as ws:
            hello = await ws.expect("hello")
            assert hello["you"] == {"kind": "bot", "id": bot["id"], "name": "Bot"}
            # revoked from the command line while connected (embedded: no bus between the two
            # processes): the server finds it on its next check and closes the open socket with 4401
            assert run_cli(env, "revoke-adapter", "--id", bot["id"]) == f"revoked {bot['id']}"
            assert await ws.closed_with(timeout=30) == 4401
        assert "adapter not found" in _fails(env, "revoke-adapter", "--id", "ad_nope")
        async with Client.connect(f"{server.ws}/ws/adapter?token={bot['token']}", origin=None) as ws:
            assert await ws.closed_with() == 4401
    finally:
        server.stop()
