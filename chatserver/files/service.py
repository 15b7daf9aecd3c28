"""Recording, authorizing and linking files. A file belongs to one conversation: it is uploaded into it
(by its visitor or an agent), or stored from a channel or an email, and it is sent on at most one
message of that conversation. Only that conversation's participants can fetch it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row

from chatserver.errors import Invalid, NotFound, TooLarge
from chatserver.files.model import Attachment, check_type, clean_name, sign_link, stored_type
from chatserver.files.store import FileStore
from chatserver.model.ids import new_id, now_ms
from chatserver.model.types import Author
from chatserver.store.db import Database
from chatserver.store.schema import attachments

LINK_TTL_S = 300
"""How long a signed link to a file works (the client asks again for a fresh one)."""


@dataclass(frozen=True, slots=True)
class FileLimits:
    max_bytes: int
    types: tuple[str, ...]


def _attachment(r: Row[Any]) -> Attachment:
    return Attachment(
        r.id,
        r.conversation_id,
        r.message_id,
        r.sha256,
        r.name,
        r.content_type,
        r.size,
        r.uploader_kind,
        r.uploader_id,
        r.created_at,
    )


class AttachmentService:
    def __init__(self, db: Database, files: FileStore, limits: FileLimits, *, secret: str) -> None:
        self.db = db
        self.files = files
        self.limits = limits
        self._secret = secret

    async def create(
        self,
        conversation_id: str,
        uploader: Author,
        *,
        name: str | None,
        content_type: str | None,
        data: bytes,
        check: bool = True,
    ) -> Attachment:
        """Store a file in a conversation. ``check`` applies the upload limits (type, size); media from a
        channel or an email are stored under their own limits."""
        ctype = check_type(content_type, self.limits.types) if check else stored_type(content_type)
        if check and len(data) > self.limits.max_bytes:
            raise TooLarge(
                f"the file is over the limit of {self.limits.max_bytes} bytes",
                data={"limit": self.limits.max_bytes},
            )
        if not data:
            raise Invalid("the file is empty", data={"field": "body"})
        digest = await self.files.save(data)  # durable before the row refers to it
        att = Attachment(
            new_id("att_"),
            conversation_id,
            None,
            digest,
            clean_name(name),
            ctype,
            len(data),
            uploader.kind.value,
            uploader.id,
            now_ms(),
        )
        async with self.db.write() as conn:
            await conn.execute(
                attachments.insert().values(
                    id=att.id,
                    conversation_id=att.conversation_id,
                    message_id=None,
                    sha256=att.sha256,
                    name=att.name,
                    content_type=att.content_type,
                    size=att.size,
                    uploader_kind=att.uploader_kind,
                    uploader_id=att.uploader_id,
                    created_at=att.created_at,
                )
            )
        return att

    async def get(self, attachment_id: str) -> Attachment:
        async with self.db.read() as conn:
            r = (await conn.execute(sa.select(attachments).where(attachments.c.id == attachment_id))).first()
        if r is None:
            raise NotFound("no such file")
        return _attachment(r)

    async def for_message(
        self, conversation_id: str, sender: Author, ids: Sequence[str]
    ) -> tuple[dict[str, Any], ...]:
        """The files a message may carry: each uploaded by ``sender`` into this conversation and not
        sent yet; otherwise ``invalid`` naming the first that is not, and nothing is sent."""
        if not ids:
            return ()
        async with self.db.read() as conn:
            found = {
                r.id: _attachment(r)
                for r in await conn.execute(sa.select(attachments).where(attachments.c.id.in_(list(ids))))
            }
        out = []
        for i, att_id in enumerate(ids):
            att = found.get(att_id)
            if (
                att is None
                or att.conversation_id != conversation_id
                or (att.uploader_kind, att.uploader_id) != (sender.kind.value, sender.id)
            ):
                raise Invalid(
                    f"no upload {att_id!r} of yours in this conversation", data={"field": f"attachments.{i}"}
                )
            if att.message_id is not None:
                raise Invalid(f"upload {att_id!r} was already sent", data={"field": f"attachments.{i}"})
            out.append(att.to_wire())
        return tuple(out)

    def link(self, att: Attachment, *, ttl_s: int = LINK_TTL_S) -> dict[str, Any]:
        """A link to the file that works without credentials until it expires."""
        expires = int(time.time()) + ttl_s
        return {"url": f"/files/{att.id}?{sign_link(self._secret, att.id, expires)}", "expires_at": expires}
