"""Group commit: one writer task batches concurrent messages into one transaction.

Every sender awaits its own future, resolved only after the batch's COMMIT returned (guarantee 1).
Per-conversation ``seq`` is assigned inside that transaction from ``conversations.last_seq``, locked
with SELECT ... FOR UPDATE on PostgreSQL (conversations in id order, so two processes' batches cannot
deadlock) and by the single-writer lock on SQLite, so seq has no gaps (guarantee 2). A repeated
``client_id`` from the same author returns the stored message instead of a new one (guarantee 4).
The new messages' outbound deliveries and webhook events (``Database.changes``) are written in the
same transaction, in the batch's one outbox insert.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from chatserver.errors import ApiError, Duplicate, NotFound, StoreError
from chatserver.model.ids import new_ids, now_ms
from chatserver.model.types import Author, AuthorKind, Message, MessageKind
from chatserver.store.batch_sql import BatchStatements, HeadUpdate, batch_statements
from chatserver.store.changes import ChangeEvents
from chatserver.store.db import Database
from chatserver.store.schema import attachments

if TYPE_CHECKING:
    from chatserver.model.system_lines import SystemLine
    from chatserver.model.types import MessageAction
    from chatserver.outbox.registry import NewDelivery

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PendingMessage:
    conversation_id: str
    author: Author
    kind: MessageKind
    text: str
    client_id: str | None = None
    external_id: str | None = None
    actions: tuple[MessageAction, ...] = ()
    """A bot's buttons (or the button a visitor clicked), written in its transaction."""
    lang: str | None = None
    deliveries: tuple[NewDelivery, ...] = ()
    """Outbound deliveries of this message (an email, a channel reply), written in its transaction."""
    attachments: tuple[dict[str, Any], ...] = ()
    """Files sent with it (``{id, name, content_type, size}``); their rows are claimed in its transaction."""
    event: SystemLine | None = None
    """A system line's code and params (``text`` is its English form)."""
    future: asyncio.Future[tuple[Message, bool]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def idem_key(self) -> tuple[str, str, str, str] | None:
        if self.client_id is None:
            return None
        return (self.conversation_id, self.author.kind.value, self.author.id, self.client_id)


class MessageWriter:
    """Owns the message-appending transaction of this process."""

    def __init__(self, db: Database, *, max_batch: int = 256) -> None:
        self._db = db
        self._sql = batch_statements(db.engine.dialect.name)
        self._max_batch = max_batch
        self._queue: asyncio.Queue[PendingMessage] = asyncio.Queue(maxsize=max_batch * 16)
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.committed = 0
        self.on_commit: Callable[[Sequence[Message]], None] | None = None
        """Called right after each commit with the new messages in commit order (to publish them)."""

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="message-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if not item.future.done():
                item.future.set_exception(StoreError("server is shutting down"))

    async def append(self, item: PendingMessage) -> tuple[Message, bool]:
        """Store one message; return it and whether it was a duplicate (already stored)."""
        await self.submit(item)
        return await item.future

    async def submit(self, item: PendingMessage) -> asyncio.Future[tuple[Message, bool]]:
        """Queue one message (in call order) without waiting for its commit; await the returned future."""
        if self._task is None:
            raise StoreError("message writer is not running")
        await self._queue.put(item)
        return item.future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._commit_batch(batch)

    async def _commit_batch(self, batch: list[PendingMessage]) -> None:
        try:
            async with self._db.write() as conn:
                results = await _append_all(conn, batch, self._sql, self._db.changes)
        except (Duplicate, StoreError) as exc:  # mapped by the database layer
            if len(batch) == 1:
                # a lone duplicate is a concurrent send of the same client_id elsewhere: the sender
                # retries (unavailable) and then gets the original ack
                _fail(batch[0], StoreError(str(exc)) if isinstance(exc, Duplicate) else exc)
                return
            # A concurrent duplicate (another process) or one bad item: retry each alone.
            log.info("batch of %d failed (%s); retrying one by one", len(batch), type(exc).__name__)
            for item in batch:
                await self._commit_batch([item])
            return
        except Exception as exc:  # never let the writer die: fail the batch, keep serving
            log.exception("message batch failed")
            for item in batch:
                _fail(item, exc)
            return
        self.batches += 1
        if self.on_commit is not None:
            fresh = [r[0] for r in results if isinstance(r, tuple) and not r[1]]
            if fresh:
                self.on_commit(fresh)
        for item, result in zip(batch, results, strict=True):
            if isinstance(result, ApiError):
                if not item.future.done():
                    item.future.set_exception(result)
                continue
            if not result[1]:
                self.committed += 1
            if not item.future.done():
                item.future.set_result(result)


def _fail(item: PendingMessage, exc: BaseException) -> None:
    if item.future.done():
        return
    if not isinstance(exc, ApiError):
        log.warning("message for %s not stored: %r", item.conversation_id, exc)
    if isinstance(exc, ApiError | StoreError):
        item.future.set_exception(exc)
    else:
        item.future.set_exception(StoreError(f"could not store the message: {type(exc).__name__}"))


async def _append_all(
    conn: AsyncConnection, batch: list[PendingMessage], sql: BatchStatements, changes: ChangeEvents
) -> list[tuple[Message, bool] | ApiError]:
    results: list[tuple[Message, bool] | ApiError | None] = [None] * len(batch)

    # 1. Idempotency: messages already stored under the same (conversation, author, client_id).
    keyed = [item.idem_key for item in batch if item.idem_key is not None]
    existing: dict[tuple[str, str, str, str], Message] = {}
    if keyed:
        for m in await sql.existing(conn, sorted({(k[0], k[3]) for k in keyed})):
            assert m.client_id is not None
            existing[(m.conversation_id, m.author.kind.value, m.author.id, m.client_id)] = m

    fresh: dict[str, list[int]] = defaultdict(list)
    first_of_key: dict[tuple[str, str, str, str], int] = {}
    for i, item in enumerate(batch):
        key = item.idem_key
        if key is not None and key in existing:
            results[i] = (existing[key], True)
        elif key is not None and key in first_of_key:
            continue  # duplicate inside this batch: resolved from the first below
        else:
            if key is not None:
                first_of_key[key] = i
            fresh[item.conversation_id].append(i)

    # 2. Lock the conversations (id order) and assign seqs.
    now = now_ms()
    if fresh:
        conv_order = sorted(fresh)
        state = await sql.heads(conn, conv_order)
        ids = iter(new_ids("msg_", sum(len(v) for v in fresh.values())))
        new_rows: list[tuple[Any, ...]] = []
        updates: list[HeadUpdate] = []
        for conv_id in conv_order:
            indexes = fresh[conv_id]
            if conv_id not in state:
                for i in indexes:
                    results[i] = NotFound("conversation not found")
                continue
            last_seq, first_response_at = state[conv_id]
            for i in indexes:
                item = batch[i]
                author = item.author
                last_seq += 1
                if (
                    first_response_at is None
                    and author.kind in (AuthorKind.AGENT, AuthorKind.BOT)
                    and item.kind is MessageKind.TEXT
                ):
                    first_response_at = now
                msg = Message(
                    id=next(ids),
                    conversation_id=conv_id,
                    seq=last_seq,
                    author=author,
                    kind=item.kind,
                    text=item.text,
                    actions=item.actions,
                    created_at=now,
                    client_id=item.client_id,
                    lang=item.lang,
                    attachments=item.attachments,
                    event=item.event,
                )
                results[i] = (msg, False)
                new_rows.append(
                    (
                        msg.id,
                        conv_id,
                        last_seq,
                        author.kind.value,
                        author.id,
                        author.name,
                        item.kind.value,
                        item.text,
                        item.lang,
                        {},
                        item.client_id,
                        item.external_id,
                        [dict(a) for a in item.attachments] or None,
                        item.event.to_wire() if item.event is not None else None,
                        now,
                    )
                )
            updates.append((conv_id, last_seq, now, first_response_at))
        if updates:
            await sql.update_heads(conn, updates)
        if new_rows:
            await sql.insert(conn, new_rows)
        await _insert_actions(conn, results)
        outbound = [
            (batch[i], result[0])
            for i, result in enumerate(results)
            if isinstance(result, tuple) and not result[1] and batch[i].deliveries
        ]
        events = changes.messages([r[0] for r in results if isinstance(r, tuple) and not r[1]])
        if outbound or events:
            from chatserver.outbox.store import delivery_values, insert_deliveries

            await insert_deliveries(  # the messages' own deliveries and their events, in one statement
                conn,
                (
                    *(
                        delivery_values(
                            replace(d, conversation_id=msg.conversation_id, message_id=msg.id), now
                        )
                        for item, msg in outbound
                        for d in item.deliveries
                    ),
                    *(delivery_values(d, now) for d in events),
                ),
            )

        claimed = [
            {"b_att": a["id"], "b_msg": result[0].id, "b_conv": result[0].conversation_id}
            for i, result in enumerate(results)
            if isinstance(result, tuple) and not result[1]
            for a in batch[i].attachments
        ]
        if claimed:
            await conn.execute(
                attachments.update()
                .where(
                    attachments.c.id == sa.bindparam("b_att"),
                    attachments.c.conversation_id == sa.bindparam("b_conv"),
                    attachments.c.message_id.is_(None),
                )
                .values(message_id=sa.bindparam("b_msg")),
                claimed,
            )

    # 3. Duplicates inside the batch get the first one's result.
    for i, item in enumerate(batch):
        if results[i] is None:
            key = item.idem_key
            assert key is not None
            first = results[first_of_key[key]]
            results[i] = (first[0], True) if isinstance(first, tuple) else first
    return [r for r in results if r is not None]


async def _insert_actions(
    conn: AsyncConnection, results: list[tuple[Message, bool] | ApiError | None]
) -> None:
    """Buttons of the new messages (adapter API), in the messages' own transaction."""
    from chatserver.store.schema import message_actions

    rows_ = [
        {
            "message_id": r[0].id,
            "conversation_id": r[0].conversation_id,
            "actions": [a.to_wire() for a in r[0].actions],
        }
        for r in results
        if isinstance(r, tuple) and not r[1] and r[0].actions
    ]
    if rows_:
        await conn.execute(message_actions.insert(), rows_)
