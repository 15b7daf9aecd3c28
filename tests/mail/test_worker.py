"""`chatserver worker` as real processes on PostgreSQL + Redis: the SMTP listener, the IMAP pollers and
the outbox. Two workers on one mailbox import every mail exactly once (the lease), and each new
thread's acknowledgement goes out once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from chatserver.mail.store import MailStore
from chatserver.store.db import Database, make_engine
from chatserver.store.schema import messages, outbox
from tests.e2e.harness import SERVER_LOGS, free_port, run_cli, seed
from tests.mail.helpers import ADDRESS, Dovecot, dovecot, mail, send
from tests.outbox.smtp_server import SmtpServer, smtp_server
from tests.services import REDIS_PREFIX, check_redis, create_pg_database, drop_pg_database

pytestmark = pytest.mark.slow


@pytest.fixture
def database() -> Iterator[str]:
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture
def imap(tmp_path: Path) -> Iterator[Dovecot]:
    with dovecot(tmp_path) as d:
        yield d


@pytest.fixture
def sink() -> Iterator[SmtpServer]:
    with smtp_server() as s:
        yield s


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    SERVER_LOGS.append(log)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "chatserver.cli", "worker"],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def wait_for(check: object, what: str, timeout: float = 90) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if await check():  # type: ignore[operator]
                return
            await asyncio.sleep(0.2)


async def test_two_workers_import_each_mail_once_and_acknowledge_once(
    tmp_path: Path,
    database: str,
    imap: Dovecot,
    sink: SmtpServer,
    workers: list[subprocess.Popen[bytes]],
) -> None:
    await seed(database)
    ports = [free_port(), free_port()]
    base = {
        "DATABASE_URL": database,
        "REDIS_URL": check_redis(),
        "CHATSERVER_REDIS_PREFIX": REDIS_PREFIX,
        "CHATSERVER_SECRET_KEY": "k" * 40,
        "CHATSERVER_DATA_DIR": str(tmp_path),
        "CHATSERVER_IMAP_POLL_S": "0.5",
        "CHATSERVER_SMTP_URL": sink.url,
        "CHATSERVER_OUTBOX_RETRY_S": "0.2",
    }
    out = run_cli(
        base,
        "create-inbox", "--channel", "email", "--name", "Support", "--address", ADDRESS,
        "--imap-url", imap.url, "--tickets", "always",
    )  # fmt: skip
    assert "imap-secret" not in out
    # a webhook for the messages the workers store (nothing listens there: its rows are what is checked)
    run_cli(
        {**base, "CHATSERVER_WEBHOOK_ALLOW_PRIVATE": "true"},
        "create-webhook", "--url", "http://127.0.0.1:9/hook", "--events", "message.created",
    )  # fmt: skip
    for i in range(4):
        imap.deliver(
            mail(f"before {i}", sender=f"c{i}@example.org", subject=f"early {i}", message_id=f"<e{i}@x.org>")
        )
    for i, port in enumerate(ports):
        env = {**base, "CHATSERVER_SMTP_LISTEN": f"127.0.0.1:{port}"}
        workers.append(start_worker(env, tmp_path / f"worker{i}.log"))

    engine = make_engine(database, pool_size=2)
    mails = MailStore(Database(engine))
    try:
        (inbox, _), *_ = await mails.email_inboxes()

        async def imported(n: int) -> bool:
            for proc in workers:
                assert proc.poll() is None, (tmp_path / "worker0.log").read_text()[-3000:]
            return await mails.count_emails(inbox.id) >= n

        await wait_for(lambda: imported(4), "the first mails")
        for i in range(4):  # while both run
            imap.deliver(
                mail(
                    f"during {i}", sender=f"d{i}@example.org", subject=f"late {i}", message_id=f"<l{i}@x.org>"
                )
            )
        # and by SMTP, to either worker's listener
        await wait_for(lambda: _listening(ports[1]), "the SMTP listener")
        await send(ports[1], mail("by smtp", subject="smtp", message_id="<smtp@example.org>"))
        await wait_for(lambda: imported(9), "every mail")

        async def acknowledged() -> bool:
            return len(sink.mailbox.received) >= 9

        await wait_for(acknowledged, "nine acknowledgements")
        await asyncio.sleep(3)  # every chance for a second import or a second send
        assert await mails.count_emails(inbox.id) == 9
        replied_to = sorted(str(m["In-Reply-To"]) for m in sink.mailbox.received)
        assert len(replied_to) == 9 and len(set(replied_to)) == 9
        assert "<smtp@example.org>" in replied_to and "<l3@x.org>" in replied_to
        assert all(m["Auto-Submitted"] == "auto-replied" for m in sink.mailbox.received)
        assert all(flags.count("\\Seen") for flags in imap.uids("Support").values())
        # one poller at a time (the lease): only one worker ever read the mailbox
        polled = [i for i in range(2) if "new mail(s)" in (tmp_path / f"worker{i}.log").read_text()]
        assert len(polled) == 1, polled
        # each customer mail's message has its webhook event, once, written with it by the worker
        async with engine.connect() as conn:
            contact_messages = set(
                await conn.scalars(sa.select(messages.c.id).where(messages.c.author_kind == "contact"))
            )
            events = [
                r.payload["event"]
                for r in await conn.execute(sa.select(outbox.c.payload).where(outbox.c.kind == "webhook"))
            ]
        announced = [e["data"]["message"]["id"] for e in events if e["type"] == "message.created"]
        assert len(contact_messages) == 9 and contact_messages <= set(announced)
        assert len(announced) == len(set(announced))
    finally:
        await engine.dispose()


async def _listening(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True
