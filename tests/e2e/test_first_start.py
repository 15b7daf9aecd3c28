"""First start on PostgreSQL, with real processes: an unmigrated database is one line saying what to run;
processes started together on a fresh database (migrating, creating the admin) all come up, with one
admin; concurrent ``chatserver migrate`` is safe; Alembic's INFO lines only with debug logging."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chatserver.model.types import Role
from chatserver.store.db import Database, make_engine
from chatserver.store.store import Store
from tests.e2e.harness import SECRET, free_port
from tests.services import create_pg_database, drop_pg_database

pytestmark = pytest.mark.slow


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    """A database of its own, with nothing in it."""
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


def _env(url: str, tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHATSERVER_", "REDIS_URL"))}
    return {
        **env,
        "DATABASE_URL": url,
        "CHATSERVER_SECRET_KEY": SECRET,
        "CHATSERVER_DATA_DIR": str(tmp / "data"),
        "CHATSERVER_ADMIN_PASSWORD": "first-start-pass-1",
        **extra,
    }


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatserver.cli", *args], env=env, capture_output=True, text=True, timeout=90
    )


async def _admins(url: str) -> list[str]:
    engine = make_engine(url, pool_size=1)
    try:
        store = Store(Database(engine))
        return [a.email for a in await store.list_agents() if a.role is Role.ADMIN]
    finally:
        await engine.dispose()


def test_serve_on_an_unmigrated_database_says_in_one_line_what_to_run(fresh_pg: str, tmp_path: Path) -> None:
    env = _env(fresh_pg, tmp_path)
    for args in (
        ("serve", "--port", str(free_port())),
        ("worker", "--once"),
        ("create-inbox", "--name", "X"),
    ):
        out = _cli(env, *args)
        lines = (out.stdout + out.stderr).strip().splitlines()
        assert out.returncode != 0, (args, out)
        assert len(lines) == 1, (args, lines)
        assert "chatserver migrate" in lines[0] and "--migrate" in lines[0], lines
        assert "Traceback" not in out.stderr


def test_two_processes_started_together_on_a_fresh_database_both_come_up(
    fresh_pg: str, tmp_path: Path
) -> None:
    ports = [free_port(), free_port()]
    logs = [tmp_path / f"p{i}.log" for i in range(2)]
    commands = [  # one by flag, one by setting: both migrate and set up at the same moment
        (["serve", "--migrate", "--port", str(ports[0])], _env(fresh_pg, tmp_path)),
        (["serve", "--port", str(ports[1])], _env(fresh_pg, tmp_path, CHATSERVER_AUTO_MIGRATE="true")),
    ]
    procs = []
    for (args, env), log in zip(commands, logs, strict=True):
        with log.open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "chatserver.cli", *args],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
    try:
        ready = [False, False]
        deadline = time.monotonic() + 60
        with httpx.Client(timeout=1) as http:
            while not all(ready) and time.monotonic() < deadline:
                for i, (proc, port) in enumerate(zip(procs, ports, strict=True)):
                    assert proc.poll() is None, logs[i].read_text()[-3000:]
                    if not ready[i]:
                        with contextlib.suppress(httpx.HTTPError):
                            ready[i] = http.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
                time.sleep(0.1)
            assert all(ready), [log.read_text()[-3000:] for log in logs]
            for port in ports:
                health = http.get(f"http://127.0.0.1:{port}/healthz")
                assert health.status_code == 200 and health.json()["ok"] is True
        assert asyncio.run(_admins(fresh_pg)) == ["admin@example.com"]
        printed = [log.read_text() for log in logs]
        assert sum("Log in as" in text for text in printed) == 1  # the admin was created once
        assert not any("exists" in text or "Traceback" in text for text in printed), printed
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=15)


def test_concurrent_migrate_is_safe_and_alembic_is_quiet_unless_debug(fresh_pg: str, tmp_path: Path) -> None:
    env = _env(fresh_pg, tmp_path)
    cmd = [sys.executable, "-m", "chatserver.cli", "migrate"]
    running = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    for proc in running:
        stdout, stderr = proc.communicate(timeout=90)
        assert proc.returncode == 0, stderr
        assert stdout.strip() == "database schema is current"
        assert stderr == "", stderr  # no "INFO alembic.runtime.migration: Running upgrade ..."
    debug = _cli({**env, "CHATSERVER_LOG_LEVEL": "debug"}, "migrate")
    assert debug.returncode == 0 and "alembic" in debug.stderr and "Context impl" in debug.stderr
    quiet = _cli(env, "create-inbox", "--name", "Quiet")
    assert quiet.returncode == 0 and quiet.stderr == "" and len(quiet.stdout.strip().splitlines()) == 1
