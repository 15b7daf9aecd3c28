"""Files that arrive on channel messages: downloaded from the platform and stored like uploads.

For each attachment of an inbound message the adapter says where its bytes are
(:meth:`adapters.base.Channel.media_source`: Telegram getFile, a WhatsApp media id, a Meta CDN link,
Twilio's ``MediaUrl`` with basic auth); :class:`MediaFetcher` downloads it through the process's shared
HTTP client, each file within :data:`FETCH_TIMEOUT_S` in total (the platform waits for the webhook's
answer) and at most ``CHATSERVER_UPLOAD_MAX_BYTES`` (a declared size over it is not even fetched), the
files of one message side by side, and stores it with ``AttachmentService.create(check=False)``.

Nothing is lost: a file that is too large or cannot be fetched is not stored, and the message keeps a
line saying so (``[file not stored: too large]``); one log line per message names what failed, never a
URL (Telegram's carry the bot token).
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from adapters.base import Attachment, Channel, InboundMessage, MediaSource
from chatserver.errors import ChatError, DeliveryError, TooLarge
from chatserver.files.service import AttachmentService
from chatserver.model.types import Author, Inbox

log = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 5.0
"""Per file, everything included (asking the platform where it is, then the download)."""
TOO_LARGE = "too large"
FAILED = "download failed"


@dataclass(frozen=True, slots=True)
class Fetched:
    """One attachment's outcome: its bytes, or why it was not stored (``failure``, ``detail`` for the
    log)."""

    attachment: Attachment
    name: str | None = None
    content_type: str | None = None
    data: bytes | None = None
    failure: str | None = None
    detail: str = ""


def placeholder(fetched: Fetched) -> str:
    """The line a message keeps for a file that was not stored."""
    name = fetched.name or fetched.attachment.filename
    return f"[file not stored: {fetched.failure}]" + (f" {name}" if name else "")


def message_text(caption: str, failed: Sequence[Fetched]) -> str:
    """The stored text: the caption, then a line per file not stored (empty when every file was)."""
    return "\n".join([*([caption] if caption else []), *(placeholder(f) for f in failed)])


def file_name(att: Attachment, source: MediaSource | None, content_type: str | None) -> str:
    """The platform's file name, else ``image.jpg`` / ``file.pdf`` after the kind and type."""
    name = (source.filename if source else None) or att.filename
    if name:
        return name
    ext = mimetypes.guess_extension(content_type or "") or ""
    return f"{att.kind}{'.jpg' if ext == '.jpe' else ext}"


class _TooLarge(Exception):
    pass


def _failed(att: Attachment, source: MediaSource | None, detail: str) -> Fetched:
    name = (source.filename if source else None) or att.filename
    return Fetched(att, name, att.mime_type, failure=FAILED, detail=detail)


class MediaFetcher:
    """Downloads (:meth:`fetch`) and stores (:meth:`store`) the files of inbound messages."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        files: AttachmentService | None,
        *,
        max_bytes: int | None = None,
        timeout_s: float = FETCH_TIMEOUT_S,
    ) -> None:
        self.client = client
        self.files = files
        self.max_bytes = max_bytes if max_bytes is not None else files.limits.max_bytes if files else 0
        self.timeout_s = timeout_s

    async def store(
        self,
        adapter: Channel,
        inbox: Inbox,
        event: InboundMessage,
        conversation_id: str,
        uploader: Author,
    ) -> tuple[str, tuple[dict[str, Any], ...]]:
        """Download and store the message's files: (the text to store, the stored files' wire form).
        Never raises: whatever fails becomes a line of the text."""
        fetched = await asyncio.gather(*(self.fetch(adapter, inbox.config, a) for a in event.attachments))
        stored: list[dict[str, Any]] = []
        failed: list[Fetched] = []
        for f in fetched:
            if f.data is not None:
                try:
                    if self.files is None:
                        raise RuntimeError("no file store")
                    att = await self.files.create(
                        conversation_id,
                        uploader,
                        name=f.name,
                        content_type=f.content_type,
                        data=f.data,
                        check=False,
                    )
                except Exception as exc:  # the disk: the message is stored without the file
                    f = Fetched(
                        f.attachment, f.name, f.content_type, failure=FAILED, detail=type(exc).__name__
                    )
                else:
                    stored.append(att.to_wire())
                    continue
            failed.append(f)
        if failed:
            log.warning(
                "%s inbox %s message %s: %d of %d files not stored (%s)",
                inbox.channel,
                inbox.id,
                event.external_id,
                len(failed),
                len(fetched),
                "; ".join(
                    f"{f.attachment.kind}: {f.failure}{': ' + f.detail if f.detail else ''}" for f in failed
                ),
            )
        return message_text(event.text, failed), tuple(stored)

    async def fetch(self, adapter: Channel, config: Any, att: Attachment) -> Fetched:
        if att.size is not None and att.size > self.max_bytes:
            return Fetched(att, att.filename, att.mime_type, failure=TOO_LARGE, detail=f"{att.size} bytes")
        source: MediaSource | None = None
        try:
            async with asyncio.timeout(self.timeout_s):
                source = await adapter.media_source(self.client, config, att)
                if source.size is not None and source.size > self.max_bytes:
                    raise _TooLarge(f"{source.size} bytes")
                data, served_type = await self._download(source)
        except (_TooLarge, TooLarge) as exc:
            ctype = (source.mime_type if source else None) or att.mime_type
            return Fetched(att, file_name(att, source, ctype), ctype, failure=TOO_LARGE, detail=str(exc))
        except TimeoutError:
            return _failed(att, source, "timed out")
        except DeliveryError as exc:
            return _failed(att, source, exc.reason)
        except (httpx.HTTPError, ChatError, ValueError) as exc:
            return _failed(att, source, type(exc).__name__)
        ctype = source.mime_type or att.mime_type or served_type
        return Fetched(att, file_name(att, source, ctype), ctype, data)

    async def _download(self, source: MediaSource) -> tuple[bytes, str | None]:
        if not source.url.lower().startswith(("https://", "http://")):
            raise DeliveryError("not an http(s) link")
        async with self.client.stream(
            "GET", source.url, headers=dict(source.headers), follow_redirects=True
        ) as response:
            if response.status_code != 200:
                raise DeliveryError(f"HTTP {response.status_code}")
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                raise _TooLarge(f"{declared} bytes")
            buf = bytearray()
            async for chunk in response.aiter_bytes():
                buf += chunk
                if len(buf) > self.max_bytes:
                    raise _TooLarge(f"over {self.max_bytes} bytes")
            if not buf:
                raise DeliveryError("empty file")
            return bytes(buf), response.headers.get("content-type")
