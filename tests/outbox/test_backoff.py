from __future__ import annotations

import pytest

from chatserver.errors import PermanentDeliveryError, TemporaryDeliveryError
from chatserver.outbox.backoff import Fail, Retry, after_failure, retry_delay_s


def test_first_retry_after_base_then_doubling_with_bounded_jitter() -> None:
    assert [retry_delay_s(n, base_s=10, jitter=0.0) for n in (1, 2, 3, 4)] == [10, 20, 40, 80]
    assert retry_delay_s(1, base_s=10, jitter=0.999) < 12.5
    assert retry_delay_s(3, base_s=10, jitter=0.5) == pytest.approx(40 * 1.125)


def test_the_receivers_hint_wins_when_longer() -> None:
    assert retry_delay_s(1, base_s=10, jitter=0.0, retry_after_s=120) == 120
    assert retry_delay_s(1, base_s=10, jitter=0.0, retry_after_s=3) == 10


def test_delay_is_capped() -> None:
    assert retry_delay_s(60, base_s=10, jitter=0.0) == 6 * 3600


def test_attempts_start_at_one() -> None:
    with pytest.raises(ValueError):
        retry_delay_s(0, base_s=10, jitter=0.0)


def test_temporary_retries_until_the_last_attempt() -> None:
    err = TemporaryDeliveryError("SMTP 451 busy")
    d = after_failure(err, attempts=1, max_attempts=3, now_ms=1000, base_s=10, jitter=0.0)
    assert d == Retry(11_000, "SMTP 451 busy")
    last = after_failure(err, attempts=3, max_attempts=3, now_ms=1000, base_s=10, jitter=0.0)
    assert last == Fail("gave up after 3 attempts: SMTP 451 busy")


def test_permanent_fails_at_once() -> None:
    err = PermanentDeliveryError("SMTP 550 no such user")
    assert after_failure(err, attempts=1, max_attempts=8, now_ms=0, base_s=10, jitter=0.0) == Fail(
        "SMTP 550 no such user"
    )
