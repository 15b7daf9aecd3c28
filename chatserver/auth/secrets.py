"""Pure credential primitives: hashing, signing and verifying tokens. No I/O.

- Agent passwords: argon2id (argon2-cffi defaults).
- API tokens and session ids: 256 random bits; only their SHA-256 is stored.
- CSRF token: HMAC(secret, "csrf:" + session id), sent back in ``X-CSRF-Token`` on unsafe requests.
- Visitor tokens: ``base64url(json{c, i, exp}).base64url(HMAC-SHA256(secret, "visitor." + payload))``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import orjson
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from chatserver.errors import Unauthorized

_hasher = PasswordHasher()
API_TOKEN_PREFIX = "cst_"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        _hasher.hash(password)  # same cost either way: do not reveal which accounts have passwords
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_api_token() -> str:
    return API_TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def _mac(secret: str, purpose: str, value: str) -> bytes:
    return hmac.new(secret.encode(), f"{purpose}.{value}".encode(), hashlib.sha256).digest()


def csrf_token(secret: str, session_id: str) -> str:
    return _b64(_mac(secret, "csrf", session_id))


def check_csrf(secret: str, session_id: str, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(csrf_token(secret, session_id), presented)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class VisitorClaims:
    contact_id: str
    inbox_id: str
    expires_at: int


def sign_visitor_token(secret: str, contact_id: str, inbox_id: str, expires_at: int) -> str:
    payload = _b64(orjson.dumps({"c": contact_id, "i": inbox_id, "exp": expires_at}))
    return f"{payload}.{_b64(_mac(secret, 'visitor', payload))}"


def verify_visitor_token(secret: str, token: str, now: int) -> VisitorClaims:
    """Return the claims of a valid, unexpired token; raise Unauthorized otherwise."""
    try:
        payload, sig = token.split(".", 1)
        good = hmac.compare_digest(_unb64(sig), _mac(secret, "visitor", payload))
    except (ValueError, TypeError) as exc:
        raise Unauthorized("malformed visitor token") from exc
    if not good:
        raise Unauthorized("invalid visitor token")
    try:
        raw = orjson.loads(_unb64(payload))
        claims = VisitorClaims(str(raw["c"]), str(raw["i"]), int(raw["exp"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise Unauthorized("malformed visitor token") from exc
    if claims.expires_at <= now:
        raise Unauthorized("visitor token expired")
    return claims
