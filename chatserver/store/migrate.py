"""Schema migrations (Alembic), run by ``chatserver migrate``, at embedded start, and at any start with
``--migrate`` / ``CHATSERVER_AUTO_MIGRATE``.

Migrating and first-start setup run under :func:`setup_lock` (a PostgreSQL advisory lock), so processes
started together on a fresh database take turns: the first migrates and creates the admin, the others
find it done. :func:`require_current` turns an unmigrated database into one line saying what to run.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from chatserver.errors import ConfigError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
SETUP_LOCK = 0x63686174_73657475  # "chatsetu": the advisory lock key for migrate + first-start setup
_OR = "or start with `chatserver serve --migrate`, or set CHATSERVER_AUTO_MIGRATE=true"
HOW_TO_MIGRATE = f"run `chatserver migrate` ({_OR})"


def alembic_config(url: str = "") -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The newest revision, as Alembic reads the migration scripts."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


_REVISION = re.compile(r'^(down_revision|revision) = (?:"([^"]*)"|None)$', re.MULTILINE)


@functools.cache
def known_head() -> str | None:
    """The newest revision read off the scripts' ``revision`` / ``down_revision`` lines, without
    importing Alembic (every process start asks; Alembic's import alone cost 0.4 s of CPU on the test
    machine). None unless the scripts form one chain: then only Alembic answers."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        found = dict(_REVISION.findall(path.read_text(encoding="utf-8")))
        if not found.get("revision"):
            return None
        revisions.add(found["revision"])
        if found.get("down_revision"):
            revised.add(found["down_revision"])
    heads = revisions - revised
    return heads.pop() if len(heads) == 1 else None


async def upgrade(engine: AsyncEngine, *, always: bool = False) -> None:
    """Bring the database to the newest schema (idempotent). A database already there costs one read and
    no Alembic, unless ``always`` (``chatserver migrate``: Alembic runs and logs as it does)."""
    head = known_head()
    if not always and head is not None and await current_revision(engine) == head:
        return
    from alembic import command

    def run(connection: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The database's revision (Alembic's ``alembic_version`` table), None before the first migration."""

    def read(connection: Connection) -> str | None:
        if not sa.inspect(connection).has_table("alembic_version"):
            return None
        found = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
        if len(found) > 1:  # branches: Alembic knows what that means
            from alembic.runtime.migration import MigrationContext

            return MigrationContext.configure(connection).get_current_revision()
        return found[0] if found else None

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


async def migrate(engine: AsyncEngine, *, always: bool = False) -> None:
    """:func:`upgrade` under the setup lock (safe with several processes migrating at once)."""
    async with setup_lock(engine):
        await upgrade(engine, always=always)


async def require_current(engine: AsyncEngine) -> None:
    """Raise ConfigError (one line: what to run) unless the schema is at this version's head."""
    current = await current_revision(engine)
    head = known_head() or head_revision()
    if current == head:
        return
    if current is None:
        raise ConfigError(f"the database has no chatserver schema yet: {HOW_TO_MIGRATE}")
    raise ConfigError(
        f"the database schema is at revision {current}, this version needs {head}: {HOW_TO_MIGRATE}"
    )
