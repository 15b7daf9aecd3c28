"""Header safety for outgoing mail: any text (a subject, a contact's name) made safe for a header.

CR and LF are what header injection needs (``Subject: hi\\r\\nBcc: victim@x``): they and every other
control character become spaces, runs of whitespace collapse, and non-ASCII text is RFC 2047 encoded.
Pure: no I/O.
"""

from __future__ import annotations

import re
from email.header import Header
from email.utils import formataddr

__all__ = ["HeaderError", "encode_header", "format_address", "safe_header_text"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
_SPACES = re.compile(r"\s+")
MAX_HEADER_CHARS = 900
"""RFC 5322 allows 998 octets per line; folding handles longer encoded values, this bounds the text."""


class HeaderError(ValueError):
    """An address that cannot be used in a header at all (never silently "fixed")."""


def safe_header_text(value: str, *, max_chars: int = MAX_HEADER_CHARS) -> str:
    """One line of text: control characters (CR, LF, NUL, ...) become spaces, whitespace collapses,
    the result is stripped and cut to ``max_chars``."""
    text = _SPACES.sub(" ", _CONTROL.sub(" ", value)).strip()
    return text[:max_chars].rstrip()


def encode_header(value: str, *, max_chars: int = MAX_HEADER_CHARS) -> str:
    """``value`` made safe, then RFC 2047 encoded (and folded) when it is not plain ASCII."""
    text = safe_header_text(value, max_chars=max_chars)
    if text.isascii():
        return text
    return Header(text, "utf-8").encode()


def format_address(name: str | None, address: str) -> str:
    """``"Name" <address>``, the name made safe and encoded; an address with a control character,
    a space or no single ``@`` raises :class:`HeaderError`."""
    if _CONTROL.search(address) or " " in address or address.count("@") != 1:
        raise HeaderError("not a usable email address")
    local, domain = address.split("@")
    if not local or not domain:
        raise HeaderError("not a usable email address")
    clean = safe_header_text(name or "", max_chars=200)
    return formataddr((clean, address), charset="utf-8") if clean else address
