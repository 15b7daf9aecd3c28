"""Twilio Programmable Messaging (SMS): form-encoded webhooks signed with ``X-Twilio-Signature``, status
callbacks, and ``Messages.json`` to send.

Config: ``account_sid``, ``auth_token`` (secret), ``from_number``, ``api_base`` (default Twilio's API).
The signature is base64(HMAC-SHA1(auth_token, URL + every POST parameter name and value, sorted by name)),
over the URL Twilio called: the shell passes the public URL of the webhook.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qsl, urlsplit

import httpx

from adapters.base import (
    Attachment,
    Channel,
    ConfigSpec,
    DeliveryState,
    DeliveryStatus,
    Event,
    Ignored,
    InboundMessage,
    MediaSource,
    Outbound,
    PartSent,
    PlatformFiles,
    Profile,
    SendResult,
    WebhookRequest,
    json_or_none,
    post,
    retry_after,
    same_secret,
    send_in_order,
)
from chatserver.errors import BadFrame, Forbidden, PermanentDeliveryError, TemporaryDeliveryError

API_BASE = "https://api.twilio.com"
SIGNATURE_HEADER = "x-twilio-signature"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'

STATUSES: dict[str, DeliveryState] = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "undelivered": "failed",
    "failed": "failed",
}
PENDING = frozenset({"accepted", "scheduled", "queued", "sending", "receiving", "received"})


def signature(auth_token: str, url: str, params: list[tuple[str, str]]) -> str:
    data = url + "".join(k + v for k, v in sorted(params, key=lambda kv: kv[0]))
    digest = hmac.new(auth_token.encode(), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def form(body: bytes) -> list[tuple[str, str]]:
    """The form parameters of a body; BadFrame (400) for bytes that are not UTF-8."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadFrame("the body is not UTF-8") from exc
    try:
        return parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    except ValueError as exc:
        raise BadFrame("the body is not a form") from exc


class Twilio(Channel):
    name: ClassVar[str] = "sms"
    spec: ClassVar[ConfigSpec] = ConfigSpec(
        required=("account_sid", "auth_token", "from_number"),
        optional=("api_base",),
        secrets=frozenset({"auth_token"}),
    )
    text_limit: ClassVar[int] = 1600
    limit_unit: ClassVar[Literal["chars", "bytes"]] = "chars"
    file_limits: ClassVar[PlatformFiles] = PlatformFiles(
        image_types=frozenset({"image/jpeg", "image/png", "image/gif"}),
        max_image_bytes=5 * 1024 * 1024,
        max_file_bytes=5 * 1024 * 1024,
        max_files=10,
        max_total_bytes=5 * 1024 * 1024,  # MMS: all media of a message together
    )

    def verify(self, request: WebhookRequest, config: Mapping[str, str]) -> None:
        given = request.header(SIGNATURE_HEADER)
        try:
            params = form(request.body)
        except BadFrame as exc:  # a body we cannot read cannot carry a valid signature
            raise Forbidden("the X-Twilio-Signature signature does not match") from exc
        if not same_secret(given, signature(config["auth_token"], request.url, params)):
            raise Forbidden("the X-Twilio-Signature signature does not match")

    def parse(self, request: WebhookRequest, config: Mapping[str, str]) -> list[Event]:
        params = dict(form(request.body))
        if params.get("AccountSid") != config.get("account_sid"):
            return [Ignored("Twilio webhook for another account")]
        if "MessageStatus" in params and "Body" not in params:
            return [parse_status(params)]
        sid, sender = params.get("MessageSid"), params.get("From")
        if not sid or not sender:
            return [Ignored("Twilio webhook without MessageSid or From")]
        attachments: list[Attachment] = []
        count = params.get("NumMedia", "0")
        for i in range(min(int(count), 10) if count.isdigit() else 0):
            url = params.get(f"MediaUrl{i}")
            mime = params.get(f"MediaContentType{i}")
            if url:
                kind = "image" if (mime or "").startswith("image/") else "file"
                attachments.append(Attachment(kind, url, mime))  # type: ignore[arg-type]
        text = params.get("Body", "")
        if not text and not attachments:
            return [Ignored("Twilio message with neither text nor media")]
        return [
            InboundMessage(
                external_id=sid,
                sender=Profile(external_id=sender, name=params.get("ProfileName") or None, phone=sender),
                text=text,
                timestamp_ms=0,
                attachments=tuple(attachments),
            )
        ]

    def parse_status_callback(self, request: WebhookRequest, config: Mapping[str, str]) -> list[Event]:
        """A status callback (``/webhooks/sms/{inbox_id}/status``) as a delivery status."""
        params = dict(form(request.body))
        if params.get("AccountSid") != config.get("account_sid"):
            return [Ignored("Twilio status callback for another account")]
        return [parse_status(params)]

    async def send(
        self,
        client: httpx.AsyncClient,
        config: Mapping[str, str],
        outbound: Outbound,
        *,
        on_part: PartSent | None = None,
    ) -> SendResult:
        if outbound.template is not None:
            raise PermanentDeliveryError("SMS has no message templates")
        base = config.get("api_base", API_BASE).rstrip("/")
        url = f"{base}/2010-04-01/Accounts/{config['account_sid']}/Messages.json"
        parts: list[dict[str, str | list[str]]] = (
            [{"Body": p} for p in self.split(outbound.text)] if outbound.text else []
        )
        media = [a.url for a in outbound.attachments]
        if media:
            if parts:
                parts[-1]["MediaUrl"] = media  # MMS: the media ride with the last part
            else:
                parts.append({"MediaUrl": media})

        async def send_part(i: int) -> str:
            data: dict[str, str | list[str]] = {"To": outbound.to, "From": config["from_number"], **parts[i]}
            if outbound.status_callback:
                data["StatusCallback"] = outbound.status_callback
            response = await post(client, url, data=data, auth=(config["account_sid"], config["auth_token"]))
            body = json_or_none(response)
            if 200 <= response.status_code < 300 and isinstance(body, dict):
                return str(body.get("sid", ""))
            raise _error(response, body)

        return await send_in_order(len(parts), outbound, send_part, on_part)

    async def media_source(
        self, client: httpx.AsyncClient, config: Mapping[str, str], attachment: Attachment
    ) -> MediaSource:
        """``MediaUrl<n>``, fetched with HTTP basic auth (account SID, auth token) when it is on the
        account's API host; the credentials never go to another host (redirects to the media CDN drop
        them)."""
        base = config.get("api_base", API_BASE).rstrip("/")
        headers: dict[str, str] = {}
        if _origin(attachment.ref) == _origin(base):
            pair = f"{config['account_sid']}:{config['auth_token']}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        return MediaSource(attachment.ref, headers=headers, mime_type=attachment.mime_type)


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def parse_status(params: Mapping[str, str]) -> Event:
    status = params.get("MessageStatus", "")
    sid = params.get("MessageSid")
    if not sid:
        return Ignored("Twilio status callback without MessageSid")
    if status in PENDING:
        return Ignored(f"Twilio status {status}")
    state = STATUSES.get(status)
    if state is None:
        return Ignored(f"Twilio status {status or 'missing'}")
    code = params.get("ErrorCode")
    return DeliveryStatus(
        state=state,
        timestamp_ms=0,
        external_id=sid,
        thread=params.get("To"),
        reason=f"Twilio error {code}" if code else None,
    )


def _error(response: httpx.Response, body: Any) -> TemporaryDeliveryError | PermanentDeliveryError:
    """Twilio's error shape: ``{"code", "message", "more_info", "status"}``."""
    detail = body if isinstance(body, dict) else {}
    code = detail.get("code")
    message = detail.get("message") or f"HTTP {response.status_code}"
    reason = f"Twilio error {code}: {message}" if code is not None else f"Twilio: {message}"
    if response.status_code == 429 or response.status_code >= 500 or code == 20429:
        wait = retry_after(response.headers.get("retry-after"), response.headers.get("date"))
        return TemporaryDeliveryError(reason, retry_after_s=wait)
    return PermanentDeliveryError(reason)


CHANNEL = Twilio()
