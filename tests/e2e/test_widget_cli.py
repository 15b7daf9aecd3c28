"""`chatserver update-inbox` and `chatserver inbox-secret`: widget settings, allowed origins and the identity
secret from the command line; bad values refused with the field and nothing changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.harness import run_cli

pytestmark = pytest.mark.slow


def failing(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "chatserver.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2, out
    return out.stderr


def test_update_inbox_and_inbox_secret(tmp_path: Path) -> None:
    env = {"CHATSERVER_DATA_DIR": str(tmp_path / "data")}
    inbox = json.loads(run_cli(env, "create-inbox", "--name", "Shop", "--json"))
    iid = inbox["id"]
    changed = json.loads(
        run_cli(
            env,
            "update-inbox",
            "--inbox",
            iid,
            "--allowed-origin",
            "https://shop.example",
            "--allowed-origin",
            "https://www.shop.example/",
            "--color",
            "#0a7f5a",
            "--position",
            "left",
            "--title",
            "Ask us",
            "--timezone",
            "Europe/Berlin",
            "--hours",
            '{"mon": [["09:00", "17:00"]]}',
            "--prechat",
            '[{"type": "email", "required": true}]',
        )
    )
    assert changed["allowed_origins"] == ["https://shop.example", "https://www.shop.example"]
    widget = changed["widget"]
    assert (
        widget["color"] == "#0a7f5a"
        and widget["position"] == "left"
        and widget["timezone"] == "Europe/Berlin"
    )
    assert widget["texts"] == {"default": {"title": "Ask us"}} and widget["prechat"][0]["type"] == "email"
    secret = run_cli(env, "inbox-secret", "--inbox", iid)
    assert len(secret) == 64 and run_cli(env, "inbox-secret", "--inbox", iid) == secret  # stable
    rotated = run_cli(env, "inbox-secret", "--inbox", iid, "--rotate")
    assert rotated != secret and run_cli(env, "inbox-secret", "--inbox", iid) == rotated

    full = {**os.environ, **env}
    assert "widget.color" in failing(full, "update-inbox", "--inbox", iid, "--color", "red")
    assert "allowed-origin" in failing(
        full, "update-inbox", "--inbox", iid, "--allowed-origin", "shop.example"
    )
    assert "not JSON" in failing(full, "update-inbox", "--inbox", iid, "--hours", "{mon")
    assert "inbox not found" in failing(full, "inbox-secret", "--inbox", "ib_nope")
    after = json.loads(run_cli(env, "update-inbox", "--inbox", iid))
    assert after["widget"]["color"] == "#0a7f5a" and after["allowed_origins"] == changed["allowed_origins"]
    cleared = json.loads(run_cli(env, "update-inbox", "--inbox", iid, "--allowed-origin", ""))
    assert cleared["allowed_origins"] == []
