"""Customer satisfaction: one rating (1-5, optional comment) per conversation or ticket.

From the widget (``csat.submit`` once a chat is resolved; the visitor may change it for 24 hours), or
from the signed, expiring, single-use link in a solved ticket's email (a small page served by the
server). Each rating is also written into the conversation as a ``csat`` message, so agents see it
live and it stays in the history.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as pysecrets
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from chatserver.chat import ChatService
from chatserver.errors import Conflict, Duplicate, Invalid
from chatserver.model.ids import new_id, now_ms
from chatserver.model.status import Status
from chatserver.model.types import Author, AuthorKind, MessageKind
from chatserver.store.schema import csat_ratings
from chatserver.store.writer import PendingMessage
from chatserver.tickets.model import Ticket
from chatserver.tickets.store import TicketQueries

CHANGE_WINDOW_MS = 24 * 3600 * 1000
LINK_TTL_MS = 30 * 24 * 3600 * 1000


class LinkProblem(Exception):
    """A CSAT link that cannot be used: ``forged``, ``expired`` or ``used``."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def _b64(raw: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, payload: str) -> bytes:
    return hmac.new(secret.encode(), f"csat.{payload}".encode(), hashlib.sha256).digest()


def sign_link(secret: str, ticket_id: str, nonce: str, expires_at: int) -> str:
    payload = _b64(orjson.dumps({"t": ticket_id, "n": nonce, "x": expires_at}))
    return f"{payload}.{_b64(_mac(secret, payload))}"


@dataclass(frozen=True, slots=True)
class LinkClaims:
    ticket_id: str
    nonce: str
    expires_at: int


def verify_link(secret: str, token: str, now: int) -> LinkClaims:
    """Pure: the claims of a genuine, unexpired link; LinkProblem otherwise."""
    try:
        payload, sig = token.split(".", 1)
        good = hmac.compare_digest(_unb64(sig), _mac(secret, payload))
        raw = orjson.loads(_unb64(payload)) if good else None
        claims = LinkClaims(str(raw["t"]), str(raw["n"]), int(raw["x"])) if raw is not None else None
    except (ValueError, TypeError, KeyError, orjson.JSONDecodeError):
        raise LinkProblem("forged") from None
    if claims is None:
        raise LinkProblem("forged")
    if claims.expires_at <= now:
        raise LinkProblem("expired")
    return claims


@dataclass(frozen=True, slots=True)
class Rating:
    id: str
    score: int
    comment: str | None
    source: str
    ticket_id: str | None
    conversation_id: str | None
    created_at: int
    updated_at: int

    def to_wire(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "comment": self.comment,
            "source": self.source,
            "ticket_id": self.ticket_id,
            "conversation_id": self.conversation_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def _rating(r: Any) -> Rating:
    return Rating(
        r.id, r.score, r.comment, r.source, r.ticket_id, r.conversation_id, r.created_at, r.updated_at
    )


def check_score(score: Any) -> int:
    if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
        raise Invalid("score must be an integer from 1 to 5", data={"field": "score"})
    return score


class CsatService:
    def __init__(self, chat: ChatService, tickets: TicketQueries, *, secret: str, base_url: str) -> None:
        self.chat = chat
        self.store = chat.store
        self.tickets = tickets
        self.secret = secret
        self.base_url = base_url

    def link_for(self, ticket: Ticket, *, now: int | None = None) -> str:
        expires = (now if now is not None else now_ms()) + LINK_TTL_MS
        token = sign_link(self.secret, ticket.id, pysecrets.token_urlsafe(12), expires)
        return f"{self.base_url}/csat/{token}"

    async def for_ticket(self, ticket_id: str) -> Rating | None:
        async with self.store.db.read() as conn:
            r = (
                await conn.execute(sa.select(csat_ratings).where(csat_ratings.c.ticket_id == ticket_id))
            ).first()
        return _rating(r) if r else None

    async def for_conversation(self, conversation_id: str) -> Rating | None:
        async with self.store.db.read() as conn:
            r = (
                await conn.execute(
                    sa.select(csat_ratings).where(csat_ratings.c.conversation_id == conversation_id)
                )
            ).first()
        return _rating(r) if r else None

    async def submit_from_widget(
        self, contact_id: str, conversation_id: str, score: int, comment: str | None
    ) -> Rating:
        conv = await self.chat.visitor_conversation(contact_id, conversation_id)
        if conv.status != Status.RESOLVED:
            raise Conflict("a chat can be rated once it is resolved", data={"field": "conversation_id"})
        check_score(score)
        now = now_ms()
        async with self.store.db.write() as conn:
            r = (
                await conn.execute(
                    sa.select(csat_ratings).where(csat_ratings.c.conversation_id == conversation_id)
                )
            ).first()
            if r is None:
                rating_id = new_id("cs_")
                await conn.execute(
                    csat_ratings.insert().values(
                        id=rating_id,
                        ticket_id=None,
                        conversation_id=conversation_id,
                        contact_id=contact_id,
                        score=score,
                        comment=comment,
                        source="widget",
                        link_nonce=None,
                        created_at=now,
                        updated_at=now,
                    )
                )
            else:
                if now - r.created_at > CHANGE_WINDOW_MS:
                    raise Conflict("the rating can only be changed within 24 hours")
                await conn.execute(
                    csat_ratings.update()
                    .where(csat_ratings.c.id == r.id)
                    .values(score=score, comment=comment, updated_at=now)
                )
                rating_id = r.id
            fresh = (await conn.execute(sa.select(csat_ratings).where(csat_ratings.c.id == rating_id))).one()
        rating = _rating(fresh)
        contact = await self.store.get_contact(contact_id)
        await self._announce(conv.id, Author(AuthorKind.CONTACT, contact_id, contact.name), rating)
        return rating

    async def submit_from_link(self, token: str, score: Any, comment: str | None) -> tuple[Ticket, Rating]:
        """Raises LinkProblem (forged, expired, used) or Invalid (a bad score); changes nothing then."""
        claims = verify_link(self.secret, token, now_ms())
        check_score(score)
        ticket = await self.tickets.get_by_id(claims.ticket_id)
        now = now_ms()
        try:
            async with self.store.db.write() as conn:
                exists = await conn.scalar(
                    sa.select(csat_ratings.c.id).where(
                        sa.or_(
                            csat_ratings.c.link_nonce == claims.nonce, csat_ratings.c.ticket_id == ticket.id
                        )
                    )
                )
                if exists is not None:
                    raise LinkProblem("used")
                rating_id = new_id("cs_")
                await conn.execute(
                    csat_ratings.insert().values(
                        id=rating_id,
                        ticket_id=ticket.id,
                        conversation_id=None,
                        contact_id=ticket.requester_id,
                        score=score,
                        comment=(comment or None) and comment[:2000],
                        source="link",
                        link_nonce=claims.nonce,
                        created_at=now,
                        updated_at=now,
                    )
                )
                fresh = (
                    await conn.execute(sa.select(csat_ratings).where(csat_ratings.c.id == rating_id))
                ).one()
        except (IntegrityError, Duplicate):  # Duplicate: mapped at the end of the transaction
            raise LinkProblem("used") from None
        rating = _rating(fresh)
        contact = await self.store.get_contact(ticket.requester_id)
        await self._announce(
            ticket.conversation_id, Author(AuthorKind.CONTACT, contact.id, contact.name), rating
        )
        if self.chat.tickets is not None:
            await self.chat.tickets.publish(await self.tickets.get_by_id(ticket.id))
        return ticket, rating

    async def check_link(self, token: str) -> Ticket:
        """For the rating page: the ticket of a usable link, or LinkProblem."""
        claims = verify_link(self.secret, token, now_ms())
        async with self.store.db.read() as conn:
            used = await conn.scalar(
                sa.select(csat_ratings.c.id).where(
                    sa.or_(
                        csat_ratings.c.link_nonce == claims.nonce,
                        csat_ratings.c.ticket_id == claims.ticket_id,
                    )
                )
            )
        if used is not None:
            raise LinkProblem("used")
        try:
            return await self.tickets.get_by_id(claims.ticket_id)
        except Exception:
            raise LinkProblem("forged") from None

    async def _announce(self, conversation_id: str, author: Author, rating: Rating) -> None:
        text = f"Rated {rating.score}/5" + (f": {rating.comment}" if rating.comment else "")
        await self.store.append_message(PendingMessage(conversation_id, author, MessageKind.CSAT, text))


__all__ = ["CsatService", "LinkProblem", "Rating", "sign_link", "verify_link"]
