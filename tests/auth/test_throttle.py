"""The login throttle policy: a pure function of the failures and ``now`` (no clock)."""

from __future__ import annotations

import pytest

from chatserver.auth.throttle import (
    ALLOW,
    Decision,
    Failures,
    ThrottlePolicy,
    account_key,
    address_key,
    combine,
    decide,
)

POLICY = ThrottlePolicy(free_failures=3, base_lockout_s=2.0, max_lockout_s=60.0, window_s=3600.0)
T = 1_000_000.0


def test_no_failures_and_free_failures_are_allowed() -> None:
    assert decide(POLICY, None, T) == ALLOW
    for n in range(1, 4):
        assert decide(POLICY, Failures(n, T), T) == ALLOW


def test_each_failure_past_the_free_ones_doubles_the_lockout_up_to_the_cap() -> None:
    assert decide(POLICY, Failures(4, T), T) == Decision(False, 2)
    assert decide(POLICY, Failures(5, T), T) == Decision(False, 4)
    assert decide(POLICY, Failures(6, T), T) == Decision(False, 8)
    assert decide(POLICY, Failures(10, T), T) == Decision(False, 60)
    assert decide(POLICY, Failures(10_000, T), T) == Decision(False, 60)  # no overflow


def test_lockout_counts_from_the_last_failure_and_rounds_up() -> None:
    f = Failures(6, T)  # locked for 8 s
    assert decide(POLICY, f, T + 0.5) == Decision(False, 8)
    assert decide(POLICY, f, T + 7.01) == Decision(False, 1)
    assert decide(POLICY, f, T + 8) == ALLOW
    assert decide(POLICY, f, T + 100) == ALLOW


def test_failures_are_forgotten_after_the_window() -> None:
    short = ThrottlePolicy(free_failures=1, base_lockout_s=600, max_lockout_s=600, window_s=30)
    assert decide(short, Failures(5, T), T + 29) == Decision(False, 571)
    assert decide(short, Failures(5, T), T + 30) == ALLOW


def test_combine_takes_the_longest_wait_of_the_refused() -> None:
    assert combine([ALLOW, ALLOW]) == ALLOW
    assert combine([Decision(False, 3), ALLOW, Decision(False, 9)]) == Decision(False, 9)


def test_account_key_ignores_case_and_spaces_and_hides_the_email() -> None:
    assert account_key(" Ann@X.test ") == account_key("ann@x.test")
    assert "ann" not in account_key("ann@x.test")
    assert account_key("ann@x.test") != account_key("bob@x.test")


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.7", "addr:203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "addr:2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::9", "addr:2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "addr:203.0.113.7"),
        (None, "addr:unknown"),
        ("testclient", "addr:testclient"),
    ],
)
def test_address_key_groups_an_ipv6_64(host: str | None, key: str) -> None:
    assert address_key(host) == key
