"""What the benchmark scripts share: paths, ports, file limits, PostgreSQL admin statements, seeding through
the real CLI, and a server subprocess with its log."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_ADMIN_DSN = os.environ.get("BENCH_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_nofile(want: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def _pg(sql: str) -> Any:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def pg(sql: str) -> Any:
    """Run one statement on the PostgreSQL admin database (CREATE / DROP DATABASE ...)."""
    return asyncio.run(_pg(sql))


_SEED = r"""
import contextlib, io, json, sys
from chatserver.cli import main
def run(args):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(args)
    if rc != 0:
        raise SystemExit(f"chatserver {' '.join(args)} -> {rc}")
    return buf.getvalue().strip()
n, migrate, password, role, inbox, domain, supervisor = sys.argv[1:8]
if migrate == "1":
    run(["migrate"])
out = {"inbox": json.loads(run(["create-inbox", "--name", inbox, "--json"])), "agents": []}
if supervisor == "1":
    run(["create-agent", "--email", f"boss@{domain}", "--password", password, "--name", "Boss",
         "--role", "supervisor"])
    out["admin_token"] = run(["create-token", "--agent", f"boss@{domain}"])
for i in range(int(n)):
    email = f"a{i}@{domain}"
    run(["create-agent", "--email", email, "--password", password, "--name", f"A{i}", "--role", role])
    out["agents"].append({"email": email, "token": run(["create-token", "--agent", email])})
print("SEED " + json.dumps(out))
"""


def seed_via_cli(
    env: dict[str, str],
    n_agents: int,
    *,
    migrate: bool,
    password: str,
    role: str,
    inbox: str,
    domain: str,
    supervisor: bool,
) -> dict[str, Any]:
    """Seed through the real CLI commands (``chatserver.cli.main``) in one subprocess, so the imports are
    paid once: [migrate], create-inbox, [a supervisor with a token], n agents of ``role``, each with a token.
    """
    args = [str(n_agents), "1" if migrate else "0", password, role, inbox, domain, "1" if supervisor else "0"]
    r = subprocess.run(
        [sys.executable, "-c", _SEED, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=180
    )
    if r.returncode != 0:
        raise RuntimeError(f"seeding failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("SEED "))
    return dict(json.loads(line[5:]))


class Server:
    """One ``chatserver serve`` (or the raw relay) subprocess with its log in a file."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], port: int, log_path: Path) -> None:
        self.name, self.cmd, self.env, self.port, self.log_path = name, cmd, env, port, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, ready_line: str | None = None, timeout: float = 60) -> None:
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.cmd,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log_path.read_text()[-3000:]}")
            if ready_line is not None:
                if ready_line in self.log_path.read_text(errors="replace"):
                    return
            else:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200:
                        return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout}s:\n{self.log_path.read_text()[-3000:]}")

    def rss(self) -> int:
        return int(psutil.Process(self.pid).memory_info().rss)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode

    def log_summary(self) -> dict[str, Any]:
        text = self.log_path.read_text(errors="replace")
        lines = text.splitlines()
        levels: Counter[str] = Counter()
        notable: list[str] = []
        for line in lines:
            m = re.search(r"\b(DEBUG|INFO|WARNING|ERROR|CRITICAL)\b", line)
            lvl = m.group(1) if m else ("ERROR" if line.startswith("Traceback") else None)
            if lvl:
                levels[lvl] += 1
            if (lvl in ("WARNING", "ERROR", "CRITICAL") or "Traceback" in line or "too slow" in line) and len(
                notable
            ) < 20:
                notable.append(line[:300])
        return {
            "lines": len(lines),
            "levels": dict(levels),
            "problems": {k: v for k, v in levels.items() if k in ("WARNING", "ERROR", "CRITICAL")},
            "slow_consumer_closes": text.count("too slow"),
            "sender_stopped": text.count("sender stopped"),
            "notable": notable,
        }
