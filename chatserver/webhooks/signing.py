"""``X-Chatserver-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``.

Pure functions: the receiver's check is :func:`verify` (constant-time compare, with a tolerance on
``t`` against replays). docs/adapters.md has a test vector.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Chatserver-Signature"
TOLERANCE_S = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return mac.hexdigest()


def header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(secret: str, value: str, body: bytes, *, now: int, tolerance_s: int = TOLERANCE_S) -> bool:
    """True if ``value`` (the header) signs ``body`` with ``secret`` and its ``t`` is recent."""
    parts: dict[str, list[str]] = {}
    for item in value.split(","):
        key, sep, val = item.strip().partition("=")
        if sep:
            parts.setdefault(key, []).append(val)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in parts.get("v1", []))
