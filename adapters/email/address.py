"""Email addresses: normalizing, plus-addresses (``support+<token>@shop.example``). Pure."""

from __future__ import annotations

import re
import secrets

__all__ = ["TOKEN_RE", "new_token", "normalize", "plus_address", "split_plus"]

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


def normalize(address: str) -> str:
    """Lower-case, without surrounding spaces or angle brackets."""
    return address.strip().strip("<>").strip().lower()


def split_plus(address: str) -> tuple[str, str | None]:
    """``support+ab12cd34ef@shop.example`` -> (``support@shop.example``, ``ab12cd34ef``).

    A ``+tag`` that is not shaped like one of our tokens stays part of the base address's tag, so it
    yields no token (``support+sales@`` is the base address with no token)."""
    addr = normalize(address)
    local, at, domain = addr.rpartition("@")
    if not at:
        return addr, None
    base, plus, tag = local.partition("+")
    if not plus:
        return addr, None
    return f"{base}@{domain}", (tag if TOKEN_RE.match(tag) else None)


def plus_address(address: str, token: str) -> str:
    """The reply address of one conversation: ``support+<token>@shop.example``."""
    if not TOKEN_RE.match(token):
        raise ValueError("not a conversation token")
    local, _, domain = normalize(address).rpartition("@")
    return f"{local.partition('+')[0]}+{token}@{domain}"


def new_token() -> str:
    """A random conversation token (hard to guess: it lets mail join a conversation)."""
    return secrets.token_hex(10)
