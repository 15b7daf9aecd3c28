"""Telegram Bot API: webhook updates (secret token header) or long polling, and sendMessage/sendPhoto.

Config: ``bot_token`` (secret), ``secret_token`` (secret; sent back by Telegram as
``X-Telegram-Bot-Api-Secret-Token``), ``api_base`` (default the Bot API), ``mode`` (``webhook`` or
``polling``). Only private chats are conversations; the contact identity is the user id (= the chat id).
The dedupe key of a message is ``<chat id>:<message id>``, the same whether it came by webhook or polling.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import httpx

from adapters.base import (
    Attachment,
    Channel,
    ConfigSpec,
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
    decode_json,
    json_or_none,
    post,
    same_secret,
    send_in_order,
)
from chatserver.errors import (
    Forbidden,
    Invalid,
    PermanentDeliveryError,
    TemporaryDeliveryError,
    TooLarge,
)

API_BASE = "https://api.telegram.org"
SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
SECRET_HEADER = "x-telegram-bot-api-secret-token"


class Telegram(Channel):
    name: ClassVar[str] = "telegram"
    spec: ClassVar[ConfigSpec] = ConfigSpec(
        required=("bot_token",),
        optional=("secret_token", "api_base", "mode"),
        secrets=frozenset({"bot_token", "secret_token"}),
    )
    text_limit: ClassVar[int] = 4096
    limit_unit: ClassVar[Literal["chars", "bytes"]] = "chars"
    file_limits: ClassVar[PlatformFiles] = PlatformFiles(
        image_types=frozenset({"image/jpeg", "image/png", "image/webp"}),
        max_image_bytes=5 * 1024 * 1024,  # sendPhoto by URL
        max_file_bytes=20 * 1024 * 1024,  # sendDocument by URL
    )

    def validate_config(self, config: Any) -> dict[str, str]:
        out = self.spec.validate(config)
        mode = out.get("mode", "webhook")
        if mode not in ("webhook", "polling"):
            raise Invalid("config.mode is webhook or polling", data={"field": "config.mode"})
        secret = out.get("secret_token")
        if secret is not None and not SECRET_TOKEN.fullmatch(secret):
            raise Invalid(
                "config.secret_token is 1-256 characters of A-Z a-z 0-9 _ -",
                data={"field": "config.secret_token"},
            )
        if mode == "webhook" and secret is None:
            raise Invalid(
                "config.secret_token is required for webhooks", data={"field": "config.secret_token"}
            )
        return out

    # -- inbound ------------------------------------------------------------------------------------------

    def verify(self, request: WebhookRequest, config: Mapping[str, str]) -> None:
        if not same_secret(request.header(SECRET_HEADER), config.get("secret_token")):
            raise Forbidden("the secret token does not match")

    def parse(self, request: WebhookRequest, config: Mapping[str, str]) -> list[Event]:
        return [parse_update(decode_json(request.body))]

    # -- outbound -----------------------------------------------------------------------------------------

    async def send(
        self,
        client: httpx.AsyncClient,
        config: Mapping[str, str],
        outbound: Outbound,
        *,
        on_part: PartSent | None = None,
    ) -> SendResult:
        if outbound.template is not None:
            raise PermanentDeliveryError("Telegram has no message templates")
        chat_id: int | str = int(outbound.to) if outbound.to.lstrip("-").isdigit() else outbound.to
        calls: list[tuple[str, dict[str, Any]]] = []
        for i, part in enumerate(self.split(outbound.text) if outbound.text else []):
            body: dict[str, Any] = {"chat_id": chat_id, "text": part}
            if i == 0 and outbound.reply_to is not None:
                body["reply_parameters"] = {"message_id": _message_id(outbound.reply_to)}
            calls.append(("sendMessage", body))
        for att in outbound.attachments:
            method, key = ("sendPhoto", "photo") if att.kind == "image" else ("sendDocument", "document")
            calls.append((method, {"chat_id": chat_id, key: att.url}))

        async def send_part(i: int) -> str:
            result = await call(client, config, *calls[i])
            return f"{chat_id}:{result['message_id']}"

        return await send_in_order(len(calls), outbound, send_part, on_part)

    async def media_source(
        self, client: httpx.AsyncClient, config: Mapping[str, str], attachment: Attachment
    ) -> MediaSource:
        """getFile, then ``{api_base}/file/bot<token>/<file_path>`` (bots may download up to 20 MB)."""
        try:
            result = await call(client, config, "getFile", {"file_id": attachment.ref})
        except PermanentDeliveryError as exc:
            if "too big" in exc.reason:
                raise TooLarge(exc.reason) from exc
            raise
        path = result.get("file_path") if isinstance(result, dict) else None
        if not isinstance(path, str) or not path:
            raise PermanentDeliveryError("Telegram getFile: no file_path")
        size = result.get("file_size")
        base = config.get("api_base", API_BASE).rstrip("/")
        return MediaSource(
            f"{base}/file/bot{config['bot_token']}/{path.lstrip('/')}",
            mime_type=attachment.mime_type,
            filename=attachment.filename or path.rsplit("/", 1)[-1],
            size=size if isinstance(size, int) else attachment.size,
        )


def parse_update(update: Any) -> Event:
    """One Update object (from a webhook body or getUpdates) as an event."""
    if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
        return Ignored("not a Telegram update")
    message = update.get("message")
    if not isinstance(message, dict):
        kinds = sorted(k for k in update if k != "update_id")
        return Ignored(f"Telegram update of type {kinds[0] if kinds else 'unknown'}")
    chat = message.get("chat")
    sender = message.get("from")
    if not isinstance(chat, dict) or not isinstance(sender, dict) or not isinstance(chat.get("id"), int):
        return Ignored("Telegram message without chat or sender")
    if chat.get("type") != "private":
        return Ignored(f"Telegram {chat.get('type')} chat (only private chats are conversations)")
    if sender.get("is_bot"):
        return Ignored("Telegram message from a bot")
    message_id = message.get("message_id")
    if not isinstance(message_id, int):
        return Ignored("Telegram message without message_id")
    text = message.get("text") or message.get("caption") or ""
    attachments = _attachments(message)
    if not isinstance(text, str) or (not text and not attachments):
        return Ignored("Telegram message with neither text nor a file")
    names = [sender.get("first_name"), sender.get("last_name")]
    name = " ".join(n for n in names if isinstance(n, str) and n) or None
    language = sender.get("language_code")
    reply = message.get("reply_to_message")
    date = message.get("date")
    return InboundMessage(
        external_id=f"{chat['id']}:{message_id}",
        sender=Profile(
            external_id=str(chat["id"]),
            name=name,
            language=language if isinstance(language, str) else None,
            username=sender.get("username") if isinstance(sender.get("username"), str) else None,
        ),
        text=text,
        timestamp_ms=int(date) * 1000 if isinstance(date, int) else 0,
        attachments=attachments,
        reply_to=(
            f"{chat['id']}:{reply['message_id']}"
            if isinstance(reply, dict) and isinstance(reply.get("message_id"), int)
            else None
        ),
    )


def _attachments(message: dict[str, Any]) -> tuple[Attachment, ...]:
    out: list[Attachment] = []
    photos = message.get("photo")
    if isinstance(photos, list) and photos and isinstance(photos[-1], dict):
        largest = photos[-1]  # Telegram lists sizes smallest first
        if isinstance(largest.get("file_id"), str):
            out.append(Attachment("image", largest["file_id"], "image/jpeg", None, largest.get("file_size")))
    for key, kind in (("document", "file"), ("audio", "audio"), ("voice", "audio"), ("video", "video")):
        item = message.get(key)
        if isinstance(item, dict) and isinstance(item.get("file_id"), str):
            out.append(
                Attachment(
                    kind,  # type: ignore[arg-type]
                    item["file_id"],
                    item.get("mime_type"),
                    item.get("file_name"),
                    item.get("file_size"),
                )
            )
    return tuple(out)


def _message_id(external_id: str) -> int:
    tail = external_id.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def method_url(config: Mapping[str, str], method: str) -> str:
    return f"{config.get('api_base', API_BASE).rstrip('/')}/bot{config['bot_token']}/{method}"


async def call(
    client: httpx.AsyncClient, config: Mapping[str, str], method: str, body: dict[str, Any]
) -> Any:
    """Call a Bot API method; its ``result``, or a delivery error with Telegram's description."""
    response = await post(client, method_url(config, method), json=body)
    data = json_or_none(response)
    if response.status_code == 200 and isinstance(data, dict) and data.get("ok") is True:
        return data.get("result")
    description = data.get("description") if isinstance(data, dict) else None
    reason = f"Telegram {method}: {description or f'HTTP {response.status_code}'}"
    params = data.get("parameters") if isinstance(data, dict) else None
    hint = params.get("retry_after") if isinstance(params, dict) else None
    if response.status_code == 429 or response.status_code >= 500:
        wait = float(hint) if isinstance(hint, int | float) else None
        raise TemporaryDeliveryError(reason, retry_after_s=wait)
    raise PermanentDeliveryError(reason)


async def set_webhook(client: httpx.AsyncClient, config: Mapping[str, str], url: str) -> None:
    """Register ``url`` as the bot's webhook, with the inbox's secret token."""
    body: dict[str, Any] = {"url": url, "allowed_updates": ["message"]}
    if config.get("secret_token"):
        body["secret_token"] = config["secret_token"]
    await call(client, config, "setWebhook", body)


async def get_updates(
    client: httpx.AsyncClient, config: Mapping[str, str], offset: int | None, timeout_s: int
) -> list[Any]:
    """One long poll: the updates after ``offset`` (which confirms everything before it)."""
    body: dict[str, Any] = {"timeout": timeout_s, "allowed_updates": ["message"]}
    if offset is not None:
        body["offset"] = offset
    result = await call(client, config, "getUpdates", body)
    return result if isinstance(result, list) else []


CHANNEL = Telegram()
