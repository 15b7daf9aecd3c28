"""Inbound IMAP: one poller per configured mailbox (aioimaplib), with IDLE where the server has it and
polling otherwise.

The database remembers (mailbox, UIDVALIDITY, last imported UID) per inbox, advanced after each mail is
committed, so a restart neither re-imports nor misses mail and downtime is backfilled on the next
start. When UIDVALIDITY changes (the mailbox was recreated, UIDs mean something else now) the poller
reads the mailbox again from the start and the import skips, by Message-ID, what it already has.
Processed mail is flagged \\Seen or moved, as configured, only after its commit. A lease makes sure one
process polls a mailbox at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
from collections.abc import Callable
from email.parser import BytesHeaderParser
from email.utils import getaddresses

from aioimaplib import aioimaplib

from adapters.email.address import normalize
from chatserver.mail.config import EmailConfig, ImapConfig
from chatserver.mail.ingest import Ingestor
from chatserver.mail.store import MailStore
from chatserver.model.types import Inbox
from chatserver.routing.lease import Lease

log = logging.getLogger(__name__)

_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_FETCH_UID = re.compile(rb"UID (\d+)")
CONNECT_TIMEOUT_S = 15.0
IDLE_SLICE_S = 10.0
"""Longest IDLE before it is renewed (so the lease is renewed too and a dead link is noticed)."""


class ImapError(Exception):
    """The IMAP server refused a command (mapped from aioimaplib responses at this boundary)."""


LeaseFactory = Callable[[str], Lease]


class ImapPoller:
    def __init__(
        self,
        inbox: Inbox,
        config: EmailConfig,
        ingestor: Ingestor,
        mail: MailStore,
        *,
        poll_s: float,
        lease: Lease,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        assert config.imap is not None
        self.inbox = inbox
        self.config = config
        self.imap: ImapConfig = config.imap
        self.ingestor = ingestor
        self.mail = mail
        self.poll_s = poll_s
        self.lease = lease
        self.ssl_context = ssl_context
        self.imported = 0
        self.synced = asyncio.Event()
        """Set after each completed sync (tests and the supervisor's health wait on it)."""

    async def run(self) -> None:
        backoff = 1.0
        while True:
            try:
                if not await self.lease.refresh():
                    await asyncio.sleep(IDLE_SLICE_S / 2)
                    continue
                await self._session()
                backoff = 1.0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # network, TLS, refused login: retry with backoff, never die
                log.warning(
                    "IMAP %s (%s): %s; retrying in %.0fs", self.imap.public_url, self.inbox.id, exc, backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60.0)

    async def stop(self) -> None:
        await self.lease.release()

    async def _connect(self) -> aioimaplib.IMAP4:
        if self.imap.tls:
            client: aioimaplib.IMAP4 = aioimaplib.IMAP4_SSL(
                self.imap.host, self.imap.port, timeout=CONNECT_TIMEOUT_S, ssl_context=self.ssl_context
            )
        else:
            client = aioimaplib.IMAP4(self.imap.host, self.imap.port, timeout=CONNECT_TIMEOUT_S)
        try:
            await client.wait_hello_from_server()
            _ok(await client.login(self.imap.user, self.imap.password), "LOGIN")
        except BaseException:
            _close(client)
            raise
        return client

    async def _session(self) -> None:
        client = await self._connect()
        try:
            if self.imap.move_to:
                await client.create(_quote(self.imap.move_to))  # fails harmlessly when it exists
            while await self.lease.refresh():
                await self.sync(client)
                self.synced.set()
                await self._wait(client)
        finally:
            with contextlib.suppress(Exception):
                if client.has_pending_idle():
                    client.idle_done()
                async with asyncio.timeout(5):
                    await client.logout()
            _close(client)

    async def _wait(self, client: aioimaplib.IMAP4) -> None:
        """Until the server reports a change (IDLE) or the poll interval passed."""
        slice_s = min(self.poll_s, IDLE_SLICE_S)
        if not client.has_capability("IDLE"):
            await asyncio.sleep(slice_s)
            return
        idle = await client.idle_start(timeout=slice_s + 5)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(client.wait_server_push(), slice_s)
        finally:
            if client.has_pending_idle():
                client.idle_done()
            async with asyncio.timeout(slice_s + 5):
                await idle

    async def sync(self, client: aioimaplib.IMAP4) -> int:
        """Import what arrived since the last UID; returns how many were imported."""
        selected = await client.select(_quote(self.imap.mailbox))
        _ok(selected, f"SELECT {self.imap.mailbox}")
        uidvalidity = _uidvalidity(selected.lines)
        known = await self.mail.imap_position(self.inbox.id)
        last = 0
        if known is not None:
            mailbox, known_validity, known_last = known
            if mailbox == self.imap.mailbox and known_validity == uidvalidity:
                last = known_last
            else:
                log.warning(
                    "IMAP %s: UIDVALIDITY changed (%s -> %d): reading the mailbox again; mail already "
                    "imported is skipped by Message-ID",
                    self.imap.public_url, known_validity, uidvalidity,
                )  # fmt: skip
        searched = await client.uid_search(f"UID {last + 1}:*")
        _ok(searched, "UID SEARCH")
        uids = sorted(
            {
                int(n)
                for line in searched.lines[:-1]
                for n in bytes(line).split()
                if n.isdigit() and int(n) > last
            }
        )
        count = 0
        for uid in uids:
            raw = await self._fetch(client, uid)
            if raw is None:
                continue  # expunged meanwhile
            result = await self.ingestor.ingest(
                raw, inbox=self.inbox, config=self.config, recipients=_recipients(raw), source="imap"
            )
            await self.mail.set_imap_position(self.inbox.id, self.imap.mailbox, uidvalidity, uid)
            last = uid  # (a first sync must not write its starting point back over this below)
            await self._processed(client, uid)
            count += result.outcome == "imported"
        if known is None or (not uids and (known[0], known[1]) != (self.imap.mailbox, uidvalidity)):
            await self.mail.set_imap_position(self.inbox.id, self.imap.mailbox, uidvalidity, last)
        self.imported += count
        if uids:
            log.info("IMAP %s: %d new mail(s), %d imported", self.imap.public_url, len(uids), count)
        return count

    async def _fetch(self, client: aioimaplib.IMAP4, uid: int) -> bytes | None:
        fetched = await client.uid("fetch", str(uid), "(UID BODY.PEEK[])")
        _ok(fetched, "UID FETCH")
        lines = fetched.lines
        for i, line in enumerate(lines[:-1]):
            if isinstance(line, bytes) and b"FETCH" in line and i + 1 < len(lines):
                found = _FETCH_UID.search(line)
                body = lines[i + 1]
                if (found is None or int(found[1]) == uid) and isinstance(body, bytearray):
                    return bytes(body)
        return None

    async def _processed(self, client: aioimaplib.IMAP4, uid: int) -> None:
        target = self.imap.move_to
        if target is None:
            _ok(await client.uid("store", str(uid), "+FLAGS.SILENT", "(\\Seen)"), "UID STORE")
        elif client.has_capability("MOVE"):
            _ok(await client.uid("move", str(uid), _quote(target)), "UID MOVE")
        else:
            _ok(await client.uid("copy", str(uid), _quote(target)), "UID COPY")
            _ok(await client.uid("store", str(uid), "+FLAGS.SILENT", "(\\Deleted)"), "UID STORE")
            if client.has_capability("UIDPLUS"):
                _ok(await client.uid("expunge", str(uid)), "UID EXPUNGE")


def _close(client: aioimaplib.IMAP4) -> None:
    transport = getattr(getattr(client, "protocol", None), "transport", None)
    if transport is not None:
        transport.close()


def _ok(response: aioimaplib.Response, what: str) -> None:
    if response.result != "OK":
        text = b" ".join(bytes(x) for x in response.lines[-1:]).decode("utf-8", "replace")[:200]
        raise ImapError(f"{what} refused: {response.result} {text}")


def _uidvalidity(lines: list[bytes]) -> int:
    for line in lines:
        found = _UIDVALIDITY.search(bytes(line))
        if found:
            return int(found[1])
    raise ImapError("the server did not say the mailbox's UIDVALIDITY")


def _quote(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _recipients(raw: bytes) -> list[str]:
    """The addresses the mail was for: the envelope is gone, the headers tell (the delivering server's
    Delivered-To / X-Original-To first)."""
    try:
        headers = BytesHeaderParser().parsebytes(raw[: 256 * 1024])
        values = [
            str(v)
            for name in ("delivered-to", "x-original-to", "to", "cc")
            for v in headers.get_all(name, failobj=[])
        ]
        return [normalize(a) for _, a in getaddresses(values) if "@" in a]
    except Exception:
        return []


class ImapSupervisor:
    """Runs one poller per email inbox with an IMAP mailbox; follows configuration changes."""

    def __init__(
        self,
        ingestor: Ingestor,
        mail: MailStore,
        *,
        poll_s: float,
        lease_for: LeaseFactory,
        rescan_s: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.ingestor = ingestor
        self.mail = mail
        self.poll_s = poll_s
        self.lease_for = lease_for
        self.rescan_s = rescan_s
        self.ssl_context = ssl_context
        self.pollers: dict[str, tuple[str, ImapPoller, asyncio.Task[None]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.rescan()
        self._task = asyncio.create_task(self._loop(), name="imap-supervisor")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.rescan_s)
            try:
                await self.rescan()
            except Exception:
                log.exception("IMAP configuration scan failed")

    async def rescan(self) -> None:
        wanted = {
            inbox.id: (inbox, cfg) for inbox, cfg in await self.mail.email_inboxes() if cfg.imap is not None
        }
        for inbox_id in list(self.pollers):
            url, _, _ = self.pollers[inbox_id]
            imap = wanted[inbox_id][1].imap if inbox_id in wanted else None
            if imap is None or (imap.url, imap.processed) != tuple(url.split("\n")):
                await self._stop_one(inbox_id)
        for inbox_id, (inbox, cfg) in wanted.items():
            if inbox_id not in self.pollers and cfg.imap is not None:
                poller = ImapPoller(
                    inbox, cfg, self.ingestor, self.mail, poll_s=self.poll_s,
                    lease=self.lease_for(inbox_id), ssl_context=self.ssl_context,
                )  # fmt: skip
                task = asyncio.create_task(poller.run(), name=f"imap-{inbox_id}")
                self.pollers[inbox_id] = (f"{cfg.imap.url}\n{cfg.imap.processed}", poller, task)

    async def _stop_one(self, inbox_id: str) -> None:
        _, poller, task = self.pollers.pop(inbox_id)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await poller.stop()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for inbox_id in list(self.pollers):
            await self._stop_one(inbox_id)
