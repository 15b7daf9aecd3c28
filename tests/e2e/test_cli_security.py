"""Real processes: file modes of the data directory after a first start, and `reset-password`."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chatserver.datadir import private_paths, sqlite_path, wider_than_allowed
from tests.e2e.harness import ServerProcess, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The umask most systems give a user (files 0644, directories 0755 unless told otherwise)."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatserver.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
    )


def test_first_start_makes_the_data_directory_private_and_warns_about_wider_modes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServerProcess(env={"CHATSERVER_DATA_DIR": str(data)}, log=tmp_path / "out.log")
    server.start()
    try:
        out = (tmp_path / "out.log").read_text()
        login = re.search(r"Log in as\s*:\s*(\S+) / (\S+)", out)
        assert login
        r = httpx.post(f"{server.url}/api/v1/auth/login", json={"email": login[1], "password": login[2]})
        assert r.status_code == 200  # a write: the WAL and its index exist now
        db = data / "chatserver.db"
        files = [db, Path(f"{db}-wal"), Path(f"{db}-shm"), data / "secret_key"]
        assert all(f.exists() for f in files), sorted(p.name for p in data.iterdir())
        assert mode(data) == 0o700
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
        assert "has mode" not in out
    finally:
        server.stop()
    # an operator widened them: the next start says so, one line per path, naming it and its mode
    data.chmod(0o755)
    db.chmod(0o644)
    server.start()
    try:
        second = (
            (tmp_path / "out.log").read_text().split("chatserver 0.1.0")[-2]
        )  # the lines before the banner
        warnings = [line for line in second.splitlines() if "has mode" in line]
        assert len(warnings) == 2, second
        assert any(f"{data} has mode 0755" in w and "WARNING" in w for w in warnings)
        assert any(f"{db} has mode 0644" in w for w in warnings)
        assert mode(db) == 0o644  # left as the operator made it
    finally:
        server.stop()


def test_a_cli_command_run_first_creates_private_files_too(tmp_path: Path) -> None:
    data = tmp_path / "fresh" / "data"
    assert run_cli({"CHATSERVER_DATA_DIR": str(data)}, "migrate") == "database schema is current"
    assert (
        mode(data) == 0o700 and mode(data / "chatserver.db") == 0o600 and mode(data / "secret_key") == 0o600
    )
    other = tmp_path / "elsewhere" / "x.db"
    run_cli({"CHATSERVER_DATA_DIR": str(data), "DATABASE_URL": f"sqlite:///{other}"}, "migrate")
    assert mode(other.parent) == 0o700 and mode(other) == 0o600


def test_modes_and_paths_pure_parts(tmp_path: Path) -> None:
    assert sqlite_path("sqlite+aiosqlite:///data/chatserver.db") == Path("data/chatserver.db")
    assert sqlite_path("sqlite+aiosqlite:////abs/x.db?mode=rwc") == Path("/abs/x.db")
    assert sqlite_path("sqlite+aiosqlite:///:memory:") is None
    assert sqlite_path("postgresql+asyncpg://u@h/db") is None
    f = tmp_path / "x.db"
    f.write_text("")
    f.chmod(0o640)
    paths = private_paths(tmp_path, f"sqlite+aiosqlite:///{f}", None)
    assert (f, 0o600) in paths and (Path(f"{f}-wal"), 0o600) in paths
    assert (f, 0o640, 0o600) in wider_than_allowed(paths)
    f.chmod(0o400)  # narrower is fine
    assert all(p != f for p, _, _ in wider_than_allowed(paths))


def test_reset_password_prints_a_new_one_once_and_ends_the_agents_sessions(tmp_path: Path) -> None:
    env = {"CHATSERVER_DATA_DIR": str(tmp_path / "data")}
    run_cli(env, "create-agent", "--email", "kim@x.test", "--password", "first-pass-long", "--name", "Kim")
    server = ServerProcess(env=env, log=tmp_path / "out.log")
    server.start()
    try:
        login = f"{server.url}/api/v1/auth/login"
        with httpx.Client() as http:
            assert (
                http.post(login, json={"email": "kim@x.test", "password": "first-pass-long"}).status_code
                == 200
            )
            assert http.get(f"{server.url}/api/v1/auth/me").status_code == 200
            out = cli(env, "reset-password", "--email", "KIM@x.test")
            assert out.returncode == 0, out.stderr
            new = out.stdout.strip()
            assert len(new) >= 16 and "\n" not in new
            assert "1 session(s) ended" in out.stderr and new not in out.stderr
            assert http.get(f"{server.url}/api/v1/auth/me").status_code == 401  # the session ended
        old = httpx.post(login, json={"email": "kim@x.test", "password": "first-pass-long"})
        assert old.status_code == 401
        assert httpx.post(login, json={"email": "kim@x.test", "password": new}).status_code == 200
        # --password-stdin: the same rules as everywhere; a refused password changes nothing
        for bad, rule in (("password123!", "common"), ("kim@x.test", "email"), ("short", "too_short")):
            refused = cli(
                env, "reset-password", "--email", "kim@x.test", "--password-stdin", stdin=bad + "\n"
            )
            assert refused.returncode == 2 and f"rule: {rule}" in refused.stderr, refused.stderr
        assert httpx.post(login, json={"email": "kim@x.test", "password": new}).status_code == 200
        chosen = cli(
            env, "reset-password", "--email", "kim@x.test", "--password-stdin", stdin="chosen-by-kim-7\n"
        )
        assert chosen.returncode == 0 and chosen.stdout == ""
        assert (
            httpx.post(login, json={"email": "kim@x.test", "password": "chosen-by-kim-7"}).status_code == 200
        )
        unknown = cli(env, "reset-password", "--email", "nobody@x.test")
        assert unknown.returncode == 2 and "no agent with email nobody@x.test" in unknown.stderr
        assert unknown.stdout == ""
    finally:
        server.stop()


def test_create_agent_applies_the_password_rules(tmp_path: Path) -> None:
    env = {"CHATSERVER_DATA_DIR": str(tmp_path / "data")}
    for bad, rule in (("qwertyuiop", "common"), ("lee.marvin-1", "email"), ("pw-short", "too_short")):
        out = cli(env, "create-agent", "--email", "lee.marvin@x.test", "--password", bad, "--name", "Lee")
        assert out.returncode == 2 and f"rule: {rule}" in out.stderr, out.stderr
    missing = cli(env, "create-token", "--agent", "lee.marvin@x.test")
    assert missing.returncode == 2 and "no agent with email" in missing.stderr  # nothing was created
