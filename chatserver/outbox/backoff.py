"""When to try a failed delivery again: a pure function of the attempt count and the error.

The first retry comes after ``base_s``; each later one doubles, times a jitter factor in [1, 1.25) so
that deliveries that failed together do not come back together. A receiver's own hint
(``retry_after_s``, e.g. an HTTP Retry-After) is honoured when it asks for longer. A permanent error,
or a temporary one on the last allowed attempt, ends the delivery as ``failed``.
"""

from __future__ import annotations

from dataclasses import dataclass

from chatserver.errors import DeliveryError, PermanentDeliveryError, TemporaryDeliveryError

MAX_DELAY_S = 6 * 3600.0
JITTER = 0.25


def retry_delay_s(
    attempts: int, *, base_s: float, jitter: float, retry_after_s: float | None = None
) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt (1 for the first failure).

    ``jitter`` is a number in [0, 1) (the caller's random draw), scaled to [0, JITTER)."""
    if attempts < 1:
        raise ValueError("attempts starts at 1")
    delay: float = min(base_s * 2.0 ** (attempts - 1), MAX_DELAY_S) * (
        1 + JITTER * min(max(jitter, 0.0), 1.0)
    )
    if retry_after_s is not None and retry_after_s > delay:
        delay = min(retry_after_s, MAX_DELAY_S)
    return delay


@dataclass(frozen=True, slots=True)
class Retry:
    at_ms: int
    reason: str


@dataclass(frozen=True, slots=True)
class Fail:
    reason: str


def after_failure(
    error: DeliveryError,
    *,
    attempts: int,
    max_attempts: int,
    now_ms: int,
    base_s: float,
    jitter: float,
) -> Retry | Fail:
    """The decision after attempt number ``attempts`` failed with ``error``."""
    if isinstance(error, PermanentDeliveryError) or not isinstance(error, TemporaryDeliveryError):
        return Fail(error.reason)
    if attempts >= max_attempts:
        return Fail(f"gave up after {attempts} attempts: {error.reason}")
    delay = retry_delay_s(attempts, base_s=base_s, jitter=jitter, retry_after_s=error.retry_after_s)
    return Retry(now_ms + int(delay * 1000), error.reason)
