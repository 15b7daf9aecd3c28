"""Email inboxes over REST: created by admins, shown without the IMAP password, bad input refused."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.harness import Seed, Server

IMAP = "imaps://support:s3cret-pass@imap.shop.example/INBOX"


async def test_create_and_read_an_email_inbox(server: Server, seeded: Seed, http: httpx.AsyncClient) -> None:
    admin = {"Authorization": f"Bearer {seeded.admin_token}"}
    r = await http.post(
        f"{server.url}/api/v1/inboxes",
        json={"channel": "email", "name": "Support", "address": "Support@Shop.example", "imap_url": IMAP},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["email"] == {
        "address": "support@shop.example",
        "tickets": "always",
        "imap": {"url": "imaps://support@imap.shop.example:993/INBOX", "processed": "flag"},
    }
    for url in (f"/api/v1/inboxes/{created['id']}", "/api/v1/inboxes"):
        got = await http.get(server.url + url, headers=admin)
        assert got.status_code == 200 and "s3cret" not in got.text and "support@shop.example" in got.text
    again = await http.post(
        f"{server.url}/api/v1/inboxes",
        json={"channel": "email", "name": "Again", "address": "support@shop.example"},
        headers=admin,
    )
    assert again.status_code == 409 and again.json()["error"]["data"]["field"] == "address"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"channel": "email", "name": "S", "address": "nope"}, 422, "address"),
        ({"channel": "email", "name": "S"}, 422, "address"),
        (
            {"channel": "email", "name": "S", "address": "a@b.example", "imap_url": "http://x"},
            422,
            "imap_url",
        ),
        ({"channel": "email", "name": "S", "address": "a@b.example", "tickets": "never"}, 422, "tickets"),
        (
            {"channel": "email", "name": "S", "address": "a@b.example", "imap_processed": "flag"},
            422,
            "imap_processed",
        ),
        ({"channel": "fax", "name": "S"}, 422, "channel"),
        ({"channel": "email", "address": "a@b.example"}, 422, "name"),
    ],
)
async def test_bad_email_inboxes_are_refused_and_change_nothing(
    server: Server, seeded: Seed, http: httpx.AsyncClient, body: dict[str, object], status: int, field: str
) -> None:
    admin = {"Authorization": f"Bearer {seeded.admin_token}"}
    before = (await http.get(f"{server.url}/api/v1/inboxes", headers=admin)).json()["items"]
    r = await http.post(f"{server.url}/api/v1/inboxes", json=body, headers=admin)
    assert r.status_code == status and r.json()["error"]["data"]["field"] == field, r.text
    assert (await http.get(f"{server.url}/api/v1/inboxes", headers=admin)).json()["items"] == before


async def test_only_admins_create_email_inboxes(
    server: Server, seeded: Seed, http: httpx.AsyncClient
) -> None:
    r = await http.post(
        f"{server.url}/api/v1/inboxes",
        json={"channel": "email", "name": "S", "address": "a@b.example"},
        headers={"Authorization": f"Bearer {seeded.agent_token}"},
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
