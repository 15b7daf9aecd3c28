"""ConnectionCaps: per-identity and per-address counting."""

from __future__ import annotations

from chatserver.realtime.caps import ConnectionCaps


def test_identity_cap_refuses_beyond_and_frees_on_release() -> None:
    caps = ConnectionCaps(per_identity=2, per_address=100)
    a, b = caps.acquire_identity("contact:1"), caps.acquire_identity("contact:1")
    assert a is not None and b is not None
    assert caps.acquire_identity("contact:1") is None
    assert caps.acquire_identity("contact:2") is not None  # others are not affected
    caps.release(a)
    assert caps.acquire_identity("contact:1") is not None


def test_address_cap_and_unknown_addresses() -> None:
    caps = ConnectionCaps(per_identity=100, per_address=1)
    held = caps.acquire_address("10.0.0.1")
    assert held is not None and caps.acquire_address("10.0.0.1") is None
    assert caps.acquire_address(None) is not None  # a Unix socket: nothing to count by
    caps.release(held)
    assert caps.count("addr:10.0.0.1") == 0
    caps.release(None)  # a refused connection has nothing to give back


def test_a_refusal_holds_nothing() -> None:
    caps = ConnectionCaps(per_identity=1, per_address=1)
    slot = caps.acquire_identity("agent:1")
    assert caps.acquire_identity("agent:1") is None
    assert caps.count("id:agent:1") == 1
    caps.release(slot)
    assert caps.count("id:agent:1") == 0
