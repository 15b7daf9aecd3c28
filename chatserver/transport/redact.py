"""Secrets never reach a log line: one logging filter, installed on every handler where logging is set up.

uvicorn's access and WebSocket lines print the request path with its query string, so a visitor token in
``/ws/visitor?token=...`` (good for 30 days) or an API token would be readable by anyone who reads the
log. :func:`redact` replaces, in any text:

- the value of a ``token=`` / ``access_token=`` parameter,
- ``Bearer <credential>`` and whole ``Authorization`` header values,
- a ``token.<credential>`` WebSocket subprotocol,
- anything shaped like one of our credentials (``cst_`` API tokens, signed visitor tokens),
- a Telegram bot token in a Bot API URL (``/bot123456:ABC.../sendMessage``: httpx logs every request),

with ``[redacted]``. :class:`RedactingFilter` applies it to a record's message, its string arguments
(uvicorn's access formatter reads the arguments, so their shape is kept) and its formatted traceback.
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "[redacted]"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b((?:access_)?token=)[^&\s\"'#;]+"), r"\1" + MASK),
    (re.compile(r"(?i)(authorization[\"']?\s*[:=,]\s*[\"']?)[^\"'\r\n]+"), r"\1" + MASK),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1" + MASK),
    (re.compile(r"\b(token\.)[A-Za-z0-9._~-]+"), r"\1" + MASK),
    (re.compile(r"\bcst_[A-Za-z0-9_-]{8,}"), "cst_" + MASK),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}"), MASK),
    (re.compile(r"(/(?:file/)?bot)\d+:[A-Za-z0-9_-]+"), r"\1" + MASK),
)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_arg(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bytes):
        return redact(value.decode("latin-1")).encode("latin-1")
    if value is None or isinstance(value, int | float):
        return value  # numbers keep their type (%d)
    text = str(value)  # e.g. httpx logs an httpx.URL: masked as its text when it holds a credential
    masked = redact(text)
    return masked if masked != text else value


class RedactingFilter(logging.Filter):
    """Rewrites the record in place (it never drops one)."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact_arg(v) for k, v in record.args.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install_redaction() -> None:
    """Put the filter on every handler configured so far: the root logger's and any logger's own
    (uvicorn's ``uvicorn`` and ``uvicorn.access`` do not propagate). Call it after logging is set up."""
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())


__all__ = ["MASK", "RedactingFilter", "install_redaction", "redact"]
