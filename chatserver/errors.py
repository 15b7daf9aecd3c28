"""One exception root for the whole server.

::

    ChatError
    ├── ConfigError                 bad settings; the process refuses to start
    ├── ApiError                    code + HTTP status + message (+ data): REST 4xx/5xx, WebSocket `error`
    │   ├── BadFrame                  (bad_frame, 400) JSON that is not a frame object
    │   ├── UnknownType               (unknown_type, 400)
    │   ├── Invalid                   (invalid, 422) missing or wrong-typed fields
    │   ├── NotFound                  (not_found, 404)
    │   ├── MethodNotAllowed          (method_not_allowed, 405) REST only, with an Allow header
    │   ├── Forbidden                 (forbidden, 403)
    │   ├── Unauthorized              (unauthorized, 401)
    │   ├── RateLimited               (rate_limited, 429)
    │   ├── TooLarge                  (too_large, 413)
    │   ├── UnsupportedMediaType      (unsupported_media_type, 415) REST body not JSON
    │   ├── Conflict                  (conflict, 409)
    │   │   └── Duplicate               a uniqueness/integrity violation in the database
    │   ├── Unavailable               (unavailable, 503)
    │   └── Internal                  (internal, 500) a bug: logged with its traceback
    ├── StoreError                  the database failed or is unreachable (unavailable, 503)
    └── DeliveryError               an outbound delivery (email, channel reply, webhook) failed
        ├── TemporaryDeliveryError    try again later (4xx SMTP, 429, 5xx, timeout); retry_after_s?
        └── PermanentDeliveryError    will never succeed as it is (5xx SMTP, 4xx API): failed + reason

SQLAlchemy and driver errors become ``Duplicate`` or ``StoreError`` in one place, the database layer
(``chatserver/store/db.py``). :func:`api_error` turns any exception into the ApiError a client sees; the
REST layer renders it as ``{"error": {"code", "message"}}`` with its status, the WebSocket layer as an
``error`` frame echoing the client's ``ref``.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

log = logging.getLogger(__name__)


class ChatError(Exception):
    """Root of every error the server raises on purpose."""


class ConfigError(ChatError):
    """The settings are unusable."""


class StoreError(ChatError):
    """The database failed; the operation changed nothing."""


class DeliveryError(ChatError):
    """An outbound delivery failed; ``reason`` is shown to agents, so it never holds a secret."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TemporaryDeliveryError(DeliveryError):
    """The receiver may accept it later; ``retry_after_s`` is its own hint (Retry-After), if any."""

    def __init__(self, reason: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class PermanentDeliveryError(DeliveryError):
    """The receiver refused it for good; retrying the same delivery cannot help."""


class ApiError(ChatError):
    code: ClassVar[str] = "internal"
    status: ClassVar[int] = 500

    def __init__(self, message: str, *, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data or {}

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data:
            body["data"] = self.data
        return body


class BadFrame(ApiError):
    code = "bad_frame"
    status = 400


class UnknownType(ApiError):
    code = "unknown_type"
    status = 400


class Invalid(ApiError):
    code = "invalid"
    status = 422


class NotFound(ApiError):
    code = "not_found"
    status = 404


class MethodNotAllowed(ApiError):
    code = "method_not_allowed"
    status = 405


class Forbidden(ApiError):
    code = "forbidden"
    status = 403


class Unauthorized(ApiError):
    code = "unauthorized"
    status = 401


class RateLimited(ApiError):
    code = "rate_limited"
    status = 429


class TooLarge(ApiError):
    code = "too_large"
    status = 413


class UnsupportedMediaType(ApiError):
    code = "unsupported_media_type"
    status = 415


class Conflict(ApiError):
    code = "conflict"
    status = 409


class Duplicate(Conflict):
    """The database refused a write as a duplicate (a unique key or another integrity constraint)."""


class Unavailable(ApiError):
    code = "unavailable"
    status = 503


class Internal(ApiError):
    code = "internal"
    status = 500


def api_error(exc: BaseException, *, context: str = "request") -> ApiError:
    """The one mapping from an exception to what the client is told (REST and WebSocket alike)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, StoreError):
        return Unavailable(str(exc) or "the database is unavailable; try again")
    log.error("%s failed", context, exc_info=exc)
    return Internal("internal error")
