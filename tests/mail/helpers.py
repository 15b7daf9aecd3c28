"""Real mail clients and servers for the email tests: smtplib against our inbound server, a Dovecot of
the test's own on a loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

from chatserver.mail.config import parse_email_config
from chatserver.mail.runner import MailServices
from chatserver.model.types import Inbox
from tests.e2e.harness import Server, free_port

ADDRESS = "support@shop.example"


def mail(
    body: str = "Hello, my order has not arrived.",
    *,
    sender: str = "Ann Customer <ann@example.org>",
    to: str = ADDRESS,
    subject: str = "Where is my order?",
    message_id: str | None = None,
    **headers: str,
) -> EmailMessage:
    m = EmailMessage()
    m["From"] = sender
    m["To"] = to
    m["Subject"] = subject
    m["Message-ID"] = message_id or f"<{os.urandom(8).hex()}@example.org>"
    for name, value in headers.items():
        m[name.replace("_", "-")] = value
    m.set_content(body)
    return m


def wire(msg: EmailMessage) -> bytes:
    """The message as it goes over SMTP (CRLF line ends)."""
    return msg.as_bytes(policy=SMTP)


def _send(port: int, msg: EmailMessage | bytes, sender: str, rcpts: list[str]) -> dict[str, Any]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        raw = msg if isinstance(msg, bytes) else wire(msg)
        return client.sendmail(sender, rcpts, raw)


async def send(
    port: int, msg: EmailMessage | bytes, *, sender: str = "ann@example.org", rcpts: list[str] | None = None
) -> dict[str, Any]:
    """smtplib in a thread (the server runs in this event loop); returns only after our 250."""
    return await asyncio.to_thread(_send, port, msg, sender, rcpts or [ADDRESS])


@contextlib.asynccontextmanager
async def mail_services(
    server: Server, *, tickets: str = "on-escalation", **overrides: Any
) -> AsyncIterator[tuple[MailServices, Inbox]]:
    """The mail services of `chatserver worker`, on the running test server's conversation service,
    with an email inbox for support@shop.example (``tickets``: when its mail becomes a ticket; the
    product's default is ``always``) and the SMTP server on a free port."""
    c = server.app.state.ctx
    settings = replace(server.settings, **{"smtp_listen": "127.0.0.1:0", **overrides})
    services = MailServices(settings, c.service, c.bus)
    config = parse_email_config(address=ADDRESS, tickets=tickets)
    inbox = await services.mail.create_email_inbox("Support", config)
    await services.start(imap=False)
    try:
        yield services, inbox
    finally:
        await services.stop()


# -- Dovecot ----------------------------------------------------------------------------------------------

DOVECOT = "/usr/sbin/dovecot"
PASSWORD = "imap-secret"


@dataclass
class Dovecot:
    root: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"imap://support:{PASSWORD}@127.0.0.1:{self.port}/Support"

    def client(self) -> Any:
        import imaplib

        c = imaplib.IMAP4("127.0.0.1", self.port)
        c.login("support", PASSWORD)
        return c

    def deliver(self, msg: EmailMessage, mailbox: str = "Support") -> None:
        """APPEND, as a delivering MTA would put it into the mailbox."""
        c = self.client()
        try:
            c.create(mailbox)
            typ, data = c.append(mailbox, None, None, wire(msg))
            assert typ == "OK", data
        finally:
            c.logout()

    def uids(self, mailbox: str) -> dict[int, str]:
        """UID -> flags of every mail in the mailbox."""
        c = self.client()
        try:
            typ, _ = c.select(mailbox)
            if typ != "OK":
                return {}
            typ, data = c.uid("fetch", "1:*", "(UID FLAGS)")
            out = {}
            for line in data:
                if isinstance(line, bytes) and b"UID" in line:
                    text = line.decode()
                    uid = int(text.split("UID ")[1].split()[0].rstrip(")"))
                    out[uid] = text.split("FLAGS (")[1].split(")")[0]
            return out
        finally:
            c.logout()

    def recreate(self, mailbox: str = "Support") -> None:
        """Delete and create the mailbox again: it gets a new UIDVALIDITY."""
        c = self.client()
        try:
            assert c.delete(mailbox)[0] == "OK"
            assert c.create(mailbox)[0] == "OK"
        finally:
            c.logout()


def _open_path_for(path: Path, user: str) -> None:
    """Dovecot refuses to read mail as root: let its user reach the test's directory."""
    for parent in [path, *path.parents]:
        if parent in (Path("/"), Path("/tmp")):
            break
        parent.chmod(parent.stat().st_mode | 0o711)
    pw = pwd.getpwnam(user)
    os.chown(path, pw.pw_uid, pw.pw_gid)


@contextlib.contextmanager
def dovecot(tmp: Path) -> Iterator[Dovecot]:
    """A Dovecot of our own: static passdb/userdb, a maildir, IMAP on a loopback port (its log is
    copied into ``tmp`` at the end)."""
    assert shutil.which(DOVECOT) or Path(DOVECOT).exists(), (
        "dovecot-imapd is not installed (.ci/run installs it)"
    )
    # A directory of its own right under /tmp, not the test's: unix sockets live under base_dir (a
    # sun_path holds 108 bytes), and pytest makes its own /tmp/pytest-of-<user> private again whenever
    # a test session starts, which would lock Dovecot's mail user out of a running test's maildir.
    root = Path(tempfile.mkdtemp(prefix="dovecot-", dir="/tmp"))
    run = root / "run"
    for sub in ("run", "state", "mail"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    _open_path_for(root / "mail", "dovecot")
    port = free_port()
    conf = root / "dovecot.conf"
    conf.write_text(
        f"""base_dir = {run}
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
first_valid_gid = 1
mail_uid = dovecot
mail_gid = dovecot
passdb {{
  driver = static
  args = password={PASSWORD}
}}
userdb {{
  driver = static
  args = home={root}/mail/%u
}}
mail_location = maildir:{root}/mail/%u/Maildir
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
}}
service submission-login {{
  inet_listener submission {{
    port = 0
  }}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0600
  }}
}}
"""
    )
    with (root / "stderr.log").open("wb") as err:
        proc = subprocess.Popen([DOVECOT, "-F", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=err)
    server = Dovecot(root, port, proc)
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dovecot did not start: {(root / 'stderr.log').read_text()}")
            time.sleep(0.1)
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with contextlib.suppress(OSError):
            shutil.copy(root / "dovecot.log", tmp / "dovecot.log")
        shutil.rmtree(root, ignore_errors=True)
