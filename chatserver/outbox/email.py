"""Email as an outbox payload: what a ticket mail holds, and the RFC 5322 message built from it.

Pure. Header values never carry CR or LF: whatever a user typed (a subject with an injected
``Bcc:``) is flattened to one line of text before it reaches a header.

A payload may name its own sender (``from_address`` and ``from_name``: an email inbox answering in
its thread, see :mod:`adapters.email.outgoing`) and mark itself automatic (``auto_submitted``:
``auto-replied`` or ``auto-generated``, RFC 3834); otherwise it comes from ``CHATSERVER_MAIL_FROM``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from typing import Any

from adapters.email.headers import HeaderError, format_address
from chatserver.errors import PermanentDeliveryError

EMAIL_KIND = "email"
_BREAKS = re.compile(r"[\r\n\x00\u2028\u2029\x85]+")


def header_text(value: str, *, max_len: int = 900) -> str:
    """One line of text, safe as a header value: line breaks become spaces."""
    return _BREAKS.sub(" ", value).strip()[:max_len]


def email_payload(
    *,
    to: str,
    subject: str,
    text: str,
    message_id: str,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    reply_to: str | None = None,
    to_name: str | None = None,
) -> dict[str, Any]:
    return {
        "to": to,
        "to_name": to_name,
        "subject": subject,
        "text": text,
        "message_id": message_id,
        "in_reply_to": in_reply_to,
        "references": list(references),
        "reply_to": reply_to,
    }


def build_message(payload: Mapping[str, Any], *, mail_from: str) -> EmailMessage:
    """The message to send; a payload that cannot make one is a permanent failure."""
    try:
        to = header_text(str(payload["to"]))
        msg = EmailMessage()
        sender = payload.get("from_address")
        if sender:
            msg["From"] = format_address(_optional(payload.get("from_name")), header_text(str(sender)))
        else:
            msg["From"] = header_text(mail_from)
        name = payload.get("to_name")
        msg["To"] = formataddr((header_text(str(name)), to)) if name else to
        msg["Subject"] = header_text(str(payload["subject"]))
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = header_text(str(payload["message_id"]))
        if payload.get("in_reply_to"):
            msg["In-Reply-To"] = header_text(str(payload["in_reply_to"]))
        refs = [header_text(str(r)) for r in payload.get("references") or []]
        if refs:
            msg["References"] = " ".join(refs)
        if payload.get("reply_to"):
            msg["Reply-To"] = header_text(str(payload["reply_to"]))
        automatic = payload.get("auto_submitted")
        if automatic in ("auto-replied", "auto-generated"):
            msg["Auto-Submitted"] = str(automatic)
            msg["X-Auto-Response-Suppress"] = "All"  # Exchange: no out-of-office answers to this
        msg.set_content(str(payload["text"]))
    except (KeyError, ValueError, TypeError, HeaderError) as exc:
        raise PermanentDeliveryError(f"not a valid email: {exc}") from exc
    if "@" not in to:
        raise PermanentDeliveryError("the recipient has no valid email address")
    return msg


def _optional(value: object) -> str | None:
    return header_text(str(value), max_len=200) if value else None
