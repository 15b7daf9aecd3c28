from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import Seed, Server, run_server, seed, settings_for


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
