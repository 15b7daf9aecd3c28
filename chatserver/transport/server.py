"""The uvicorn configuration of a chatserver process, in one place for ``chatserver serve`` and every
other process that serves the app (the test harness runs the very same configuration)."""

from __future__ import annotations

from typing import Any

import uvicorn

from chatserver.settings import Settings
from chatserver.transport import gcpolicy
from chatserver.transport.deadlines import deadline_protocol
from chatserver.transport.redact import install_redaction
from chatserver.transport.websocket import LeanWebSocketProtocol


def uvicorn_config(app: Any, settings: Settings, *, host: str, port: int, **overrides: Any) -> uvicorn.Config:
    """uvicorn settings for ``app``: read deadlines on HTTP connections, the lean WebSocket protocol and
    its limits, and the redacting log filter installed once uvicorn has configured logging."""
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "http": deadline_protocol(settings.header_timeout_s, settings.body_timeout_s),
        "ws": LeanWebSocketProtocol,  # uvicorn's websockets-sansio, leaner per connection
        "ws_max_size": settings.max_frame_bytes,
        "ws_per_message_deflate": False,
        "ws_ping_interval": settings.heartbeat_s,
        "ws_ping_timeout": settings.heartbeat_s,
        "log_level": settings.log_level,
        "lifespan": "on",
        **overrides,
    }
    config = uvicorn.Config(app, **options)
    install_redaction()
    return config


class _Server(uvicorn.Server):
    """uvicorn's server; once the app has started and the sockets are bound, the startup heap is frozen
    (transport/gcpolicy.py)."""

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            gcpolicy.freeze_startup_heap()


def serve(app: Any, settings: Settings, *, host: str, port: int, **overrides: Any) -> None:
    """Run the server until it is told to stop (blocking); exit with status 3 when it cannot start
    (as ``uvicorn.run`` does), 130 after a clean stop on SIGINT. The garbage collector runs under the
    serving policy (transport/gcpolicy.py)."""
    gcpolicy.apply_thresholds()
    server = _Server(uvicorn_config(app, settings, host=host, port=port, **overrides))
    try:
        server.run()
    except KeyboardInterrupt:
        # uvicorn re-raises Ctrl-C / SIGINT once it has shut down cleanly: a normal stop, not a crash
        # (no traceback on the operator's terminal); the exit status says it was interrupted
        raise SystemExit(130) from None
    if not server.started:
        raise SystemExit(3)


__all__ = ["serve", "uvicorn_config"]
