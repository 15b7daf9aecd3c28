from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import (
    ISSUED_SECRETS,
    SERVER_LOGS,
    Seed,
    Server,
    run_server,
    seed,
    settings_for,
)


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_server_logs() -> Iterator[None]:
    """After the whole run: no credential issued by the harness appears in any server process's log."""
    yield
    leaks = [
        f"{log}: {secret[:8]}..."
        for log in SERVER_LOGS
        if log.exists()
        for text in [log.read_text(errors="replace")]
        for secret in ISSUED_SECRETS
        if secret in text
    ]
    assert not leaks, f"issued credentials found in server logs: {leaks}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"


@pytest.fixture
def server_overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
async def seeded(sqlite_url: str) -> Seed:
    return await seed(sqlite_url)


@pytest.fixture
async def server(
    sqlite_url: str, seeded: Seed, tmp_path: Path, server_overrides: dict[str, Any]
) -> AsyncIterator[Server]:
    async with run_server(settings_for(sqlite_url, tmp_path, **server_overrides)) as s:
        yield s


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client
