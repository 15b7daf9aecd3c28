"""The one small interface every channel adapter implements.

An adapter has a pure part and a thin sender:

- ``verify(request, config)`` checks the platform's signature (or secret token) over the raw body, in
  constant time, and raises :class:`~chatserver.errors.Forbidden` when it does not match;
- ``parse(request, config)`` turns the verified raw request into typed events (:data:`Event`); a body
  that is not UTF-8 or not JSON/form raises :class:`~chatserver.errors.BadFrame`; an event type the
  adapter does not handle becomes :class:`Ignored` (the platform must get a 200, or it retries);
- ``media_source(client, config, attachment)`` says where an inbound file's bytes are (a URL and the
  headers to fetch it with), asking the platform when its handle is an id (Telegram getFile, a WhatsApp
  media id); the shell downloads it under its own size and time limits;
- ``send(client, config, outbound)`` delivers one outbound message through an injected
  ``httpx.AsyncClient``, split at the platform's limit, and maps failures to
  :class:`~chatserver.errors.TemporaryDeliveryError` (429, 5xx, timeouts; with the platform's retry hint)
  or :class:`~chatserver.errors.PermanentDeliveryError` (4xx, with the platform's reason).

Nothing here reads the clock, the environment or a database: the shell (chatserver.channels) passes
everything in, and applies the events.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Literal

import httpx

from chatserver.errors import (
    BadFrame,
    Forbidden,
    Invalid,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)

MAX_BODY = 1024 * 1024
"""Webhook bodies over this many bytes are refused (413) before they are read in full."""

DeliveryState = Literal["sent", "delivered", "read", "failed"]


# -- requests and events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """What the HTTP layer hands an adapter: raw bytes, lower-cased header names, the query, and the URL the
    platform called (as it saw it: Twilio signs the public URL)."""

    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    url: str = ""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True, slots=True)
class Profile:
    """The sender as the platform describes them; ``external_id`` is the identity on the channel (and the
    address replies go to: Telegram chat id, PSID, IGSID, wa_id, phone number)."""

    external_id: str
    name: str | None = None
    language: str | None = None
    phone: str | None = None
    username: str | None = None


@dataclass(frozen=True, slots=True)
class Attachment:
    """Metadata of an inbound file; ``ref`` is the platform's handle (a URL, or a file/media id to fetch)."""

    kind: Literal["image", "file", "audio", "video", "sticker"]
    ref: str
    mime_type: str | None = None
    filename: str | None = None
    size: int | None = None


@dataclass(frozen=True, slots=True)
class MediaSource:
    """Where an inbound file's bytes are: fetch ``url`` with ``headers`` (the platform's credentials, for
    the platform's own host only). What the platform said about the file comes along."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    mime_type: str | None = None
    filename: str | None = None
    size: int | None = None


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A customer's message. ``external_id`` is the platform's message id (the dedupe key)."""

    external_id: str
    sender: Profile
    text: str
    timestamp_ms: int
    attachments: tuple[Attachment, ...] = ()
    reply_to: str | None = None

    def display_text(self) -> str:
        """The text agents see: the message (or caption), else a line per attachment."""
        if self.text:
            return self.text
        return "\n".join(f"[{a.kind}{': ' + a.filename if a.filename else ''}]" for a in self.attachments)


@dataclass(frozen=True, slots=True)
class Echo:
    """The platform echoing a message the page itself sent (Messenger/Instagram ``is_echo``): skipped."""

    external_id: str


@dataclass(frozen=True, slots=True)
class DeliveryStatus:
    """A delivery receipt for one of our outbound messages. ``external_id`` is the platform id it refers to;
    Messenger's read receipts carry only a ``watermark_ms`` (everything sent before it in ``thread`` was
    read), so ``external_id`` is None there."""

    state: DeliveryState
    timestamp_ms: int
    external_id: str | None = None
    thread: str | None = None
    watermark_ms: int | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Ignored:
    """Something valid we do not handle (a reaction, a postback, a group chat); ``what`` is logged."""

    what: str


Event = InboundMessage | Echo | DeliveryStatus | Ignored


# -- outbound -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboundAttachment:
    kind: Literal["image", "file"]
    url: str
    filename: str | None = None


@dataclass(frozen=True, slots=True)
class PlatformFiles:
    """What a platform takes as files on an outbound message: types sent as images (else as documents),
    the largest image and document it fetches from a link, how many files per message and, where it
    counts them together (MMS), their total size."""

    image_types: frozenset[str] = frozenset({"image/jpeg", "image/png"})
    max_image_bytes: int = 5 * 1024 * 1024
    max_file_bytes: int = 25 * 1024 * 1024
    max_files: int = 10
    max_total_bytes: int | None = None

    def kinds(self, files: Sequence[tuple[str, int]]) -> list[Literal["image", "file"]]:
        """How each ``(content type, size)`` goes out (an image too big for a photo goes as a document
        where documents are allowed bigger); Invalid naming the first file the platform would refuse."""
        if len(files) > self.max_files:
            raise Invalid(f"at most {self.max_files} files per message here", data={"field": "attachments"})
        total = sum(size for _, size in files)
        if self.max_total_bytes is not None and total > self.max_total_bytes:
            raise Invalid(
                f"the files together are over the platform's limit of {self.max_total_bytes} bytes",
                data={"field": "attachments", "limit": self.max_total_bytes},
            )
        out: list[Literal["image", "file"]] = []
        for i, (ctype, size) in enumerate(files):
            if ctype in self.image_types and size <= self.max_image_bytes:
                out.append("image")
            elif size <= self.max_file_bytes:
                out.append("file")
            else:
                limit = self.max_file_bytes
                raise Invalid(
                    f"file {i + 1} is over the platform's limit of {limit} bytes",
                    data={"field": f"attachments.{i}", "limit": limit},
                )
        return out


@dataclass(frozen=True, slots=True)
class Template:
    """A pre-approved message (WhatsApp outside the 24-hour window)."""

    name: str
    language: str
    parameters: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Outbound:
    """One reply to send: ``to`` is the contact's identity on the channel."""

    to: str
    text: str = ""
    attachments: tuple[OutboundAttachment, ...] = ()
    reply_to: str | None = None
    template: Template | None = None
    status_callback: str | None = None
    """Where the platform should report delivery states, for platforms that take it per message (Twilio)."""
    sent: tuple[str, ...] = ()
    """The platform ids of the parts an earlier attempt already delivered, in order: a retry sends only
    the parts after them (a split reply is never repeated in part)."""


@dataclass(frozen=True, slots=True)
class SendResult:
    """The platform ids of what was sent, in order (one per part of a split text, then attachments)."""

    external_ids: tuple[str, ...]


PartSent = Callable[[int, str], Awaitable[None]]
"""Called with (part index, platform id) as soon as the platform accepted a part, before the next one is
sent: the shell records progress there, so a failure later in the message resends nothing already sent."""


async def send_in_order(
    count: int, outbound: Outbound, send_part: Callable[[int], Awaitable[str]], on_part: PartSent | None
) -> SendResult:
    """Send parts ``0..count-1`` in order, skipping those ``outbound.sent`` says were sent already."""
    ids = list(outbound.sent[:count])
    for i in range(len(ids), count):
        external_id = await send_part(i)
        ids.append(external_id)
        if on_part is not None:
            await on_part(i, external_id)
    return SendResult(tuple(ids))


# -- configuration ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigSpec:
    """The keys of an inbox's config: required, optional, and which of them are secrets (never returned)."""

    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    secrets: frozenset[str] = frozenset()

    def validate(self, config: Any) -> dict[str, str]:
        if not isinstance(config, dict):
            raise Invalid("config must be a JSON object", data={"field": "config"})
        unknown = sorted(set(config) - set(self.required) - set(self.optional))
        if unknown:
            raise Invalid(
                f"unknown config keys: {', '.join(unknown)}", data={"field": f"config.{unknown[0]}"}
            )
        out: dict[str, str] = {}
        for key in (*self.required, *self.optional):
            value = config.get(key)
            if value is None:
                if key in self.required:
                    raise Invalid(f"config.{key} is required", data={"field": f"config.{key}"})
                continue
            if not isinstance(value, str) or not value.strip() or len(value) > 2000:
                raise Invalid(f"config.{key} must be a non-empty string", data={"field": f"config.{key}"})
            out[key] = value.strip()
        return out

    def redact(self, config: Mapping[str, str]) -> dict[str, Any]:
        """The config as GET shows it: secrets replaced by whether they are set."""
        out: dict[str, Any] = {}
        for key in (*self.required, *self.optional):
            if key in self.secrets:
                out[f"{key}_set"] = bool(config.get(key))
            elif key in config:
                out[key] = config[key]
        return out


class Channel:
    """Base of the adapters: one instance per channel, stateless (config comes with every call)."""

    name: ClassVar[str]
    spec: ClassVar[ConfigSpec]
    text_limit: ClassVar[int]
    limit_unit: ClassVar[Literal["chars", "bytes"]] = "chars"
    file_limits: ClassVar[PlatformFiles] = PlatformFiles()

    def validate_config(self, config: Any) -> dict[str, str]:
        return self.spec.validate(config)

    def handshake(self, query: Mapping[str, str], config: Mapping[str, str]) -> str:
        """Answer a platform's GET verification; Forbidden when it is not ours. Default: none."""
        raise Forbidden("this channel has no verification handshake")

    def verify(self, request: WebhookRequest, config: Mapping[str, str]) -> None:
        raise NotImplementedError

    def parse(self, request: WebhookRequest, config: Mapping[str, str]) -> list[Event]:
        raise NotImplementedError

    async def send(
        self,
        client: httpx.AsyncClient,
        config: Mapping[str, str],
        outbound: Outbound,
        *,
        on_part: PartSent | None = None,
    ) -> SendResult:
        raise NotImplementedError

    async def media_source(
        self, client: httpx.AsyncClient, config: Mapping[str, str], attachment: Attachment
    ) -> MediaSource:
        """Where to download an inbound file; a delivery error (or TooLarge) when the platform refuses."""
        raise PermanentDeliveryError(f"{self.name} files cannot be downloaded")

    def split(self, text: str) -> list[str]:
        return split_text(text, self.text_limit, unit=self.limit_unit)


# -- helpers shared by the adapters -------------------------------------------------------------------------


def same_secret(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; a missing value never matches."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def decode_json(body: bytes) -> Any:
    """The body as JSON; BadFrame (400) for non-UTF-8 bytes or invalid JSON."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadFrame("the body is not UTF-8") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadFrame("the body is not valid JSON") from exc


def split_text(text: str, limit: int, *, unit: Literal["chars", "bytes"] = "chars") -> list[str]:
    """Split ``text`` into parts of at most ``limit`` characters (or UTF-8 bytes), in order, never inside a
    character; a part ends at the last line break or space of its window when there is one in the window's
    second half, so words stay whole where they can. Joining the parts gives the text back."""
    if limit < 1:
        raise ValueError("limit must be positive")

    def size(s: str) -> int:
        return len(s) if unit == "chars" else len(s.encode("utf-8"))

    parts: list[str] = []
    rest = text
    while size(rest) > limit:
        if unit == "chars":
            cut = limit
        else:
            cut = 0
            used = 0
            for ch in rest:
                width = len(ch.encode("utf-8"))
                if used + width > limit:
                    break
                used += width
                cut += 1
        window = rest[:cut]
        brk = max(window.rfind("\n"), window.rfind(" "))
        if brk >= cut // 2:
            cut = brk + 1
        parts.append(rest[:cut])
        rest = rest[cut:]
    if rest or not parts:
        parts.append(rest)
    return parts


def retry_after(value: str | None, date: str | None = None) -> float | None:
    """A ``Retry-After`` header in seconds: its delay-seconds form, or its HTTP-date form counted from the
    response's own ``Date`` header (no clock is read here); None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        until = parsedate_to_datetime(value)
        sent = parsedate_to_datetime(date) if date else None
    except (TypeError, ValueError):
        return None
    if sent is None:
        return None
    return max(0.0, (until - sent).total_seconds())


async def get(client: httpx.AsyncClient, url: str, **kwargs: Any) -> httpx.Response:
    """One GET; a timeout or a connection failure is temporary."""
    try:
        return await client.get(url, **kwargs)
    except httpx.TimeoutException as exc:
        raise TemporaryDeliveryError("the platform did not answer in time") from exc
    except httpx.TransportError as exc:
        raise TemporaryDeliveryError(f"could not reach the platform ({type(exc).__name__})") from exc


async def post(client: httpx.AsyncClient, url: str, **kwargs: Any) -> httpx.Response:
    """One POST; a timeout or a connection failure is temporary."""
    try:
        return await client.post(url, **kwargs)
    except httpx.TimeoutException as exc:
        raise TemporaryDeliveryError("the platform did not answer in time") from exc
    except httpx.TransportError as exc:
        raise TemporaryDeliveryError(f"could not reach the platform ({type(exc).__name__})") from exc


def json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
