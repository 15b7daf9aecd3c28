"""The email sender: aiosmtplib to ``CHATSERVER_SMTP_URL``, SMTP replies mapped to our errors.

``smtp://user:pass@host:port`` (plain, or ``?starttls=1``), ``smtps://`` (implicit TLS). A 4xx reply,
a timeout or a dropped connection is temporary; a 5xx reply is permanent.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from chatserver.errors import ConfigError, PermanentDeliveryError, TemporaryDeliveryError
from chatserver.outbox.email import build_message
from chatserver.outbox.registry import Delivery


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool
    start_tls: bool
    timeout_s: float = 30.0

    @classmethod
    def from_url(cls, url: str) -> SmtpConfig:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ConfigError("CHATSERVER_SMTP_URL must start with smtp:// or smtps://")
        if not parts.hostname:
            raise ConfigError("CHATSERVER_SMTP_URL has no host")
        query = parse_qs(parts.query)
        implicit = parts.scheme == "smtps"
        starttls = query.get("starttls", ["0"])[0].lower() in ("1", "true", "yes")
        try:
            port = parts.port or (465 if implicit else 587 if starttls else 25)
        except ValueError as exc:
            raise ConfigError("CHATSERVER_SMTP_URL has a bad port") from exc
        return cls(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=implicit,
            start_tls=starttls and not implicit,
        )


def _reason(code: int, message: str) -> str:
    return f"SMTP {code} {message.strip()}"[:500]


class SmtpSender:
    def __init__(self, config: SmtpConfig, mail_from: str) -> None:
        self.config = config
        self.mail_from = mail_from

    async def __call__(self, delivery: Delivery) -> None:
        msg = build_message(delivery.payload, mail_from=self.mail_from)
        c = self.config
        try:
            await aiosmtplib.send(
                msg,
                hostname=c.host,
                port=c.port,
                username=c.username,
                password=c.password,
                use_tls=c.use_tls,
                start_tls=c.start_tls if c.start_tls else False,
                timeout=c.timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            reason = "; ".join(_reason(r.code, r.message) for r in exc.recipients)
            if all(400 <= code < 500 for code in codes):
                raise TemporaryDeliveryError(reason) from exc
            raise PermanentDeliveryError(reason) from exc
        except aiosmtplib.SMTPResponseException as exc:
            if 400 <= exc.code < 500:
                raise TemporaryDeliveryError(_reason(exc.code, exc.message)) from exc
            raise PermanentDeliveryError(_reason(exc.code, exc.message)) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise TemporaryDeliveryError(f"SMTP connection failed: {type(exc).__name__}") from exc
