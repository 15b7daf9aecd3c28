"""Agents' avatars: which URLs an agent's ``avatar_url`` may hold (pure; no I/O).

Only ``https://host/...`` (no credentials, no control characters, no spaces or quotes) or a path on the
chat server itself (``/files/anna.png``: one leading slash, never ``//host`` or a backslash) are accepted.
Visitors' browsers load it as an ``<img src>`` (the widget resolves a path against the chat server and
checks the scheme again), so ``javascript:``, ``data:`` and plain ``http:`` are refused here.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from chatserver.errors import Invalid

MAX_AVATAR_URL = 500
_SAFE = re.compile(r"^[A-Za-z0-9\-._~:/?#\[\]@!$&()*+,;=%]+$")
"""RFC 3986 characters, minus quotes (an ``'`` is allowed there, but never needed here)."""
_HOST = re.compile(r"^[A-Za-z0-9.-]+(?::[0-9]{1,5})?$")


def avatar_url(raw: Any, *, field: str = "avatar_url") -> str | None:
    """The cleaned URL, None to clear it (null or ""); Invalid otherwise (``data.field``)."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise Invalid(f"{field} must be a string", data={"field": field})
    url = raw.strip()
    if not url:
        return None
    if len(url) > MAX_AVATAR_URL:
        raise Invalid(f"{field} is at most {MAX_AVATAR_URL} characters", data={"field": field})
    if not _SAFE.match(url):
        raise Invalid(f"{field} has characters a URL cannot hold unescaped", data={"field": field})
    if url.startswith("/"):
        if url.startswith("//") or ".." in url.split("?")[0].split("/"):
            raise Invalid(f"{field} must be https:// or a path on this server", data={"field": field})
        return url
    parts = urlsplit(url)
    if parts.scheme.lower() != "https" or not parts.netloc:
        raise Invalid(f"{field} must be https:// or a path on this server", data={"field": field})
    if "@" in parts.netloc or not _HOST.match(parts.netloc):
        raise Invalid(f"{field} has a bad host", data={"field": field})
    return url


__all__ = ["MAX_AVATAR_URL", "avatar_url"]
