"""The login guard: throttling per account and per client address, and bounded password hashing.

Every argon2 computation (verify at login, hash when a password is set) runs in a thread, at most
``hash_concurrency`` at once per process: each costs about 64 MiB and tens of milliseconds of CPU, so a
flood of logins must queue rather than exhaust the machine. Attempts are checked against the throttle
before any hashing, and again once a hashing slot is free.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from chatserver.auth.secrets import hash_password, verify_password
from chatserver.auth.throttle import (
    Decision,
    ThrottlePolicy,
    ThrottleStore,
    account_key,
    address_key,
    combine,
    decide,
)
from chatserver.errors import RateLimited

log = logging.getLogger(__name__)


class LoginThrottled(RateLimited):
    """Too many failed logins for this account or from this address; ``retry_after_s`` says when."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            f"too many failed logins; try again in {retry_after_s} s",
            data={"retry_after_s": retry_after_s},
        )
        self.retry_after_s = retry_after_s


class LoginGuard:
    def __init__(
        self,
        store: ThrottleStore,
        *,
        account: ThrottlePolicy,
        address: ThrottlePolicy,
        hash_concurrency: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._account = account
        self._address = address
        self._slots = asyncio.Semaphore(hash_concurrency)
        self._clock = clock
        self._hashing = 0

    @property
    def hashing(self) -> int:
        """argon2 computations running now (at most ``hash_concurrency``)."""
        return self._hashing

    async def decision(self, email: str, host: str | None) -> Decision:
        acct, addr = await self._store.get([account_key(email), address_key(host)])
        now = self._clock()
        return combine([decide(self._account, acct, now), decide(self._address, addr, now)])

    async def check(self, email: str, host: str | None) -> None:
        """Raise :class:`LoginThrottled` when this account or this address must wait."""
        found = await self.decision(email, host)
        if not found.allowed:
            log.info("login throttled for %r from %s (retry in %d s)", email, host, found.retry_after_s)
            raise LoginThrottled(found.retry_after_s)

    async def verify(self, email: str, host: str | None, password_hash: str | None, password: str) -> bool:
        """Check the throttle, then the password (in a hashing slot). The same work whether or not the
        account exists; the caller reports the outcome with :meth:`failed` or :meth:`succeeded`."""
        await self.check(email, host)
        async with self._slots:
            await self.check(email, host)  # others may have failed while this one waited for a slot
            self._hashing += 1
            try:
                return await asyncio.to_thread(verify_password, password_hash, password)
            finally:
                self._hashing -= 1

    async def succeeded(self, email: str) -> None:
        """Clear the account's count (never the address's: one's own account must not reset it)."""
        await self._store.clear(account_key(email))

    async def failed(self, email: str, host: str | None) -> None:
        log.warning("failed login for %r from %s", email, host)
        ttl = max(self._account.window_s, self._address.window_s)
        await self._store.fail([account_key(email), address_key(host)], self._clock(), ttl)

    async def hash(self, password: str) -> str:
        async with self._slots:
            self._hashing += 1
            try:
                return await asyncio.to_thread(hash_password, password)
            finally:
                self._hashing -= 1
