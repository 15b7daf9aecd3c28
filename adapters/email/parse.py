"""Raw RFC 5322 bytes -> :class:`ParsedEmail`, with the standard ``email`` package (policy.default).

Pure and total: any bytes give a ParsedEmail (malformed MIME, unknown or lying charsets, broken RFC 2047
words), and what went wrong is listed in ``problems`` for the log. Nothing here writes anywhere: the
attachments come back as bytes with their metadata, the shell stores them.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.utils import getaddresses, parseaddr

from adapters.email.address import normalize
from adapters.email.fold import fold
from adapters.email.headers import safe_header_text
from adapters.email.html_text import html_to_text

__all__ = ["Attachment", "Limits", "ParsedEmail", "Skipped", "parse_email"]

_MSGID = re.compile(r"<([^<>\s]{1,500})>")
_TEXT_MAX = 2_000_000
"""Characters of body text kept in the parsed result (the raw message is kept whole by the shell)."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_attachments: int = 50
    max_attachment_bytes: int = 10 * 1024 * 1024
    blocked_types: frozenset[str] = frozenset(
        {
            "application/x-msdownload",
            "application/x-dosexec",
            "application/x-msdos-program",
            "application/vnd.microsoft.portable-executable",
            "application/x-sh",
            "application/hta",
        }
    )
    blocked_extensions: frozenset[str] = frozenset(
        {".exe", ".scr", ".bat", ".cmd", ".com", ".pif", ".vbs", ".js", ".jse", ".msi", ".hta", ".ps1"}
    )
    zip_max_ratio: int = 100
    zip_max_bytes: int = 200 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes
    inline: bool
    content_id: str | None
    warning: str | None = None
    """e.g. ``zip_bomb``: stored, never unpacked, shown with a warning."""

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True, slots=True)
class Skipped:
    filename: str
    content_type: str
    size: int
    reason: str
    """too_many, too_large, blocked_type"""


@dataclass(frozen=True, slots=True)
class ParsedEmail:
    message_id: str | None
    """Without angle brackets; None when the mail has none (the shell derives one from the bytes)."""
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    subject: str
    from_name: str
    from_address: str
    reply_to: str | None
    to: tuple[str, ...]
    cc: tuple[str, ...]
    date: str | None
    text: str
    """The whole body as text (the plain part, or the HTML part made text)."""
    html: str | None
    """The original HTML part, if any (never rendered: shown as text)."""
    display_text: str
    """``text`` with the quoted history and the signature folded away."""
    quoted: str
    signature: str
    attachments: tuple[Attachment, ...]
    skipped: tuple[Skipped, ...]
    headers: dict[str, str]
    """The loop-relevant headers, lower-case names (see loops.LoopHeaders)."""
    problems: tuple[str, ...] = field(default=())
    digest: str = ""
    """sha256 of the raw bytes."""


LOOP_HEADERS = (
    "auto-submitted",
    "precedence",
    "x-auto-response-suppress",
    "list-unsubscribe",
    "list-id",
    "return-path",
    "x-loop",
    "x-autoreply",
    "x-autorespond",
)


def parse_email(raw: bytes, limits: Limits = Limits()) -> ParsedEmail:
    problems: list[str] = []
    digest = hashlib.sha256(raw).hexdigest()
    try:
        msg = message_from_bytes(raw, policy=policy.default)
    except Exception as exc:  # the parser is lenient; this is for the truly unexpected
        problems.append(f"unparseable message: {type(exc).__name__}")
        text = _decode(raw, None, problems)[:_TEXT_MAX]
        folded = fold(text)
        return ParsedEmail(
            None, (), (), "", "", "", None, (), (), None, text, None, folded.visible, folded.quoted,
            folded.signature, (), (), {}, tuple(problems), digest,
        )  # fmt: skip
    if msg.defects:
        problems.append("defects: " + ", ".join(sorted({type(d).__name__ for d in msg.defects})))

    def header(name: str) -> str:
        return _header(msg, name, problems)

    from_name, from_address = _sender(msg, problems)
    reply_to = parseaddr(header("reply-to"))[1] or None
    body = _Body()
    _walk(msg, body, limits, problems)
    plain = "\n\n".join(p for p in body.plain if p.strip())
    html = "\n".join(body.html) if body.html else None
    text = plain if plain.strip() else (html_to_text(html) if html else "")
    text = text.replace("\r\n", "\n").replace("\x00", "").strip()[:_TEXT_MAX]
    folded = fold(text)
    return ParsedEmail(
        message_id=_first_id(header("message-id")),
        in_reply_to=tuple(_ids(header("in-reply-to"))),
        references=tuple(_ids(header("references"))),
        subject=safe_header_text(header("subject"), max_chars=500),
        from_name=safe_header_text(from_name, max_chars=200),
        from_address=normalize(from_address),
        reply_to=normalize(reply_to) if reply_to else None,
        to=_addresses(header("to")),
        cc=_addresses(header("cc")),
        date=header("date") or None,
        text=text,
        html=html,
        display_text=folded.visible,
        quoted=folded.quoted,
        signature=folded.signature,
        attachments=tuple(body.attachments),
        skipped=tuple(body.skipped),
        headers={name: v for name in LOOP_HEADERS if (v := header(name)) or name in msg},
        problems=tuple(problems),
        digest=digest,
    )


@dataclass
class _Body:
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def _walk(msg: Message, body: _Body, limits: Limits, problems: list[str]) -> None:
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type().lower()
        disposition = (part.get_content_disposition() or "").lower()
        filename = _filename(part, problems)
        is_text = ctype in ("text/plain", "text/html") and disposition != "attachment" and not filename
        payload = _payload(part, problems)
        if is_text:
            text = _decode(payload, part.get_content_charset(), problems)
            (body.plain if ctype == "text/plain" else body.html).append(text)
            continue
        if ctype == "message/rfc822" or part.get_content_maintype() == "multipart":
            filename = filename or "message.eml"
        _attachment(part, ctype, disposition, filename or "attachment", payload, body, limits, problems)


def _attachment(
    part: Message,
    ctype: str,
    disposition: str,
    filename: str,
    payload: bytes,
    body: _Body,
    limits: Limits,
    problems: list[str],
) -> None:
    ext = ("." + filename.rsplit(".", 1)[-1].lower()) if "." in filename else ""
    reason = None
    if len(body.attachments) >= limits.max_attachments:
        reason = "too_many"
    elif len(payload) > limits.max_attachment_bytes:
        reason = "too_large"
    elif ctype in limits.blocked_types or ext in limits.blocked_extensions:
        reason = "blocked_type"
    if reason is not None:
        body.skipped.append(Skipped(filename, ctype, len(payload), reason))
        return
    warning = _zip_warning(payload, limits) if ext == ".zip" or ctype.endswith("zip") else None
    if warning:
        problems.append(f"attachment {filename!r}: {warning}")
    cid = part.get("content-id")
    body.attachments.append(
        Attachment(
            filename=filename,
            content_type=ctype,
            data=payload,
            inline=disposition == "inline",
            content_id=str(cid).strip("<> ") if cid else None,
            warning=warning,
        )
    )


def _zip_warning(data: bytes, limits: Limits) -> str | None:
    """Read a zip's directory (never its contents): a huge declared size or ratio is a zip bomb."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            declared = sum(max(i.file_size, 0) for i in zf.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return "unreadable_zip"
    if declared > limits.zip_max_bytes or declared > max(len(data), 1) * limits.zip_max_ratio:
        return "zip_bomb"
    return None


def _payload(part: Message, problems: list[str]) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception as exc:  # broken base64 / quoted-printable
        problems.append(f"undecodable part: {type(exc).__name__}")
        data = None
    if isinstance(data, bytes):
        return data
    raw = part.get_payload()
    return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""


def _decode(data: bytes, charset: str | None, problems: list[str]) -> str:
    """Decode with the declared charset; if it is unknown or lies, UTF-8, then Windows-1252, then
    Latin-1 (which never fails), noting the fallback."""
    declared = (charset or "").strip().lower() or None
    for candidate in (declared, "utf-8"):
        if candidate is None:
            continue
        try:
            return data.decode(candidate)
        except LookupError:
            problems.append(f"unknown charset {candidate!r}")
        except UnicodeDecodeError:
            if candidate == declared:
                problems.append(f"text is not {candidate!r}")
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _sender(msg: Message, problems: list[str]) -> tuple[str, str]:
    """The From name and address. The address comes from the header's structure (or the raw header),
    never from decoded text: an RFC 2047 display name may decode to ``x\\r\\nBcc: <victim@...>``."""
    try:
        value = msg.get("from")
        addresses = getattr(value, "addresses", None)
        if addresses:
            first = addresses[0]
            return str(first.display_name or ""), str(first.addr_spec or "")
    except Exception:
        problems.append("bad header from")
    raw = next((str(v) for k, v in msg.raw_items() if k.lower() == "from"), "")
    name, address = parseaddr(raw)  # encoded words are only ever the name
    try:
        name = str(make_header(decode_header(name)))
    except Exception:
        name = ""
    return name, address


def _header(msg: Message, name: str, problems: list[str]) -> str:
    try:
        value = msg.get(name)
        if value is None:
            return ""
        return str(value)
    except Exception:  # an RFC 2047 word the parser chokes on: decode it by hand, leniently
        problems.append(f"bad header {name}")
    try:
        raw = next((str(v) for k, v in msg.raw_items() if k.lower() == name), "")
        return str(make_header(decode_header(raw)))
    except Exception:
        return ""


def _filename(part: Message, problems: list[str]) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        problems.append("bad attachment filename")
        return None
    if not name:
        return None
    clean = safe_header_text(str(name), max_chars=200).replace("/", "_").replace("\\", "_")
    return clean.lstrip(".") or "attachment"


def _ids(value: str) -> list[str]:
    return [m for m in _MSGID.findall(value)][:100]


def _first_id(value: str) -> str | None:
    found = _ids(value)
    if found:
        return found[0]
    bare = value.strip()
    return bare[:500] if bare and " " not in bare else None


def _addresses(value: str) -> tuple[str, ...]:
    try:
        return tuple(normalize(a) for _, a in getaddresses([value]) if "@" in a)[:100]
    except Exception:
        return ()


def as_email_message(raw: bytes) -> EmailMessage:
    """The stdlib object, for callers that need more than ParsedEmail (e.g. the original headers)."""
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg
