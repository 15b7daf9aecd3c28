"""Schema migrations (Alembic), run by ``chatserver migrate``, at embedded start, and at any start with
``--migrate`` / ``CHATSERVER_AUTO_MIGRATE``.

Migrating and first-start setup run under :func:`setup_lock` (a PostgreSQL advisory lock), so processes
started together on a fresh database take turns: the first migrates and creates the admin, the others
find it done. :func:`require_current` turns an unmigrated database into one line saying what to run.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from chatserver.errors import ConfigError

MIGRATIONS = Path(__file__).parent / "migrations"
SETUP_LOCK = 0x63686174_73657475  # "chatsetu": the advisory lock key for migrate + first-start setup
_OR = "or start with `chatserver serve --migrate`, or set CHATSERVER_AUTO_MIGRATE=true"
HOW_TO_MIGRATE = f"run `chatserver migrate` ({_OR})"


def alembic_config(url: str = "") -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the database to the newest schema (idempotent)."""

    def run(connection: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(read)


@contextlib.asynccontextmanager
async def setup_lock(engine: AsyncEngine) -> AsyncIterator[None]:
    """Hold the setup lock for the block: on PostgreSQL a session advisory lock on a connection of its
    own (released when the block ends, or when the process dies); SQLite serializes writers itself."""
    if engine.dialect.name != "postgresql":
        yield
        return
    async with engine.connect() as conn:
        await conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": SETUP_LOCK})
        await conn.commit()
        try:
            yield
        finally:
            await conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": SETUP_LOCK})
            await conn.commit()


async def migrate(engine: AsyncEngine) -> None:
    """:func:`upgrade` under the setup lock (safe with several processes migrating at once)."""
    async with setup_lock(engine):
        await upgrade(engine)


async def require_current(engine: AsyncEngine) -> None:
    """Raise ConfigError (one line: what to run) unless the schema is at this version's head."""
    current = await current_revision(engine)
    head = head_revision()
    if current == head:
        return
    if current is None:
        raise ConfigError(f"the database has no chatserver schema yet: {HOW_TO_MIGRATE}")
    raise ConfigError(
        f"the database schema is at revision {current}, this version needs {head}: {HOW_TO_MIGRATE}"
    )
