"""Meta platforms over the Graph API: Messenger, Instagram and the WhatsApp Cloud API.

What they share is here once: the ``hub.*`` verification handshake, the ``X-Hub-Signature-256`` HMAC over
the raw body, the Graph error shape and its mapping to retryable or permanent. What differs stays explicit
in each class: the webhook envelope (``messaging`` vs ``changes``), the send URL and body, the text limit
(Instagram counts bytes), templates (WhatsApp only) and the 24-hour window (:func:`whatsapp_window`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import httpx

from adapters.base import (
    Attachment,
    Channel,
    ConfigSpec,
    DeliveryState,
    DeliveryStatus,
    Echo,
    Event,
    Ignored,
    InboundMessage,
    MediaSource,
    Outbound,
    OutboundAttachment,
    PartSent,
    PlatformFiles,
    Profile,
    SendResult,
    Template,
    WebhookRequest,
    decode_json,
    get,
    json_or_none,
    post,
    retry_after,
    same_secret,
    send_in_order,
)
from chatserver.errors import Forbidden, Invalid, PermanentDeliveryError, TemporaryDeliveryError

GRAPH_BASE = "https://graph.facebook.com"
GRAPH_VERSION = "v21.0"
SIGNATURE_HEADER = "x-hub-signature-256"
WHATSAPP_WINDOW_S = 24 * 3600

RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, 80007, 130429, 131048, 131056})
"""Graph error codes that mean 'too many requests, later': retried."""
TRANSIENT_CODES = frozenset({1, 2, 131000, 131016})
"""Unknown/service errors Meta documents as temporary."""


def signature(app_secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


class GraphChannel(Channel):
    """What Messenger, Instagram and WhatsApp share."""

    def handshake(self, query: Mapping[str, str], config: Mapping[str, str]) -> str:
        if query.get("hub.mode") != "subscribe" or not same_secret(
            query.get("hub.verify_token"), config.get("verify_token")
        ):
            raise Forbidden("the verify token does not match")
        return query.get("hub.challenge", "")

    def verify(self, request: WebhookRequest, config: Mapping[str, str]) -> None:
        given = request.header(SIGNATURE_HEADER)
        if not same_secret(given, signature(config["app_secret"], request.body)):
            raise Forbidden("the X-Hub-Signature-256 signature does not match")

    @staticmethod
    def messages_url(config: Mapping[str, str], node: str) -> str:
        return f"{config.get('graph_base', GRAPH_BASE).rstrip('/')}/{GRAPH_VERSION}/{node}/messages"

    @staticmethod
    async def graph_post(
        client: httpx.AsyncClient, url: str, token: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        response = await post(client, url, json=body, headers={"Authorization": f"Bearer {token}"})
        data = json_or_none(response)
        if 200 <= response.status_code < 300 and isinstance(data, dict):
            return data
        raise graph_error(response, data)


def graph_error(response: httpx.Response, data: Any) -> TemporaryDeliveryError | PermanentDeliveryError:
    """Map a Graph error (``{"error": {"message", "type", "code", "fbtrace_id"}}``) to a delivery error."""
    error = data.get("error") if isinstance(data, dict) else None
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    message = error.get("message") or f"HTTP {response.status_code}"
    reason = f"Graph API error {code}: {message}" if code is not None else f"Graph API: {message}"
    wait = retry_after(response.headers.get("retry-after"), response.headers.get("date"))
    if (
        response.status_code == 429
        or response.status_code >= 500
        or code in RATE_LIMIT_CODES
        or code in TRANSIENT_CODES
        or error.get("is_transient") is True
    ):
        return TemporaryDeliveryError(reason, retry_after_s=wait)
    return PermanentDeliveryError(reason)


# -- Messenger and Instagram: the "messaging" envelope ------------------------------------------------------


class MessagingChannel(GraphChannel):
    """Messenger and Instagram: ``entry[].messaging[]`` events; send ``{recipient, message}``."""

    object_name: ClassVar[str]
    spec: ClassVar[ConfigSpec] = ConfigSpec(
        required=("page_id", "page_access_token", "app_secret", "verify_token"),
        optional=("graph_base",),
        secrets=frozenset({"page_access_token", "app_secret", "verify_token"}),
    )

    def send_node(self, config: Mapping[str, str]) -> str:
        raise NotImplementedError

    def parse(self, request: WebhookRequest, config: Mapping[str, str]) -> list[Event]:
        data = decode_json(request.body)
        if not isinstance(data, dict) or data.get("object") != self.object_name:
            return [Ignored(f"not a {self.name} webhook (object {_kind(data)})")]
        events: list[Event] = []
        for entry in _list(data.get("entry")):
            for item in _list(entry.get("messaging")):
                events += self._events(item)
        return events or [Ignored(f"{self.name} webhook without messaging events")]

    def _events(self, item: dict[str, Any]) -> list[Event]:
        """One ``messaging`` item: a message, an echo, or receipts (one per message id)."""
        delivery = item.get("delivery")
        if isinstance(delivery, dict):
            sender = item.get("sender")
            psid = sender.get("id") if isinstance(sender, dict) else None
            stamp = item.get("timestamp")
            ts = stamp if isinstance(stamp, int) else 0
            watermark = delivery.get("watermark") if isinstance(delivery.get("watermark"), int) else None
            mids = [m for m in _list_any(delivery.get("mids")) if isinstance(m, str)]
            if not mids:  # watermark only: everything sent before it was delivered
                return [DeliveryStatus("delivered", ts, None, psid, watermark)]
            return [DeliveryStatus("delivered", ts, m, psid, watermark) for m in mids]
        return [self._event(item)]

    def _event(self, item: dict[str, Any]) -> Event:
        sender = item.get("sender")
        psid = sender.get("id") if isinstance(sender, dict) else None
        timestamp = item.get("timestamp")
        ts = int(timestamp) if isinstance(timestamp, int) else 0
        message = item.get("message")
        if isinstance(message, dict):
            mid = message.get("mid")
            if not isinstance(mid, str):
                return Ignored(f"{self.name} message without mid")
            if message.get("is_echo"):
                return Echo(mid)
            if not isinstance(psid, str):
                return Ignored(f"{self.name} message without sender")
            text = message.get("text") if isinstance(message.get("text"), str) else ""
            attachments = tuple(
                a for a in (_messaging_attachment(x) for x in _list(message.get("attachments"))) if a
            )
            if not text and not attachments:
                return Ignored(f"{self.name} message with neither text nor a file")
            reply = message.get("reply_to")
            return InboundMessage(
                external_id=mid,
                sender=Profile(external_id=psid),
                text=text or "",
                timestamp_ms=ts,
                attachments=attachments,
                reply_to=reply.get("mid") if isinstance(reply, dict) else None,
            )
        read = item.get("read")
        if isinstance(read, dict):
            watermark = read.get("watermark") if isinstance(read.get("watermark"), int) else None
            return DeliveryStatus("read", ts, None, psid, watermark)
        kinds = sorted(k for k in item if k not in ("sender", "recipient", "timestamp"))
        return Ignored(f"{self.name} event of type {kinds[0] if kinds else 'unknown'}")

    async def send(
        self,
        client: httpx.AsyncClient,
        config: Mapping[str, str],
        outbound: Outbound,
        *,
        on_part: PartSent | None = None,
    ) -> SendResult:
        if outbound.template is not None:
            raise PermanentDeliveryError(f"{self.name} messages cannot be templates here")
        url = self.messages_url(config, self.send_node(config))
        bodies: list[dict[str, Any]] = (
            [{"text": part} for part in self.split(outbound.text)] if outbound.text else []
        )
        bodies += [_messaging_outbound_attachment(a) for a in outbound.attachments]

        async def send_part(i: int) -> str:
            body = {"recipient": {"id": outbound.to}, "messaging_type": "RESPONSE", "message": bodies[i]}
            data = await self.graph_post(client, url, config["page_access_token"], body)
            return str(data.get("message_id", ""))

        return await send_in_order(len(bodies), outbound, send_part, on_part)

    async def media_source(
        self, client: httpx.AsyncClient, config: Mapping[str, str], attachment: Attachment
    ) -> MediaSource:
        """``attachments[].payload.url`` is fetched as it is (a signed CDN link, no credentials)."""
        return MediaSource(attachment.ref, mime_type=attachment.mime_type, filename=attachment.filename)


class Messenger(MessagingChannel):
    name: ClassVar[str] = "messenger"
    object_name: ClassVar[str] = "page"
    text_limit: ClassVar[int] = 2000
    limit_unit: ClassVar[Literal["chars", "bytes"]] = "chars"
    file_limits: ClassVar[PlatformFiles] = PlatformFiles(
        image_types=frozenset({"image/jpeg", "image/png", "image/gif"}),
        max_image_bytes=25 * 1024 * 1024,
        max_file_bytes=25 * 1024 * 1024,
    )

    def send_node(self, config: Mapping[str, str]) -> str:
        return config["page_id"]


class Instagram(MessagingChannel):
    name: ClassVar[str] = "instagram"
    object_name: ClassVar[str] = "instagram"
    text_limit: ClassVar[int] = 1000
    limit_unit: ClassVar[Literal["chars", "bytes"]] = "bytes"
    file_limits: ClassVar[PlatformFiles] = PlatformFiles(
        image_types=frozenset({"image/jpeg", "image/png"}),
        max_image_bytes=8 * 1024 * 1024,
        max_file_bytes=25 * 1024 * 1024,
    )

    def send_node(self, config: Mapping[str, str]) -> str:
        return "me"  # page-linked Instagram accounts send through the page token's "me"


# -- WhatsApp Cloud API: the "changes" envelope -------------------------------------------------------------


WHATSAPP_STATES: dict[str, DeliveryState] = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
}


class WhatsApp(GraphChannel):
    name: ClassVar[str] = "whatsapp"
    spec: ClassVar[ConfigSpec] = ConfigSpec(
        required=("phone_number_id", "access_token", "app_secret", "verify_token"),
        optional=("graph_base",),
        secrets=frozenset({"access_token", "app_secret", "verify_token"}),
    )
    text_limit: ClassVar[int] = 4096
    limit_unit: ClassVar[Literal["chars", "bytes"]] = "chars"
    file_limits: ClassVar[PlatformFiles] = PlatformFiles(
        image_types=frozenset({"image/jpeg", "image/png"}),
        max_image_bytes=5 * 1024 * 1024,
        max_file_bytes=100 * 1024 * 1024,
    )

    def validate_config(self, config: Any) -> dict[str, Any]:
        """The string keys of the spec, plus ``templates``: the approved templates agents may send."""
        if not isinstance(config, dict):
            raise Invalid("config must be a JSON object", data={"field": "config"})
        rest = {k: v for k, v in config.items() if k != "templates"}
        out: dict[str, Any] = self.spec.validate(rest)
        if "templates" in config:
            out["templates"] = [t.to_config() for t in parse_templates(config["templates"])]
        return out

    def parse(self, request: WebhookRequest, config: Mapping[str, str]) -> list[Event]:
        data = decode_json(request.body)
        if not isinstance(data, dict) or data.get("object") != "whatsapp_business_account":
            return [Ignored(f"not a WhatsApp webhook (object {_kind(data)})")]
        events: list[Event] = []
        for entry in _list(data.get("entry")):
            for change in _list(entry.get("changes")):
                value = change.get("value")
                if change.get("field") != "messages" or not isinstance(value, dict):
                    events.append(Ignored(f"WhatsApp change of field {change.get('field')}"))
                    continue
                metadata = value.get("metadata")
                number = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
                if number != config.get("phone_number_id"):
                    events.append(Ignored("WhatsApp change for another phone number"))
                    continue
                names = {
                    c.get("wa_id"): (c.get("profile") or {}).get("name")
                    for c in _list(value.get("contacts"))
                    if isinstance(c.get("profile") or {}, dict)
                }
                events += [_whatsapp_message(m, names) for m in _list(value.get("messages"))]
                events += [_whatsapp_status(s) for s in _list(value.get("statuses"))]
        return events or [Ignored("WhatsApp webhook without messages or statuses")]

    async def send(
        self,
        client: httpx.AsyncClient,
        config: Mapping[str, str],
        outbound: Outbound,
        *,
        on_part: PartSent | None = None,
    ) -> SendResult:
        url = self.messages_url(config, config["phone_number_id"])
        base = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": outbound.to}
        bodies: list[dict[str, Any]] = []
        if outbound.template is not None:
            t = outbound.template
            template: dict[str, Any] = {"name": t.name, "language": {"code": t.language}}
            if t.parameters:
                template["components"] = [
                    {"type": "body", "parameters": [{"type": "text", "text": p} for p in t.parameters]}
                ]
            bodies.append({"type": "template", "template": template})
        elif outbound.text:
            bodies += [
                {"type": "text", "text": {"preview_url": False, "body": part}}
                for part in self.split(outbound.text)
            ]
        for att in outbound.attachments:
            if att.kind == "image":
                bodies.append({"type": "image", "image": {"link": att.url}})
            else:
                document: dict[str, Any] = {"link": att.url}
                if att.filename:
                    document["filename"] = att.filename
                bodies.append({"type": "document", "document": document})

        async def send_part(i: int) -> str:
            body = bodies[i]
            if i == 0 and outbound.reply_to is not None:
                body = {**body, "context": {"message_id": outbound.reply_to}}
            data = await self.graph_post(client, url, config["access_token"], {**base, **body})
            messages = data.get("messages")
            first = messages[0] if isinstance(messages, list) and messages else {}
            return str(first.get("id", "")) if isinstance(first, dict) else ""

        return await send_in_order(len(bodies), outbound, send_part, on_part)

    async def media_source(
        self, client: httpx.AsyncClient, config: Mapping[str, str], attachment: Attachment
    ) -> MediaSource:
        """``GET {graph_base}/{version}/{media-id}`` -> ``{url, mime_type, file_size}``; the URL is
        downloaded with the same access token."""
        base = config.get("graph_base", GRAPH_BASE).rstrip("/")
        if not attachment.ref or "/" in attachment.ref or "?" in attachment.ref:
            raise PermanentDeliveryError("WhatsApp message without a media id")
        auth = {"Authorization": f"Bearer {config['access_token']}"}
        response = await get(client, f"{base}/{GRAPH_VERSION}/{attachment.ref}", headers=auth)
        data = json_or_none(response)
        if not 200 <= response.status_code < 300 or not isinstance(data, dict):
            raise graph_error(response, data)
        url = data.get("url")
        if not isinstance(url, str) or not url:
            raise PermanentDeliveryError("Graph API: the media has no url")
        mime = data.get("mime_type")
        size = data.get("file_size")
        return MediaSource(
            url,
            headers=auth,
            mime_type=attachment.mime_type or (mime if isinstance(mime, str) else None),
            filename=attachment.filename,
            size=size if isinstance(size, int) else None,
        )


def _whatsapp_message(m: dict[str, Any], names: dict[Any, Any]) -> Event:
    wamid, sender = m.get("id"), m.get("from")
    if not isinstance(wamid, str) or not isinstance(sender, str):
        return Ignored("WhatsApp message without id or sender")
    kind = m.get("type")
    text = ""
    attachments: tuple[Attachment, ...] = ()
    if kind == "text" and isinstance(m.get("text"), dict):
        text = str(m["text"].get("body") or "")
    elif kind in ("image", "document", "audio", "video", "sticker") and isinstance(m.get(kind), dict):
        media = m[kind]
        mapped = {"document": "file"}.get(kind, kind)
        text = str(media.get("caption") or "")
        attachments = (
            Attachment(
                mapped,
                str(media.get("id", "")),
                media.get("mime_type"),
                media.get("filename"),
            ),
        )
    elif kind == "button" and isinstance(m.get("button"), dict):
        text = str(m["button"].get("text") or "")
    elif kind == "interactive" and isinstance(m.get("interactive"), dict):
        reply = m["interactive"].get("button_reply") or m["interactive"].get("list_reply") or {}
        text = str(reply.get("title") or "") if isinstance(reply, dict) else ""
    if not text and not attachments:
        return Ignored(f"WhatsApp message of type {kind}")
    name = names.get(sender)
    timestamp = m.get("timestamp")
    context = m.get("context")
    return InboundMessage(
        external_id=wamid,
        sender=Profile(
            external_id=sender, name=name if isinstance(name, str) else None, phone="+" + sender.lstrip("+")
        ),
        text=text,
        timestamp_ms=int(timestamp) * 1000 if isinstance(timestamp, str) and timestamp.isdigit() else 0,
        attachments=attachments,
        reply_to=context.get("id") if isinstance(context, dict) else None,
    )


def _whatsapp_status(s: dict[str, Any]) -> Event:
    state = WHATSAPP_STATES.get(str(s.get("status")))
    wamid = s.get("id")
    if state is None or not isinstance(wamid, str):
        return Ignored(f"WhatsApp status {s.get('status')}")
    reason = None
    errors = _list(s.get("errors"))
    if errors:
        e = errors[0]
        details = (
            (e.get("error_data") or {}).get("details") if isinstance(e.get("error_data"), dict) else None
        )
        reason = f"{e.get('code')}: {details or e.get('message') or e.get('title')}"
    timestamp = s.get("timestamp")
    return DeliveryStatus(
        state=state,
        timestamp_ms=int(timestamp) * 1000 if isinstance(timestamp, str) and timestamp.isdigit() else 0,
        external_id=wamid,
        thread=s.get("recipient_id") if isinstance(s.get("recipient_id"), str) else None,
        reason=reason,
    )


@dataclass(frozen=True, slots=True)
class WindowDecision:
    allowed: bool
    reason: str | None = None


def whatsapp_window(last_inbound_s: float | None, now_s: float) -> WindowDecision:
    """May a free-form message go out now? Only within 24 hours of the contact's last inbound message, by
    the platform's timestamp; outside it only an approved template may."""
    if last_inbound_s is None:
        return WindowDecision(False, "the contact has not written on WhatsApp yet: send an approved template")
    if now_s - last_inbound_s >= WHATSAPP_WINDOW_S:
        return WindowDecision(
            False, "more than 24 hours since the contact's last message: send an approved template"
        )
    return WindowDecision(True)


# -- WhatsApp message templates -----------------------------------------------------------------------------

MAX_TEMPLATES = 200
MAX_PARAMETERS = 20
TEMPLATE_NAME = re.compile(r"[a-z0-9_]{1,512}")
LANGUAGE_CODE = re.compile(r"[A-Za-z]{2,3}(_[A-Za-z0-9]{2,8})?")


@dataclass(frozen=True, slots=True)
class TemplateSpec:
    """An approved template as the inbox's config lists it: ``parameters`` is how many body parameters it
    takes; ``body`` its text with ``{{1}}``..``{{n}}`` placeholders (what agents see in the thread)."""

    name: str
    language: str
    parameters: int = 0
    body: str | None = None

    def to_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "language": self.language, "parameters": self.parameters}
        if self.body is not None:
            out["body"] = self.body
        return out

    def render(self, parameters: tuple[str, ...]) -> str:
        """The text the template shows with these parameters (stored as the message's text)."""
        if self.body is None:
            shown = f" ({', '.join(parameters)})" if parameters else ""
            return f"[template {self.name}]{shown}"
        text = self.body
        for i, value in enumerate(parameters, start=1):
            text = text.replace("{{" + str(i) + "}}", value)
        return text


def parse_templates(raw: Any) -> tuple[TemplateSpec, ...]:
    """The ``templates`` config key: a list of ``{name, language, parameters?, body?}``; Invalid names
    the first bad field."""
    if not isinstance(raw, list) or len(raw) > MAX_TEMPLATES:
        raise Invalid(
            f"config.templates must be a list of at most {MAX_TEMPLATES}", data={"field": "config.templates"}
        )
    out: list[TemplateSpec] = []
    for i, item in enumerate(raw):
        where = f"config.templates[{i}]"
        if not isinstance(item, dict) or set(item) - {"name", "language", "parameters", "body"}:
            raise Invalid(f"{where} must be {{name, language, parameters?, body?}}", data={"field": where})
        name, language = item.get("name"), item.get("language")
        if not isinstance(name, str) or not TEMPLATE_NAME.fullmatch(name):
            raise Invalid(
                f"{where}.name must be lower-case letters, digits and _", data={"field": f"{where}.name"}
            )
        if not isinstance(language, str) or not LANGUAGE_CODE.fullmatch(language):
            raise Invalid(
                f"{where}.language must be a code such as en_US", data={"field": f"{where}.language"}
            )
        body = item.get("body")
        if body is not None and (not isinstance(body, str) or not body.strip() or len(body) > 1024):
            raise Invalid(
                f"{where}.body must be a text of at most 1024 characters", data={"field": f"{where}.body"}
            )
        count = item.get("parameters", _placeholders(body) if isinstance(body, str) else 0)
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_PARAMETERS:
            raise Invalid(
                f"{where}.parameters must be a count from 0 to {MAX_PARAMETERS}",
                data={"field": f"{where}.parameters"},
            )
        if any(t.name == name and t.language == language for t in out):
            raise Invalid(f"{where} repeats {name} ({language})", data={"field": f"{where}.name"})
        out.append(TemplateSpec(name, language, count, body))
    return tuple(out)


def _placeholders(body: str) -> int:
    found = [int(n) for n in re.findall(r"\{\{(\d+)\}\}", body)]
    return max(found, default=0)


def choose_template(specs: tuple[TemplateSpec, ...], template: Template) -> TemplateSpec:
    """The approved template a request names, with the right number of parameters; Invalid otherwise."""
    for spec in specs:
        if spec.name == template.name and spec.language == template.language:
            if len(template.parameters) != spec.parameters:
                raise Invalid(
                    f"template {spec.name} takes {spec.parameters} parameters",
                    data={"field": "template.parameters"},
                )
            return spec
    raise Invalid(
        f"no approved template {template.name} ({template.language}) in this inbox",
        data={"field": "template.name"},
    )


# -- small shared parsing helpers ---------------------------------------------------------------------------


def _kind(data: Any) -> str:
    return str(data.get("object")) if isinstance(data, dict) else type(data).__name__


def _list(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _list_any(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _messaging_attachment(a: dict[str, Any]) -> Attachment | None:
    payload = a.get("payload")
    url = payload.get("url") if isinstance(payload, dict) else None
    kind = {"image": "image", "file": "file", "audio": "audio", "video": "video"}.get(str(a.get("type")))
    if kind is None or not isinstance(url, str):
        return None
    return Attachment(kind, url)  # type: ignore[arg-type]


def _messaging_outbound_attachment(a: OutboundAttachment) -> dict[str, Any]:
    return {"attachment": {"type": a.kind, "payload": {"url": a.url, "is_reusable": True}}}


MESSENGER = Messenger()
INSTAGRAM = Instagram()
WHATSAPP = WhatsApp()
