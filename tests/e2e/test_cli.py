"""The command-line contracts and the first start on embedded defaults."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import Client, ServerProcess, run_cli

pytestmark = pytest.mark.slow


def test_first_start_prints_console_demo_inbox_key_and_a_working_login(tmp_path: Path) -> None:
    server = ServerProcess(env={"CHATSERVER_DATA_DIR": str(tmp_path / "data")}, log=tmp_path / "out.log")
    server.start()
    try:
        out = (tmp_path / "out.log").read_text()
        assert f"{server.url}/console/" in out and f"{server.url}/demo" in out
        key = re.search(r"Inbox key\s*:\s*(\S+)", out)
        login = re.search(r"Log in as\s*:\s*(\S+) / (\S+)", out)
        assert key and login
        r = httpx.post(f"{server.url}/api/v1/auth/login", json={"email": login[1], "password": login[2]})
        assert r.status_code == 200 and r.json()["agent"]["role"] == "admin"
        demo = httpx.get(f"{server.url}/demo")
        assert demo.status_code == 200 and f'data-inbox-key="{key[1]}"' in demo.text
        session = httpx.post(
            f"{server.url}/api/v1/widget/sessions", json={"inbox_key": key[1]}, headers={"Origin": server.url}
        )
        assert session.status_code == 201
        assert (tmp_path / "data" / "chatserver.db").exists() and (tmp_path / "data" / "secret_key").exists()
    finally:
        server.stop()
    # a second start keeps everything and does not print a password again
    server.start()
    try:
        second = (tmp_path / "out.log").read_text().split("chatserver 0.1.0")[-1]
        assert "Log in as" not in second and key[1] in second
    finally:
        server.stop()


async def test_cli_creates_agents_inboxes_and_tokens(tmp_path: Path) -> None:
    env = {"CHATSERVER_DATA_DIR": str(tmp_path / "data")}
    assert run_cli(env, "migrate") == "database schema is current"
    agent = json.loads(
        run_cli(
            env,
            "create-agent",
            "--email",
            "sup@x.test",
            "--password",
            "pw-long-one",
            "--name",
            "Sue",
            "--role",
            "supervisor",
            "--json",
        )
    )
    assert agent["role"] == "supervisor"
    inbox = json.loads(
        run_cli(env, "create-inbox", "--name", "Shop", "--allowed-origin", "https://a.example", "--json")
    )
    assert inbox["allowed_origins"] == ["https://a.example"] and len(inbox["key"]) >= 20
    assert len(run_cli(env, "create-inbox", "--name", "Plain")) >= 20  # plain output: just the key
    token = run_cli(env, "create-token", "--agent", "sup@x.test")
    assert token.startswith("cst_")
    server = ServerProcess(env=env, log=tmp_path / "s.log")
    server.start()
    try:
        async with Client.connect(f"{server.ws}/ws/agent", token=token, origin=None) as c:
            assert (await c.expect("hello"))["you"]["name"] == "Sue"
    finally:
        server.stop()
    bad = subprocess.run(  # noqa: ASYNC221 - the server is stopped; nothing else runs
        [sys.executable, "-m", "chatserver.cli", "create-token", "--agent", "nobody@x.test"],
        env={**env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "no agent" in bad.stderr
    dup = subprocess.run(  # noqa: ASYNC221
        [
            sys.executable,
            "-m",
            "chatserver.cli",
            "create-agent",
            "--email",
            "sup@x.test",
            "--password",
            "pw-long-one",
            "--name",
            "Again",
        ],
        env={**env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert dup.returncode == 2 and "exists" in dup.stderr


def test_server_refuses_to_start_without_secret_or_schema(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    r = subprocess.run(
        [sys.executable, "-m", "chatserver.cli", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "CHATSERVER_SECRET_KEY" in r.stderr


def test_cli_configures_routing_and_refuses_bad_values(tmp_path: Path) -> None:
    env = {"CHATSERVER_DATA_DIR": str(tmp_path / "data")}
    run_cli(env, "create-agent", "--email", "ro@x.test", "--password", "pw-long-one", "--name", "Ro")
    team = json.loads(
        run_cli(
            env,
            "create-team",
            "--name",
            "Billing",
            "--timezone",
            "Europe/Berlin",
            "--hours",
            '{"mon": [["09:00", "17:00"]]}',
            "--holiday",
            "2026-12-25",
        )
    )
    assert team["timezone"] == "Europe/Berlin" and team["holidays"] == ["2026-12-25"]
    agent = json.loads(
        run_cli(
            env,
            "set-agent",
            "--email",
            "ro@x.test",
            "--skills",
            "billing=4,returns=2",
            "--languages",
            "de=5",
            "--max-concurrent",
            "4",
            "--language",
            "de-AT",
            "--team",
            "Billing",
        )
    )
    assert agent["skills"] == {"billing": 4, "returns": 2} and agent["max_concurrent"] == 4
    assert agent["language"] == "de" and agent["languages"] == {"de": 5}
    rule = json.loads(
        run_cli(
            env,
            "create-rule",
            "--json",
            json.dumps(
                {
                    "name": "billing",
                    "match": {"fields": {"topic": "billing"}},
                    "team_id": team["id"],
                    "skills": {"billing": 3},
                    "steps": [{"requirement": "language:de>=4", "after_s": 30}],
                }
            ),
        )
    )
    assert rule["team_id"] == team["id"] and rule["steps"] == [
        {"requirement": "language:de>=4", "after_s": 30.0}
    ]

    def refused(*args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "chatserver.cli", *args],
            env={**env, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 2, out
        return out.stderr

    assert "level from 1 to 5" in refused("set-agent", "--email", "ro@x.test", "--skills", "billing=9")
    assert "unknown time zone" in refused("create-team", "--name", "X", "--timezone", "Mars/Base")
    assert "steps.0.after_s" in refused(
        "create-rule", "--json", '{"name": "r", "steps": [{"requirement": "a>=2", "after_s": -5}]}'
    )
    assert "exists" in refused("create-team", "--name", "Billing")
    assert "no team" in refused("set-agent", "--email", "ro@x.test", "--team", "Nope")

    url = "https://cdn.example.com/ro.png"
    shown = json.loads(run_cli(env, "set-agent", "--email", "ro@x.test", "--avatar-url", url))
    assert shown["avatar_url"] == url
    assert "must be https://" in refused(
        "set-agent", "--email", "ro@x.test", "--avatar-url", "http://x.test/a"
    )
    assert "must be https://" in refused("set-agent", "--email", "ro@x.test", "--avatar-url", "javascript:x")
    cleared = json.loads(run_cli(env, "set-agent", "--email", "ro@x.test", "--avatar-url", ""))
    assert cleared["avatar_url"] is None and cleared["skills"] == {"billing": 4, "returns": 2}
