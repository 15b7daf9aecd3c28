"""Pure rules for files: what a name may be, which types are accepted and how each is served, and the
signed, expiring links that let a browser fetch one without credentials in the URL."""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from chatserver.errors import Invalid

DEFAULT_TYPES = (
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
    "text/csv",
    "application/zip",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "audio/mpeg",
    "audio/ogg",
    "video/mp4",
)
"""Accepted upload types unless CHATSERVER_UPLOAD_TYPES says otherwise."""

INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
"""Shown in the page (thumbnails); everything else is served as a download. Never HTML or SVG inline:
a file is someone else's content."""
TYPED_DOWNLOADS = frozenset(DEFAULT_TYPES) - INLINE_TYPES
"""Downloads served with their own type (platforms that fetch a file by URL, e.g. Telegram's
sendDocument, want PDF or ZIP as such); any other type (HTML, SVG, scripts) is ``application/
octet-stream``. Always with ``Content-Disposition: attachment``, ``nosniff`` and a sandboxing CSP."""

_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,62}")
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')
MAX_NAME = 200


@dataclass(frozen=True, slots=True)
class Attachment:
    id: str
    conversation_id: str
    message_id: str | None
    sha256: str
    name: str
    content_type: str
    size: int
    uploader_kind: str
    uploader_id: str
    created_at: int

    def to_wire(self) -> dict[str, Any]:
        """As a message carries it (and as an upload answers)."""
        return {"id": self.id, "name": self.name, "content_type": self.content_type, "size": self.size}


def clean_name(raw: str | None) -> str:
    """A file name safe to store and show: no path, no control characters, at most 200 characters."""
    name = unicodedata.normalize("NFC", raw or "").strip()
    name = _UNSAFE.sub("_", name.replace("\\", "/").rsplit("/", 1)[-1]).strip(" .")
    if not name:
        return "file"
    if len(name) > MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        keep = ext if dot and len(ext) <= 10 else ""
        name = (stem if keep else name)[: MAX_NAME - len(keep) - 1] + ("." + keep if keep else "")
    return name


def base_type(content_type: str | None) -> str:
    """``image/PNG; charset=x`` -> ``image/png`` (parameters dropped, lower case); may be empty."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def stored_type(content_type: str | None) -> str:
    """The type a channel's or an email's file is stored with: its own when well formed, else
    ``application/octet-stream`` (how it is served is :func:`disposition`'s decision)."""
    base = base_type(content_type)
    return base if _TYPE.fullmatch(base) else "application/octet-stream"


def check_type(content_type: str | None, allowed: tuple[str, ...]) -> str:
    """The media type (parameters dropped, lower case), if it is one of ``allowed``; else ``invalid``."""
    base = base_type(content_type)
    if not _TYPE.fullmatch(base):
        raise Invalid("the file needs a Content-Type (e.g. image/png)", data={"field": "content_type"})
    if base not in allowed:
        raise Invalid(
            f"files of type {base} are not accepted", data={"field": "content_type", "allowed": list(allowed)}
        )
    return base


def disposition(att: Attachment) -> tuple[str, str]:
    """(Content-Type, Content-Disposition) to serve a file with."""
    quoted = att.name.encode("ascii", "replace").decode().replace('"', "_")
    star = "".join(
        c if c.isascii() and (c.isalnum() or c in "-._~") else "".join(f"%{b:02X}" for b in c.encode())
        for c in att.name
    )
    how = "inline" if att.content_type in INLINE_TYPES else "attachment"
    known = att.content_type in INLINE_TYPES or att.content_type in TYPED_DOWNLOADS
    ctype = att.content_type if known else "application/octet-stream"
    return ctype, f"{how}; filename=\"{quoted}\"; filename*=UTF-8''{star}"


def _mac(secret: str, attachment_id: str, expires: int) -> str:
    key = hashlib.sha256(b"chatserver-file-link:" + secret.encode()).digest()
    return hmac.new(key, f"{attachment_id}:{expires}".encode(), hashlib.sha256).hexdigest()


def sign_link(secret: str, attachment_id: str, expires: int) -> str:
    """The query of a link to ``/files/{id}`` that works until ``expires`` (Unix seconds)."""
    return f"exp={expires}&sig={_mac(secret, attachment_id, expires)}"


def link_valid(secret: str, attachment_id: str, exp: str | None, sig: str | None, now_s: float) -> bool:
    if not exp or not sig or not exp.isdigit() or len(exp) > 12:
        return False
    expires = int(exp)
    return expires >= now_s and hmac.compare_digest(_mac(secret, attachment_id, expires), sig)
