"""Signed visitor identity: the site's backend tells us who a logged-in visitor is.

``hash = hex HMAC-SHA256(identity_secret, id + ":" + expires)`` where ``expires`` is Unix seconds; each
widget inbox has its own ``identity_secret`` (``chatserver inbox-secret --inbox ID``). :func:`verify` is
pure: a missing, expired or wrong hash makes the visitor anonymous, and the reason goes back to the
widget, which prints it in the site's console (never the secret or the expected hash).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_USER_ID = 200
MAX_LIFETIME_S = 366 * 24 * 3600
"""An ``expires`` further away than this is refused: a hash must not be valid forever."""


def new_secret() -> str:
    return secrets.token_hex(32)


def identity_hash(secret: str, user_id: str, expires: int) -> str:
    return hmac.new(secret.encode(), f"{user_id}:{expires}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class VerifiedUser:
    id: str
    name: str | None
    email: str | None


@dataclass(frozen=True, slots=True)
class Refused:
    reason: str
    """e.g. ``expired``, ``bad_hash``, ``missing_hash`` (see :func:`verify`)."""


def verify(secret: str | None, user: Any, now_s: float) -> VerifiedUser | Refused:
    """Check a ``user`` object ``{id, name?, email?, expires, hash}`` from the widget (constant-time)."""
    if not isinstance(user, Mapping):
        return Refused("malformed")
    user_id = user.get("id")
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        user_id = str(user_id)
    if not isinstance(user_id, str) or not 0 < len(user_id) <= MAX_USER_ID:
        return Refused("missing_id")
    digest = user.get("hash")
    if not isinstance(digest, str) or not digest:
        return Refused("missing_hash")
    expires = user.get("expires")
    if isinstance(expires, bool) or not isinstance(expires, int):
        return Refused("missing_expires")
    if secret is None:
        return Refused("no_secret")
    good = hmac.compare_digest(digest.lower().encode(), identity_hash(secret, user_id, expires).encode())
    if not good:
        return Refused("bad_hash")
    if expires <= now_s:
        return Refused("expired")
    if expires > now_s + MAX_LIFETIME_S:
        return Refused("expires_too_far")
    name = user.get("name") if isinstance(user.get("name"), str) else None
    email = user.get("email") if isinstance(user.get("email"), str) else None
    return VerifiedUser(user_id, (name or "")[:200] or None, (email or "")[:254] or None)


REASONS = {
    "malformed": "user must be an object {id, name?, email?, expires, hash}",
    "missing_id": "user.id is missing (a string of at most 200 characters)",
    "missing_hash": "user.hash is missing: compute it on your server (see the identity documentation)",
    "missing_expires": "user.expires is missing (Unix seconds)",
    "no_secret": "this inbox has no identity secret yet: run `chatserver inbox-secret --inbox ID`",
    "bad_hash": "user.hash does not match: HMAC-SHA256(identity_secret, id + ':' + expires) in hex",
    "expired": "user.expires is in the past: compute a fresh hash",
    "expires_too_far": "user.expires is more than a year away",
}
