"""The widget settings and identity secret of an inbox, kept in its JSON ``config``
(``{"widget": {...}, "identity_secret": "..."}``); a widget inbox created before these existed gets its
secret the first time an admin looks at it."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from chatserver.errors import Invalid, NotFound
from chatserver.model.types import Inbox
from chatserver.store import rows
from chatserver.store.db import Database
from chatserver.store.schema import inboxes
from chatserver.store.store import Store
from chatserver.widgetcfg.identity import new_secret
from chatserver.widgetcfg.model import WidgetSettings, load_widget, parse_widget, validate_answers

WIDGET = "widget"
SECRET_KEY = "identity_secret"


def widget_settings(inbox: Inbox) -> WidgetSettings:
    return load_widget((inbox.config or {}).get(WIDGET))


def identity_secret(inbox: Inbox) -> str | None:
    value = (inbox.config or {}).get(SECRET_KEY)
    return value if isinstance(value, str) else None


def widget_admin_wire(inbox: Inbox) -> dict[str, Any]:
    """What admins see of a widget inbox's settings (REST view, CLI)."""
    return {"widget": widget_settings(inbox).to_json(), SECRET_KEY: identity_secret(inbox)}


class WidgetStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def _inbox(self, conn: Any, inbox_id: str) -> Inbox:
        r = (await conn.execute(sa.select(inboxes).where(inboxes.c.id == inbox_id))).first()
        if r is None:
            raise NotFound("inbox not found")
        inbox = rows.inbox(r)
        if inbox.channel != WIDGET:
            raise Invalid("widget settings are for widget inboxes", data={"field": "widget"})
        return inbox

    async def _write(self, inbox_id: str, change: Any) -> Inbox:
        async with self.db.write() as conn:
            inbox = await self._inbox(conn, inbox_id)
            config = dict(inbox.config or {})
            change(config)
            await conn.execute(inboxes.update().where(inboxes.c.id == inbox_id).values(config=config))
        return await self.get(inbox_id)

    async def get(self, inbox_id: str) -> Inbox:
        async with self.db.read() as conn:
            return await self._inbox(conn, inbox_id)

    async def update_widget(self, inbox_id: str, raw: Any) -> Inbox:
        """Apply a partial ``widget`` object (validated; Invalid changes nothing)."""
        current = widget_settings(await self.get(inbox_id))
        settings = parse_widget(raw, current)

        def change(config: dict[str, Any]) -> None:
            config[WIDGET] = settings.to_json()
            config.setdefault(SECRET_KEY, new_secret())

        return await self._write(inbox_id, change)

    async def ensure_secret(self, inbox_id: str, *, rotate: bool = False) -> tuple[Inbox, str]:
        """The inbox's identity secret, generated when it has none (or ``rotate``)."""
        inbox = await self.get(inbox_id)
        secret = identity_secret(inbox)
        if secret is not None and not rotate:
            return inbox, secret
        fresh = new_secret()

        def change(config: dict[str, Any]) -> None:
            config[SECRET_KEY] = fresh

        return await self._write(inbox_id, change), fresh

    async def verify_contact(self, contact_id: str, values: dict[str, Any]) -> None:
        """A user the site vouched for (setUser): verified, with the name/email the site gave."""
        from chatserver.store.schema import contacts

        async with self.db.write() as conn:
            await conn.execute(
                contacts.update().where(contacts.c.id == contact_id).values(verified=True, **values)
            )


async def check_start_fields(store: Store, inbox_id: str, fields: dict[str, str]) -> None:
    """A visitor's ``conversation.start`` fields: the pre-chat answers among them are checked as the form
    checks them (email, phone, dropdown option). Which are required is the form's business (a site may
    replace the form with its own), so none is required here."""
    if not fields:
        return  # nothing to check: no read of the inbox on every start (the common case)
    inbox = await store.get_inbox(inbox_id)
    prechat = widget_settings(inbox).prechat if inbox.channel == WIDGET else ()
    if prechat:
        validate_answers(prechat, fields, partial=True)
