"""Which pages may use a widget inbox: its allowed origins, plus this server's own origin (the demo page
and any page the server serves itself work on whatever host and port it was started on)."""

from __future__ import annotations

import logging

from starlette.requests import HTTPConnection

from chatserver.model.types import Inbox

log = logging.getLogger("chatserver.widget")


def own_origin(conn: HTTPConnection) -> str | None:
    host = conn.headers.get("host")
    if not host:
        return None
    scheme = {"ws": "http", "wss": "https"}.get(conn.url.scheme, conn.url.scheme)
    return f"{scheme}://{host}"


def origin_allowed(inbox: Inbox, conn: HTTPConnection, *, public_url: str | None = None) -> bool:
    """Allowed, or False after logging the refused origin and the inbox (an operator's first question)."""
    origin = conn.headers.get("origin")
    if inbox.allows_origin(origin):
        return True
    assert origin is not None
    origin = origin.rstrip("/")
    if origin == own_origin(conn) or (public_url and origin == public_url.rstrip("/")):
        return True
    log.warning(
        "widget refused origin %s for inbox %s (%s); allowed: %s. Add it with "
        "`chatserver update-inbox --inbox %s --allowed-origin %s`",
        origin[:200],
        inbox.id,
        inbox.name,
        ", ".join(inbox.allowed_origins),
        inbox.id,
        origin[:200],
    )
    return False
