"""First start: create the admin agent and a widget inbox when the database has neither."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from chatserver.auth.secrets import hash_password
from chatserver.model.types import Inbox, Role
from chatserver.settings import Settings
from chatserver.store.db import Database, make_engine
from chatserver.store.migrate import upgrade
from chatserver.store.store import Store


@dataclass(frozen=True)
class Bootstrap:
    inbox: Inbox | None
    admin_email: str | None
    generated_password: str | None


async def first_start(settings: Settings) -> Bootstrap:
    engine = make_engine(settings.database_url, pool_size=2)
    try:
        if settings.embedded:
            await upgrade(engine)
        store = Store(Database(engine))
        inboxes = await store.list_inboxes()
        created_admin = None
        generated = None
        if await store.count_agents() == 0:
            password = settings.admin_password
            if password is None:
                password = generated = secrets.token_urlsafe(12)
            await store.create_agent(
                email=settings.admin_email,
                name="Admin",
                role=Role.ADMIN,
                password_hash=hash_password(password),
            )
            created_admin = settings.admin_email
        if not inboxes:
            origins = {
                settings.base_url,
                f"http://localhost:{settings.port}",
                f"http://127.0.0.1:{settings.port}",
            }
            inboxes = [await store.create_inbox("Website", "widget", sorted(origins))]
        return Bootstrap(inboxes[0], created_admin, generated)
    finally:
        await engine.dispose()
