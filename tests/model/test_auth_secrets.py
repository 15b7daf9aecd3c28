from __future__ import annotations

import pytest

from chatserver.auth.secrets import (
    check_csrf,
    csrf_token,
    hash_password,
    sign_visitor_token,
    verify_password,
    verify_visitor_token,
)
from chatserver.errors import Unauthorized

SECRET = "s3cret"


def test_password_hash_is_argon2id_and_verifies() -> None:
    h = hash_password("correct horse")
    assert h.startswith("$argon2id$")
    assert verify_password(h, "correct horse")
    assert not verify_password(h, "wrong")
    assert not verify_password(None, "anything")
    assert not verify_password("not-a-hash", "x")


def test_visitor_token_roundtrip() -> None:
    token = sign_visitor_token(SECRET, "ct_1", "ib_1", expires_at=2_000)
    claims = verify_visitor_token(SECRET, token, now=1_000)
    assert (claims.contact_id, claims.inbox_id) == ("ct_1", "ib_1")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # signature changed
        lambda t: "e30" + t[3:],  # payload changed
        lambda t: "garbage",
        lambda t: "",
        lambda t: "a.b.c",
    ],
)
def test_visitor_token_tampering_is_rejected(mutate: object) -> None:
    token = sign_visitor_token(SECRET, "ct_1", "ib_1", expires_at=2_000)
    assert callable(mutate)
    with pytest.raises(Unauthorized):
        verify_visitor_token(SECRET, mutate(token), now=1_000)


def test_visitor_token_other_secret_and_expiry() -> None:
    token = sign_visitor_token(SECRET, "ct_1", "ib_1", expires_at=2_000)
    with pytest.raises(Unauthorized, match="invalid"):
        verify_visitor_token("other", token, now=1_000)
    with pytest.raises(Unauthorized, match="expired"):
        verify_visitor_token(SECRET, token, now=2_000)


def test_csrf_token_is_bound_to_session_and_secret() -> None:
    tok = csrf_token(SECRET, "sess-a")
    assert check_csrf(SECRET, "sess-a", tok)
    assert not check_csrf(SECRET, "sess-b", tok)
    assert not check_csrf("other", "sess-a", tok)
    assert not check_csrf(SECRET, "sess-a", None)
