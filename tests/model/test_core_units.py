from __future__ import annotations

import pytest

from chatserver.errors import ConfigError, Conflict
from chatserver.model.events import (
    AccessEvent,
    ConversationEvent,
    MessageEvent,
    NoticeEvent,
    OfferEvent,
    OfferRevokedEvent,
    PresenceEvent,
    QueueEvent,
    ReadEvent,
    TranslatedEvent,
    TypingEvent,
    WakeEvent,
    decode_event,
    encode_event,
)
from chatserver.model.ids import _encode, new_id, new_ids
from chatserver.model.status import Status, can_transition, transition
from chatserver.model.types import Author, AuthorKind, Inbox, Message, MessageKind, iso
from chatserver.realtime.ratelimit import TokenBucket
from chatserver.settings import Settings

ANN = Author(AuthorKind.AGENT, "ag_1", "Ann")


def test_status_table() -> None:
    assert transition(Status.QUEUED, Status.ASSIGNED) is Status.ASSIGNED
    assert can_transition(Status.RESOLVED, Status.QUEUED)
    with pytest.raises(Conflict):
        transition(Status.RESOLVED, Status.ASSIGNED)
    with pytest.raises(Conflict):
        transition(Status.PENDING, Status.SNOOZED)


def test_token_bucket_allows_burst_then_rate() -> None:
    bucket = TokenBucket(rate=2, burst=3)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.5) is True  # one token back after 0.5 s at 2/s
    assert bucket.take(0.5) is False
    assert [bucket.take(10.0) for _ in range(4)] == [True, True, True, False]  # never more than the burst


@pytest.mark.parametrize(
    "event",
    [
        MessageEvent(Message("m", "c", 3, ANN, MessageKind.NOTE, "hi <b>", 1, "k", "de", {"en": "hi"})),
        MessageEvent(
            Message(
                "m",
                "c",
                4,
                ANN,
                MessageKind.TEXT,
                "",
                2,
                attachments=({"id": "att_1", "name": "a.png", "content_type": "image/png", "size": 3},),
            )
        ),
        ConversationEvent("c", 4, {"id": "c", "status": "queued"}),
        TypingEvent("c", ANN, "start"),
        ReadEvent("c", ANN, 9),
        PresenceEvent(ANN, "away"),
        OfferEvent("ag_1", "of_1", 123, {"id": "c"}),
        OfferRevokedEvent("ag_1", "of_1", "c", "expired"),
        NoticeEvent("ag_1", "rona", "set away"),
        QueueEvent("c", 3, 42.5),
        WakeEvent("queued"),
        TranslatedEvent("c", "m", 2, "de", None, "provider_unavailable"),
        TranslatedEvent("c", "m", 2, "es", "Hola", None, for_agents=True),
        AccessEvent("ag_1", "deactivated"),
        AccessEvent("ag_1", "logout", "ab" * 32),
    ],
)
def test_bus_events_roundtrip(event: object) -> None:
    assert decode_event(encode_event(event)) == event  # type: ignore[arg-type]


def test_an_unknown_access_change_is_refused_on_decode() -> None:
    with pytest.raises(ValueError):
        decode_event(b'{"t":"access","a":"ag_1","r":"promoted","s":null}')


def test_ids_sort_by_time_and_are_unique() -> None:
    ids = [new_id("x_") for _ in range(1000)]
    assert len(set(ids)) == 1000 and all(len(i) == 28 for i in ids)
    assert ids == sorted(ids)  # in creation order, even within one millisecond
    batch = new_ids("x_", 50)
    after = new_id("x_")
    assert [ids[-1], *batch, after] == sorted([ids[-1], *batch, after])
    assert iso(1_700_000_000_123) == "2023-11-14T22:13:20.123Z"


def _reference_base32(value: int) -> str:
    """Crockford base32, 26 characters, one 5-bit digit at a time (the definition)."""
    digits = "0123456789abcdefghjkmnpqrstvwxyz"
    return "".join(digits[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def test_id_encoding_is_crockford_base32_of_time_and_randomness() -> None:
    for value in (0, 1, 31, 32, 1023, 1024, (1 << 130) - 1, (1_700_000_000_123 << 80) | 0xABCDEF):
        assert _encode(value) == _reference_base32(value)
    assert _encode(1_700_000_000_123 << 80)[:10] == _reference_base32(1_700_000_000_123 << 80)[:10]
    batch = new_ids("msg_", 300)
    assert len(set(batch)) == 300 and all(i.startswith("msg_") and len(i) == 30 for i in batch)
    assert len({i[4:14] for i in batch}) == 1  # one clock read: the same millisecond
    assert new_ids("x_", 0) == []
    assert new_id()[:10] >= batch[0][4:14]  # the time part never goes back


def test_inbox_origin_rules() -> None:
    inbox = Inbox("i", "n", "widget", "k", ("https://shop.example",))
    assert inbox.allows_origin("https://shop.example/")
    assert inbox.allows_origin(None)  # not a browser page
    assert not inbox.allows_origin("https://evil.example")
    assert Inbox("i", "n", "widget", "k").allows_origin("https://any.example")


def test_settings_from_env_defaults_and_validation(tmp_path: object) -> None:
    s = Settings.from_env({"CHATSERVER_DATA_DIR": "/tmp/x"})
    assert s.embedded and s.database_url == "sqlite+aiosqlite:////tmp/x/chatserver.db" and s.redis_url is None
    pg = Settings.from_env({"DATABASE_URL": "postgres://u@h/db", "REDIS_URL": "redis://h", "PORT": "9000"})
    assert pg.database_url == "postgresql+asyncpg://u@h/db" and not pg.embedded and pg.port == 9000
    with pytest.raises(ConfigError, match="CHATSERVER_SECRET_KEY"):
        pg.with_secret()
    with pytest.raises(ConfigError, match="integer"):
        Settings.from_env({"PORT": "eighty"})
    with pytest.raises(ConfigError, match="PostgreSQL"):
        Settings.from_env({"REDIS_URL": "redis://h"})
    with pytest.raises(ConfigError):
        Settings.from_env({"DATABASE_URL": "mysql://x"})


def test_embedded_secret_is_generated_once_and_kept(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    s = Settings.from_env({"CHATSERVER_DATA_DIR": str(tmp_path)})
    first = s.with_secret().secret_key
    assert len(first) > 40 and s.with_secret().secret_key == first
    assert oct((tmp_path / "secret_key").stat().st_mode)[-3:] == "600"
