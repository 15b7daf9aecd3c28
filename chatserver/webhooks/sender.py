"""One webhook attempt: check the URL again (DNS rebinding), POST the signed event to the address that
was checked, within a deadline, reading at most :data:`MAX_RESPONSE` bytes of the answer.

2xx is delivered; 410 Gone is permanent (the receiver says it is gone); any other answer, a timeout or a
connection failure is temporary (retried with backoff), until :data:`MAX_AGE_S` after the event.
Channel adapters' replies (kind ``adapter``) go the same way, to the adapter's URL.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx
import orjson

from chatserver.errors import Invalid, NotFound, PermanentDeliveryError, TemporaryDeliveryError
from chatserver.model.ids import now_ms
from chatserver.outbox.registry import Delivery
from chatserver.webhooks import signing
from chatserver.webhooks.ssrf import check_url

log = logging.getLogger(__name__)

MAX_RESPONSE = 64 * 1024
MAX_AGE_S = 24 * 3600
MAX_ATTEMPTS = 24
"""Attempts of one webhook delivery: with the outbox's doubling backoff (capped at 6 h) this covers a
day; :data:`MAX_AGE_S` ends it in any case."""
USER_AGENT = "chatserver-webhooks/1"

Target = tuple[str, str, Mapping[str, Any]]
"""(url, secret, event) of one delivery."""


class HttpPoster:
    """POST signed JSON to a URL, bounded in time and in what it reads back."""

    def __init__(self, client: httpx.AsyncClient, *, timeout_s: float, allow_private: bool) -> None:
        self.client = client
        self.timeout_s = timeout_s
        self.allow_private = allow_private

    async def post(self, url: str, secret: str, event: Mapping[str, Any]) -> None:
        try:
            target = await check_url(url, allow_private=self.allow_private)
        except Invalid as exc:  # the name now points somewhere it may not: never connect there
            raise TemporaryDeliveryError(exc.message) from None
        body = orjson.dumps(dict(event))
        headers = {
            "Host": target.host_header,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            signing.HEADER: signing.header(secret, int(time.time()), body),
            "X-Chatserver-Event": str(event.get("type", "")),
            "X-Chatserver-Event-Id": str(event.get("id", "")),
        }
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        try:
            async with asyncio.timeout(self.timeout_s):
                request = self.client.build_request(
                    "POST", target.connect_url, content=body, headers=headers, extensions=extensions
                )
                response = await self.client.send(request, stream=True, follow_redirects=False)
                try:
                    read = 0
                    async for chunk in response.aiter_raw():
                        read += len(chunk)
                        if read >= MAX_RESPONSE:
                            break  # what matters is the status; the rest is not read
                finally:
                    await response.aclose()
        except TimeoutError:
            raise TemporaryDeliveryError(f"no answer within {self.timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise TemporaryDeliveryError(f"connection failed: {type(exc).__name__}") from None
        status = response.status_code
        if 200 <= status < 300:
            return
        if status == 410:
            raise PermanentDeliveryError("the receiver answered 410 Gone")
        retry_after = _retry_after(response.headers.get("retry-after"))
        raise TemporaryDeliveryError(f"the receiver answered {status}", retry_after_s=retry_after)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class WebhookSender:
    """The outbox sender for ``webhook`` (and ``adapter``) deliveries: ``resolve`` finds where one goes."""

    def __init__(self, poster: HttpPoster, resolve: Callable[[Delivery], Awaitable[Target]]) -> None:
        self.poster = poster
        self.resolve = resolve

    async def __call__(self, d: Delivery) -> None:
        if now_ms() - d.created_at > MAX_AGE_S * 1000:
            raise PermanentDeliveryError("undelivered for 24 hours: given up")
        try:
            url, secret, event = await self.resolve(d)
        except NotFound as exc:
            raise PermanentDeliveryError(f"{exc.message}: not sent") from None
        await self.poster.post(url, secret, event)
