"""A real SMTP server (aiosmtpd) for tests, answering DATA with a scripted list of replies."""

from __future__ import annotations

import contextlib
import email
import email.policy
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tests.e2e.harness import free_port


@dataclass
class Mailbox:
    """What the server received. ``replies`` are used in order for DATA; then 250."""

    replies: list[str] = field(default_factory=list)
    received: list[EmailMessage] = field(default_factory=list)
    attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.attempts += 1
            reply = self.replies.pop(0) if self.replies else "250 OK"
            if reply.startswith("250"):
                msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
                assert isinstance(msg, EmailMessage)
                msg["X-Envelope-To"] = ",".join(envelope.rcpt_tos)
                self.received.append(msg)
        return reply


@dataclass
class SmtpServer:
    url: str
    mailbox: Mailbox


@contextlib.contextmanager
def smtp_server(*replies: str) -> Iterator[SmtpServer]:
    mailbox = Mailbox(list(replies))
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer(f"smtp://127.0.0.1:{port}", mailbox)
    finally:
        controller.stop()
