"""First start: create the admin agent and a widget inbox when the database has neither.

Idempotent and safe with several processes starting at once: the whole setup (and the migration, when
allowed) runs under the setup lock, and an admin created meanwhile by another process (SQLite, where
there is no such lock) counts as done. On a database without the current schema, and no permission to
migrate, it raises ConfigError saying what to run.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from chatserver.auth.secrets import hash_password
from chatserver.errors import Conflict
from chatserver.model.types import Inbox, Role
from chatserver.settings import Settings
from chatserver.store.db import Database, make_engine
from chatserver.store.migrate import require_current, setup_lock, upgrade
from chatserver.store.store import Store


@dataclass(frozen=True)
class Bootstrap:
    inbox: Inbox | None
    admin_email: str | None
    generated_password: str | None


async def first_start(settings: Settings, *, migrate: bool = False) -> Bootstrap:
    """Migrate (embedded, ``migrate``, or CHATSERVER_AUTO_MIGRATE), check the schema, then create the
    admin and the first inbox if there are none."""
    engine = make_engine(settings.database_url, pool_size=2)
    try:
        async with setup_lock(engine):
            if settings.embedded or migrate or settings.auto_migrate:
                await upgrade(engine)
            else:
                await require_current(engine)
            return await _setup(settings, Store(Database(engine)))
    finally:
        await engine.dispose()


async def _setup(settings: Settings, store: Store) -> Bootstrap:
    inboxes = await store.list_inboxes()
    created_admin = None
    generated = None
    if await store.count_agents() == 0:
        password = settings.admin_password
        if password is None:
            password = generated = secrets.token_urlsafe(12)
        try:
            await store.create_agent(
                email=settings.admin_email,
                name="Admin",
                role=Role.ADMIN,
                password_hash=hash_password(password),
            )
            created_admin = settings.admin_email
        except Conflict:  # another process created it first
            generated = None
    if not inboxes:
        origins = {
            settings.base_url,
            f"http://localhost:{settings.port}",
            f"http://127.0.0.1:{settings.port}",
        }
        inboxes = [await store.create_inbox("Website", "widget", sorted(origins))]
    return Bootstrap(inboxes[0], created_admin, generated)
