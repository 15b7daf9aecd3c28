"""An IMAP mailbox on a real Dovecot, imported exactly once across restarts of the poller and a
UIDVALIDITY change; processed mail flagged or moved."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatserver.mail.config import parse_email_config
from chatserver.mail.runner import MailServices
from chatserver.mail.store import MailStore
from chatserver.model.types import Inbox
from tests.e2e.harness import Seed, Server
from tests.mail.helpers import ADDRESS, Dovecot, dovecot, mail


async def eventually(check: Callable[[], Any], timeout: float = 30.0) -> None:
    """Until ``check()`` (a value, or an awaitable of one; run in a thread) is true."""
    async with asyncio.timeout(timeout):
        while True:
            value = await asyncio.to_thread(check)
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def pollers(server: Server) -> AsyncIterator[MailServices]:
    c = server.app.state.ctx
    services = MailServices(replace(server.settings, imap_poll_s=0.3), c.service, c.bus)
    await services.start(smtp=False)
    try:
        yield services
    finally:
        await services.stop()


async def imported(server: Server, inbox: Inbox) -> int:
    return await MailStore(server.app.state.ctx.store.db).count_emails(inbox.id)


async def texts(http: httpx.AsyncClient, server: Server, seeded: Seed) -> list[str]:
    headers = {"Authorization": f"Bearer {seeded.admin_token}"}
    r = await http.get(f"{server.url}/api/v1/conversations?limit=200", headers=headers)
    out = []
    for conv in r.json()["items"]:
        if conv["channel"] == "email":
            m = await http.get(
                f"{server.url}/api/v1/conversations/{conv['id']}/messages?after=0", headers=headers
            )
            out += [x["text"] for x in m.json()["items"] if x["kind"] == "text"]
    return sorted(out)


@pytest.fixture
def imap(tmp_path: Path) -> Any:
    with dovecot(tmp_path) as d:
        yield d


async def test_imported_exactly_once_across_restarts_and_a_uidvalidity_change(
    server: Server, seeded: Seed, http: httpx.AsyncClient, imap: Dovecot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="chatserver.mail")
    mail_store = MailStore(server.app.state.ctx.store.db)
    inbox = await mail_store.create_email_inbox(
        "Support", parse_email_config(address=ADDRESS, imap_url=imap.url, imap_processed="flag")
    )
    first = [mail(f"mail {i}", subject=f"s{i}", message_id=f"<m{i}@example.org>") for i in range(2)]
    for m in first:
        imap.deliver(m)
    async with pollers(server):
        await eventually(lambda: _count(server, inbox, 2))
        await eventually(lambda: all("\\Seen" in f for f in imap.uids("Support").values()))
    assert await texts(http, server, seeded) == ["mail 0", "mail 1"]

    # mail that arrives while no poller runs is backfilled; nothing is imported twice
    third = mail("mail 2", subject="s2", message_id="<m2@example.org>")
    imap.deliver(third)
    async with pollers(server) as services:
        await eventually(lambda: _count(server, inbox, 3))
        poller = services.imap.pollers[inbox.id][1]  # type: ignore[union-attr]
        poller.synced.clear()
        await asyncio.wait_for(poller.synced.wait(), 30)  # one more full sync: still 3
    assert await texts(http, server, seeded) == ["mail 0", "mail 1", "mail 2"]
    position = await mail_store.imap_position(inbox.id)
    assert position is not None and position[2] == 3

    # the mailbox is recreated (new UIDVALIDITY, UIDs start again) with the old mail and one new
    imap.recreate()
    for m in [*first, third, mail("mail 3", subject="s3", message_id="<m3@example.org>")]:
        imap.deliver(m)
    async with pollers(server):
        await eventually(lambda: _count(server, inbox, 4))
        await eventually(lambda: all("\\Seen" in f for f in imap.uids("Support").values()))
    assert await texts(http, server, seeded) == ["mail 0", "mail 1", "mail 2", "mail 3"]
    assert "UIDVALIDITY changed" in caplog.text
    new_position = await mail_store.imap_position(inbox.id)
    assert new_position is not None and new_position[1] != position[1] and new_position[2] == 4


async def _count(server: Server, inbox: Inbox, n: int) -> bool:
    got = await imported(server, inbox)
    assert got <= n, f"imported {got} mails, expected {n}: a duplicate"
    return got == n


async def test_processed_mail_is_moved_when_configured(
    server: Server, seeded: Seed, http: httpx.AsyncClient, imap: Dovecot
) -> None:
    mail_store = MailStore(server.app.state.ctx.store.db)
    inbox = await mail_store.create_email_inbox(
        "Support", parse_email_config(address=ADDRESS, imap_url=imap.url, imap_processed="move:Processed")
    )
    imap.deliver(mail("move me", message_id="<mv@example.org>"))
    async with pollers(server):
        await eventually(lambda: _count(server, inbox, 1))
        await eventually(lambda: imap.uids("Support") == {} and len(imap.uids("Processed")) == 1)
    assert await texts(http, server, seeded) == ["move me"]


async def test_a_wrong_password_is_retried_and_logged_without_importing(
    server: Server, seeded: Seed, imap: Dovecot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="chatserver.mail")
    mail_store = MailStore(server.app.state.ctx.store.db)
    bad = imap.url.replace("imap-secret", "wrong")
    inbox = await mail_store.create_email_inbox("Support", parse_email_config(address=ADDRESS, imap_url=bad))
    imap.deliver(mail("waiting"))
    async with pollers(server):
        await eventually(lambda: "LOGIN refused" in caplog.text)
    assert await imported(server, inbox) == 0
    assert "wrong" not in caplog.text  # the password never reaches the log
