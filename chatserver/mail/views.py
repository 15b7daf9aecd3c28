"""How an email inbox is shown (never with its IMAP password)."""

from __future__ import annotations

from typing import Any

from chatserver.mail.config import email_config
from chatserver.model.types import Inbox


def email_inbox_wire(inbox: Inbox) -> dict[str, Any]:
    wire = inbox.to_wire()
    if inbox.channel == "email":
        cfg = email_config(inbox.config)
        wire["email"] = cfg.public() if cfg is not None else None
        wire.pop("allowed_origins", None)
    return wire
