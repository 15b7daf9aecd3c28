"""Email inbox settings, kept in ``inboxes.config`` (JSON). Pure: parsing and validation.

::

    {"email": {"address": "support@shop.example", "tickets": "always",
               "imap": {"url": "imaps://user:pass@host/INBOX", "processed": "move:Processed"}}}

The IMAP password lives only in the stored URL: :meth:`EmailConfig.public` (what GET returns) drops it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, unquote, urlsplit

__all__ = ["ConfigProblem", "EmailConfig", "ImapConfig", "parse_email_config"]

_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


class ConfigProblem(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class ImapConfig:
    url: str
    host: str
    port: int
    tls: bool
    user: str
    password: str
    mailbox: str
    processed: str
    """``flag`` (mark \\Seen) or ``move:<mailbox>``."""

    @property
    def move_to(self) -> str | None:
        return self.processed.split(":", 1)[1] if self.processed.startswith("move:") else None

    @property
    def public_url(self) -> str:
        scheme = "imaps" if self.tls else "imap"
        return (
            f"{scheme}://{quote(self.user, safe='')}@{self.host}:{self.port}/{quote(self.mailbox, safe='')}"
        )


@dataclass(frozen=True, slots=True)
class EmailConfig:
    address: str
    tickets: Literal["always", "on-escalation"] = "always"
    imap: ImapConfig | None = None

    def to_json(self) -> dict[str, Any]:
        email: dict[str, Any] = {"address": self.address, "tickets": self.tickets}
        if self.imap is not None:
            email["imap"] = {"url": self.imap.url, "processed": self.imap.processed}
        return {"email": email}

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {"address": self.address, "tickets": self.tickets, "imap": None}
        if self.imap is not None:
            out["imap"] = {"url": self.imap.public_url, "processed": self.imap.processed}
        return out


def parse_address(raw: object) -> str:
    if not isinstance(raw, str) or not _ADDRESS.match(raw.strip()) or "+" in raw.split("@")[0]:
        raise ConfigProblem("address", "address must be an email address without a +tag")
    return raw.strip().lower()


def parse_imap(url: object, processed: object = None) -> ImapConfig:
    if not isinstance(url, str) or len(url) > 2000:
        raise ConfigProblem("imap_url", "imap_url must be imap://user:password@host[:port]/MAILBOX")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigProblem("imap_url", f"imap_url: {exc}") from exc
    if parts.scheme not in ("imap", "imaps") or not parts.hostname or not parts.username:
        raise ConfigProblem("imap_url", "imap_url must be imap:// or imaps://user:password@host/MAILBOX")
    if parts.password is None:
        raise ConfigProblem("imap_url", "imap_url needs the password (imaps://user:password@host/INBOX)")
    tls = parts.scheme == "imaps"
    mailbox = unquote(parts.path.lstrip("/")) or "INBOX"
    mode = "flag" if processed is None else processed
    if not isinstance(mode, str) or not (mode == "flag" or re.fullmatch(r"move:[^\r\n\"*%]{1,200}", mode)):
        raise ConfigProblem("imap_processed", "imap_processed must be flag or move:<mailbox>")
    if mode.startswith("move:") and mode[5:] == mailbox:
        raise ConfigProblem("imap_processed", "cannot move processed mail into the mailbox it is read from")
    return ImapConfig(
        url=url,
        host=parts.hostname,
        port=port or (993 if tls else 143),
        tls=tls,
        user=unquote(parts.username),
        password=unquote(parts.password),
        mailbox=mailbox,
        processed=mode,
    )


def parse_email_config(
    *, address: object, imap_url: object = None, imap_processed: object = None, tickets: object = None
) -> EmailConfig:
    """From the CLI flags or the REST body (same names); raises ConfigProblem naming the field."""
    mode = "always" if tickets is None else tickets
    if mode not in ("always", "on-escalation"):
        raise ConfigProblem("tickets", "tickets must be always or on-escalation")
    if imap_url is None and imap_processed is not None:
        raise ConfigProblem("imap_processed", "imap_processed needs imap_url")
    imap = parse_imap(imap_url, imap_processed) if imap_url is not None else None
    return EmailConfig(address=parse_address(address), tickets=mode, imap=imap)


def email_config(config: dict[str, Any] | None) -> EmailConfig | None:
    """The stored JSON back (None for an inbox without email settings)."""
    email = (config or {}).get("email")
    if not isinstance(email, dict):
        return None
    imap = email.get("imap")
    return parse_email_config(
        address=email.get("address"),
        imap_url=imap.get("url") if isinstance(imap, dict) else None,
        imap_processed=imap.get("processed") if isinstance(imap, dict) else None,
        tickets=email.get("tickets"),
    )
