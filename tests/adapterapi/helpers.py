"""Adapters made through the real REST API, for the adapter API tests."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.harness import ISSUED_SECRETS, Seed, Server


def admin(seeded: Seed) -> dict[str, str]:
    return {"Authorization": f"Bearer {seeded.admin_token}"}


async def create_adapter(
    http: httpx.AsyncClient, server: Server, seeded: Seed, *, kind: str, inboxes: list[str], **extra: Any
) -> dict[str, Any]:
    r = await http.post(
        f"{server.url}/api/v1/adapters",
        json={"name": extra.pop("name", "Helper Bot"), "kind": kind, "inboxes": inboxes, **extra},
        headers=admin(seeded),
    )
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    ISSUED_SECRETS.add(data["token"])
    if data.get("secret"):
        ISSUED_SECRETS.add(data["secret"])
    return data


async def make_bot(
    http: httpx.AsyncClient, server: Server, seeded: Seed, name: str = "Helper Bot"
) -> dict[str, Any]:
    """A bot adapter that is the bot of the seeded inbox."""
    bot = await create_adapter(http, server, seeded, kind="bot", inboxes=[], name=name)
    r = await http.patch(
        f"{server.url}/api/v1/inboxes/{seeded.inbox_id}", json={"bot": bot["id"]}, headers=admin(seeded)
    )
    assert r.status_code == 200 and r.json()["bot"] == bot["id"], r.text
    shown = await http.get(f"{server.url}/api/v1/inboxes/{seeded.inbox_id}", headers=admin(seeded))
    assert shown.json()["bot"] == bot["id"]
    return bot
