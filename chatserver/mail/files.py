"""Raw mail and attachments on disk (under CHATSERVER_MAIL_DIR), written durably (fsync) before the
message that refers to them is committed. Content-addressed: the same bytes are stored once."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from adapters.email.parse import Attachment


class MailFiles:
    def __init__(self, root: Path) -> None:
        self.root = root

    def raw_path(self, digest: str) -> Path:
        return self.root / "raw" / digest[:2] / f"{digest}.eml"

    def attachment_path(self, sha256: str) -> Path:
        return self.root / "attachments" / sha256[:2] / sha256

    async def save_raw(self, digest: str, raw: bytes) -> Path:
        path = self.raw_path(digest)
        await asyncio.to_thread(_write, path, raw)
        return path

    async def save_attachments(self, attachments: tuple[Attachment, ...]) -> None:
        def write_all() -> None:
            for att in attachments:
                _write(self.attachment_path(att.sha256), att.data)

        if attachments:
            await asyncio.to_thread(write_all)

    async def read(self, path: Path) -> bytes:
        return await asyncio.to_thread(path.read_bytes)


def _write(path: Path, data: bytes) -> None:
    if path.exists() and path.stat().st_size == len(data):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
