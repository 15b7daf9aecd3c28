"""No credential survives a log line: the redaction patterns, and the filter on real handlers."""

from __future__ import annotations

import io
import logging

import pytest

from chatserver.auth.secrets import new_api_token, sign_visitor_token
from chatserver.transport.redact import MASK, RedactingFilter, install_redaction, redact

VISITOR = sign_visitor_token("s" * 40, "ct_01ABC", "ib_01DEF", 1_900_000_000_000)
API = new_api_token()


@pytest.mark.parametrize(
    "line",
    [
        f'127.0.0.1:5000 - "WebSocket /ws/visitor?token={VISITOR}" [accepted]',
        f'127.0.0.1:5000 - "GET /ws/agent?x=1&token={API}&y=2 HTTP/1.1" 101',
        f"Authorization: Bearer {API}",
        f"headers={{'authorization': 'Bearer {API}'}}",
        f"offered subprotocols ['chatserver.v1', 'token.{VISITOR}']",
        f"lookup failed for {API}",
        f"bad visitor credential {VISITOR} from 10.0.0.1",
        f"/ws/visitor?access_token={VISITOR}",
    ],
    ids=["query", "query-middle", "bearer", "header-dict", "subprotocol", "api", "visitor", "other-param"],
)
def test_every_credential_shape_is_masked(line: str) -> None:
    out = redact(line)
    assert VISITOR not in out and API not in out and API[4:] not in out
    assert MASK in out


def test_a_bot_token_in_a_url_logged_by_httpx_is_masked() -> None:
    import httpx

    logger, out = _logger_with_stream("test.redact.httpx", logging.Formatter("%(message)s"))
    token = "123456789:AAH4kS-secret_Value"
    try:
        install_redaction()
        for url in (
            f"https://api.example/bot{token}/sendMessage",
            f"https://api.example/file/bot{token}/a.jpg",
        ):
            logger.info('HTTP Request: %s %s "%s %d %s"', "POST", httpx.URL(url), "HTTP/1.1", 200, "OK")
    finally:
        logging.getLogger("test.redact.httpx").handlers = []
    text = out.getvalue()
    assert token not in text and "secret_Value" not in text
    assert text.count("/bot" + MASK) == 2 and '"HTTP/1.1 200 OK"' in text


def test_ordinary_lines_are_left_alone() -> None:
    line = '127.0.0.1:5000 - "GET /api/v1/conversations?limit=50 HTTP/1.1" 200'
    assert redact(line) == line


def _logger_with_stream(name: str, fmt: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(fmt)
    logger = logging.getLogger(name)
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, out


def test_uvicorns_access_formatter_still_gets_its_arguments() -> None:
    from uvicorn.logging import AccessFormatter

    logger, out = _logger_with_stream(
        "test.redact.access", AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s')
    )
    try:
        install_redaction()
        logger.info(
            '%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", f"/ws/visitor?token={VISITOR}", "1.1", 101
        )
    finally:
        logger.handlers = []
    text = out.getvalue()
    assert VISITOR not in text and f"/ws/visitor?token={MASK}" in text and "101" in text


def test_tracebacks_are_redacted_too() -> None:
    logger, out = _logger_with_stream("test.redact.exc", logging.Formatter("%(message)s"))
    logger.handlers[0].addFilter(RedactingFilter())
    try:
        try:
            raise ValueError(f"cannot use {API}")
        except ValueError:
            logger.exception("failed for %s", f"Bearer {API}")
    finally:
        logger.handlers = []
    text = out.getvalue()
    assert "ValueError" in text and API not in text
