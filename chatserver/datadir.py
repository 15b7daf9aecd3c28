"""The data directory and the SQLite files are private to the server's user.

They hold password and session hashes and every message: the directory is created 0700, the database
and the secret key 0600 (under a 077 umask while creating, then chmod). SQLite gives its ``-wal`` and
``-shm`` files the database file's mode, so they are 0600 too. Files that already exist are left as the
operator made them, but ``chatserver serve`` logs one warning per file or directory that is wider.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) 0700; an existing directory is left alone."""
    if path.is_dir():
        return
    with private_umask():
        path.mkdir(parents=True, exist_ok=True)
    path.chmod(PRIVATE_DIR)


def create_private_file(path: Path, text: str = "") -> bool:
    """Create ``path`` 0600 with ``text``; False (and nothing written) when it exists already."""
    try:
        with private_umask():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as out:
        out.write(text)
    path.chmod(PRIVATE_FILE)
    return True


def sqlite_path(database_url: str) -> Path | None:
    """The database file of a SQLite URL (None for PostgreSQL and in-memory SQLite)."""
    if not database_url.startswith("sqlite"):
        return None
    _, sep, rest = database_url.partition(":///")
    path = rest.split("?", 1)[0]
    if not sep or not path or path == ":memory:":
        return None
    return Path(path)


def prepare_sqlite(database_url: str) -> None:
    """Before SQLite opens it: create the database's directory 0700 and the (empty) file 0600, so
    SQLite never creates them with the process's umask."""
    db = sqlite_path(database_url)
    if db is None:
        return
    make_private_dir(db.parent)
    create_private_file(db)


def private_paths(
    data_dir: Path | None, database_url: str, secret_file: Path | None
) -> list[tuple[Path, int]]:
    """Every path that must be private, with the widest mode allowed for it."""
    out: list[tuple[Path, int]] = [] if data_dir is None else [(data_dir, PRIVATE_DIR)]
    db = sqlite_path(database_url)
    if db is not None:
        if data_dir is None or db.parent.resolve() != data_dir.resolve():
            out.append((db.parent, PRIVATE_DIR))
        out += [(db, PRIVATE_FILE), (Path(f"{db}-wal"), PRIVATE_FILE), (Path(f"{db}-shm"), PRIVATE_FILE)]
    if secret_file is not None:
        out.append((secret_file, PRIVATE_FILE))
    return out


def wider_than_allowed(paths: list[tuple[Path, int]]) -> list[tuple[Path, int, int]]:
    """(path, mode, allowed) of each existing path with permission bits beyond ``allowed``."""
    found = []
    for path, allowed in paths:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & ~allowed:
            found.append((path, mode, allowed))
    return found


def warn_if_wider(paths: list[tuple[Path, int]]) -> int:
    """Log one warning per path that is wider than allowed; returns how many."""
    found = wider_than_allowed(paths)
    for path, mode, allowed in found:
        log.warning(
            "%s has mode %04o, wider than %04o: other users of this machine may read it (chmod %o %s)",
            path,
            mode,
            allowed,
            allowed,
            path,
        )
    return len(found)
