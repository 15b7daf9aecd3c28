"""Security headers on every HTTP response, from one pure ASGI middleware (it only rewrites the
``http.response.start`` message, so streaming and WebSockets are untouched).

- everywhere (API, widget, console, errors): ``X-Content-Type-Options: nosniff`` and
  ``Referrer-Policy: strict-origin-when-cross-origin``;
- the console (``/console/...``) also gets a Content-Security-Policy with ``default-src 'self'`` and no
  inline script or style, and is never framed (``frame-ancestors 'none'``, ``X-Frame-Options: DENY``).

The widget and the demo page are made to be embedded in other sites: they are not framed-protected.
A header the endpoint set itself is kept.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONSOLE_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
EVERYWHERE: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
)
CONSOLE: tuple[tuple[bytes, bytes], ...] = (
    *EVERYWHERE,
    (b"content-security-policy", CONSOLE_CSP.encode()),
    (b"x-frame-options", b"DENY"),
)


def headers_for(path: str) -> tuple[tuple[bytes, bytes], ...]:
    """The security headers of a response to ``path``."""
    if path == "/console" or path.startswith("/console/"):
        return CONSOLE
    return EVERYWHERE


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = headers_for(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in extra if h[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
