"""The password rules: length, common passwords, email-derived passwords."""

from __future__ import annotations

import pytest

from chatserver.auth.passwords import MIN_LENGTH, common_passwords, password_problem

COMMON = common_passwords()


def rule(password: str, email: str | None = "ann.lee@shop.example") -> str | None:
    problem = password_problem(password, email, COMMON)
    return None if problem is None else problem.rule


def test_the_bundled_list_has_hundreds_of_lowercase_entries() -> None:
    assert len(COMMON) >= 300
    assert {"123456", "password", "qwertyuiop", "1234567890", "iloveyou"} <= COMMON
    assert all(p == p.lower() and not p.startswith("#") for p in COMMON)


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        ("12345678", "too_short"),
        ("password", "too_short"),
        ("x" * (MIN_LENGTH - 1), "too_short"),
        ("x" * 1001, "too_long"),
        ("1234567890", "common"),
        ("QwertyUiop", "common"),
        ("password123!", "common"),
        ("Password2024", "common"),
        ("iloveyou!!!!", "common"),
        ("ann.lee@shop.example", "email"),
        ("ANN.LEE@SHOP.EXAMPLE", "email"),
        ("ann.lee12345", "email"),
        ("my-ann.lee-pass", "email"),
        ("AnnLee-1984-x", "email"),
        ("correct horse battery", None),
        ("pw-long-one", None),
        ("passwordless-mountain", None),
    ],
)
def test_password_rules(password: str, expected: str | None) -> None:
    assert rule(password) == expected


def test_short_local_parts_refuse_only_themselves_plus_digits_and_symbols() -> None:
    assert rule("bob-the-builder-9", "bob@x.test") is None  # containing "bob" is too weak a signal
    assert rule("bob1234567", "bob@x.test") == "email"
    assert rule("Bob@x.test!!", "bob@x.test") == "email"


def test_no_email_means_no_email_rule() -> None:
    assert rule("ann.lee12345", None) is None
