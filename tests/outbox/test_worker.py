"""The outbox worker against a real SMTP server (aiosmtpd) and a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from chatserver.errors import ConfigError, PermanentDeliveryError
from chatserver.model.events import DeliveryEvent, Event
from chatserver.outbox import (
    Delivery,
    DeliveryState,
    NewDelivery,
    OutboxQueries,
    OutboxWorker,
    SenderRegistry,
)
from chatserver.outbox.email import EMAIL_KIND, build_message, email_payload, header_text
from chatserver.outbox.smtp import SmtpConfig, SmtpSender
from chatserver.store.store import Store
from tests.outbox.smtp_server import smtp_server


def mail(key: str = "<m1@support.test>", subject: str = "[#1001] Hello") -> NewDelivery:
    return NewDelivery(
        EMAIL_KIND,
        key,
        email_payload(to="ann@example.com", subject=subject, text="Hi Ann", message_id=key),
    )


def make_worker(
    store: Store, registry: SenderRegistry, events: list[Event], **kw: float
) -> tuple[OutboxQueries, OutboxWorker]:
    queries = OutboxQueries(store.db)
    publish: Callable[[list[tuple[str, Event]]], None] = lambda items: events.extend(e for _, e in items)  # noqa: E731
    worker = OutboxWorker(
        queries,
        registry,
        publish,
        retry_s=kw.get("retry_s", 0.05),
        max_attempts=int(kw.get("max_attempts", 5)),
    )
    return queries, worker


async def drain(worker: OutboxWorker, until: Callable[[], bool], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not until():
            await worker.run_once()
            await asyncio.sleep(0.02)


async def test_a_4xx_is_retried_and_the_mail_is_sent_once(store: Store) -> None:
    with smtp_server("451 4.3.0 greylisted, try again later") as smtp:
        registry = SenderRegistry()
        registry.register(EMAIL_KIND, SmtpSender(SmtpConfig.from_url(smtp.url), "Support <support@x.test>"))
        events: list[Event] = []
        queries, worker = make_worker(store, registry, events)
        (delivery_id,) = await queries.enqueue([mail()])
        await drain(worker, lambda: smtp.mailbox.received != [])
        for _ in range(5):  # nothing more to do: never sent twice
            await worker.run_once()
        d = await queries.get(delivery_id)
        assert d.state is DeliveryState.SENT and d.attempts == 2 and d.sent_at is not None
        assert smtp.mailbox.attempts == 2 and len(smtp.mailbox.received) == 1
        got = smtp.mailbox.received[0]
        assert got["Message-ID"] == "<m1@support.test>" and got["Subject"] == "[#1001] Hello"
        assert got["X-Envelope-To"] == "ann@example.com"


async def test_a_5xx_fails_with_the_reason(store: Store) -> None:
    with smtp_server("550 5.1.1 mailbox unavailable") as smtp:
        registry = SenderRegistry()
        registry.register(EMAIL_KIND, SmtpSender(SmtpConfig.from_url(smtp.url), "support@x.test"))
        events: list[Event] = []
        queries, worker = make_worker(store, registry, events)
        conv_key = NewDelivery(
            EMAIL_KIND, "<m2@x>", mail("<m2@x>").payload, conversation_id="cv_1", message_id="m1"
        )
        (delivery_id,) = await queries.enqueue([conv_key])
        await drain(worker, lambda: smtp.mailbox.attempts == 1)
        d = await queries.get(delivery_id)
        assert d.state is DeliveryState.FAILED and d.attempts == 1
        assert d.reason is not None and "550" in d.reason and "mailbox unavailable" in d.reason
        assert smtp.mailbox.received == []
        await worker.run_once()
        assert smtp.mailbox.attempts == 1  # never retried
        assert [(e.state, e.reason) for e in events if isinstance(e, DeliveryEvent)] == [("failed", d.reason)]


async def test_temporary_errors_give_up_after_max_attempts(store: Store) -> None:
    with smtp_server(*["421 4.7.0 too busy"] * 10) as smtp:
        registry = SenderRegistry()
        registry.register(EMAIL_KIND, SmtpSender(SmtpConfig.from_url(smtp.url), "support@x.test"))
        events: list[Event] = []
        queries, worker = make_worker(store, registry, events, max_attempts=3, retry_s=0.01)
        (delivery_id,) = await queries.enqueue([mail("<m3@x>")])
        await drain(worker, lambda: smtp.mailbox.attempts == 3)
        d = await queries.get(delivery_id)
        assert d.state is DeliveryState.FAILED and d.reason is not None
        assert d.reason.startswith("gave up after 3 attempts: SMTP 421")


async def test_an_unreachable_server_is_temporary(store: Store) -> None:
    from tests.e2e.harness import free_port

    registry = SenderRegistry()
    registry.register(
        EMAIL_KIND, SmtpSender(SmtpConfig.from_url(f"smtp://127.0.0.1:{free_port()}"), "support@x.test")
    )
    queries, worker = make_worker(store, registry, [], retry_s=60)
    (delivery_id,) = await queries.enqueue([mail("<m4@x>")])
    await worker.run_once()
    d = await queries.get(delivery_id)
    assert d.state is DeliveryState.QUEUED and d.attempts == 1
    assert d.reason is not None and d.reason.startswith("SMTP connection failed")
    assert d.next_attempt_at > d.created_at + 50_000


async def test_two_workers_never_send_one_delivery_twice(store: Store) -> None:
    sent: list[str] = []

    async def slow_sender(d: Delivery) -> None:
        await asyncio.sleep(0.05)
        sent.append(d.idempotency_key)

    registry = SenderRegistry()
    registry.register("test", slow_sender)
    queries = OutboxQueries(store.db)
    workers = [OutboxWorker(queries, registry, None, retry_s=1, max_attempts=3) for _ in range(3)]
    await queries.enqueue([NewDelivery("test", f"k{i}", {}) for i in range(30)])
    for _ in range(4):
        await asyncio.gather(*(w.run_once() for w in workers))
    assert sorted(sent) == sorted(f"k{i}" for i in range(30))


async def test_a_lost_lease_records_nothing_and_the_row_is_sent_again(store: Store) -> None:
    """A worker that crashed (or stalled) after sending: its lease expires, another sends once more."""
    sent: list[str] = []

    async def sender(d: Delivery) -> None:
        sent.append(d.id)

    registry = SenderRegistry()
    registry.register("test", sender)
    queries = OutboxQueries(store.db)
    (delivery_id,) = await queries.enqueue([NewDelivery("test", "k", {})])
    from chatserver.model.ids import now_ms

    ((stale, token),) = await queries.claim({"test"}, now=now_ms(), lease_ms=1, limit=5)
    await asyncio.sleep(0.01)
    worker = OutboxWorker(queries, registry, None, retry_s=1, max_attempts=3)
    assert await worker.run_once() == 1
    assert await queries.record(stale.id, token, state=DeliveryState.FAILED, attempts=1, reason="x") is None
    assert (await queries.get(delivery_id)).state is DeliveryState.SENT and sent == [delivery_id]


async def test_only_registered_kinds_are_claimed(store: Store) -> None:
    queries, worker = make_worker(store, SenderRegistry(), [])
    (delivery_id,) = await queries.enqueue([mail("<m5@x>")])
    assert await worker.run_once() == 0
    assert (await queries.get(delivery_id)).attempts == 0


async def test_receipts_only_move_forward(store: Store) -> None:
    async def ok(d: Delivery) -> None:
        return None

    registry = SenderRegistry()
    registry.register("test", ok)
    queries, worker = make_worker(store, registry, [])
    await queries.enqueue([NewDelivery("test", "rk", {})])
    await worker.run_once()
    read = await queries.advance("rk", DeliveryState.READ)
    assert read is not None and read.state is DeliveryState.READ
    assert await queries.advance("rk", DeliveryState.DELIVERED) is None
    with pytest.raises(ValueError):
        await queries.advance("rk", DeliveryState.FAILED)


def test_a_sender_kind_is_registered_once() -> None:
    async def s(d: Delivery) -> None:
        return None

    registry = SenderRegistry()
    registry.register("webhook", s)
    with pytest.raises(ValueError):
        registry.register("webhook", s)
    assert registry.kinds == {"webhook"}


def test_header_injection_never_reaches_a_header() -> None:
    subject = "Refund\r\nBcc: everyone@example.com\nX-Evil: 1"
    msg = build_message(
        email_payload(to="ann@example.com", subject=subject, text="x", message_id="<a@b>"),
        mail_from="s@x.test",
    )
    raw = msg.as_bytes()
    assert b"\nBcc:" not in raw and b"\nX-Evil" not in raw
    assert msg["Subject"] == "Refund Bcc: everyone@example.com X-Evil: 1"
    assert header_text("a\u2028b\x00c") == "a b c"


def test_an_unusable_payload_is_permanent() -> None:
    with pytest.raises(PermanentDeliveryError):
        build_message({"subject": "x"}, mail_from="s@x.test")
    with pytest.raises(PermanentDeliveryError):
        build_message(email_payload(to="nobody", subject="s", text="t", message_id="<a@b>"), mail_from="s@x")


def test_smtp_urls() -> None:
    c = SmtpConfig.from_url("smtp://u%40x:p%3Ass@mail.test:2525?starttls=1")
    assert (c.host, c.port, c.username, c.password, c.start_tls, c.use_tls) == (
        "mail.test",
        2525,
        "u@x",
        "p:ss",
        True,
        False,
    )
    s = SmtpConfig.from_url("smtps://mail.test")
    assert (s.port, s.use_tls, s.start_tls) == (465, True, False)
    assert SmtpConfig.from_url("smtp://mail.test").port == 25
    for bad in ("http://mail.test", "smtp://", "smtp://h:notaport"):
        with pytest.raises(ConfigError):
            SmtpConfig.from_url(bad)
