"""Canned responses: agents' saved replies, by shortcut."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from chatserver.errors import Conflict, Duplicate, NotFound
from chatserver.model.ids import new_id, now_ms
from chatserver.model.types import CannedResponse
from chatserver.store import rows
from chatserver.store.db import Database
from chatserver.store.schema import canned_responses

PAGE_MAX = 200


class CannedQueries:
    db: Database

    async def create_canned(
        self, shortcut: str, text: str, language: str | None, created_by: str
    ) -> CannedResponse:
        canned = CannedResponse(new_id("cr_"), shortcut, text, language, now_ms())
        try:
            async with self.db.write() as conn:
                await conn.execute(
                    canned_responses.insert().values(
                        id=canned.id,
                        shortcut=shortcut,
                        text=text,
                        language=language,
                        created_by=created_by,
                        created_at=canned.created_at,
                    )
                )
        except Duplicate as exc:
            raise Conflict(f"the shortcut {shortcut!r} is taken", data={"field": "shortcut"}) from exc
        return canned

    async def get_canned(self, canned_id: str) -> CannedResponse:
        async with self.db.read() as conn:
            r = (
                await conn.execute(sa.select(canned_responses).where(canned_responses.c.id == canned_id))
            ).first()
        if r is None:
            raise NotFound("canned response not found")
        return rows.canned(r)

    async def list_canned(self, query: str | None = None) -> list[CannedResponse]:
        stmt = sa.select(canned_responses).order_by(canned_responses.c.shortcut).limit(PAGE_MAX)
        if query:
            like = f"%{query.lower()}%"
            stmt = stmt.where(
                sa.or_(
                    sa.func.lower(canned_responses.c.shortcut).like(like),
                    sa.func.lower(canned_responses.c.text).like(like),
                )
            )
        async with self.db.read() as conn:
            return [rows.canned(r) for r in await conn.execute(stmt)]

    async def update_canned(self, canned_id: str, **values: Any) -> CannedResponse:
        if set(values) - {"shortcut", "text", "language"}:
            raise ValueError(f"cannot update {sorted(values)}")
        if values:
            try:
                async with self.db.write() as conn:
                    res = await conn.execute(
                        canned_responses.update().where(canned_responses.c.id == canned_id).values(**values)
                    )
                    if res.rowcount == 0:
                        raise NotFound("canned response not found")
            except Duplicate as exc:
                raise Conflict("that shortcut is taken", data={"field": "shortcut"}) from exc
        return await self.get_canned(canned_id)

    async def delete_canned(self, canned_id: str) -> None:
        async with self.db.write() as conn:
            res = await conn.execute(canned_responses.delete().where(canned_responses.c.id == canned_id))
            if res.rowcount == 0:
                raise NotFound("canned response not found")
