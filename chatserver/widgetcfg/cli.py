"""``chatserver update-inbox`` and ``chatserver inbox-secret``: an inbox's name, allowed origins and widget
settings, and its identity secret, from the command line (registered by chatserver/cli.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from chatserver.errors import ApiError, ChatError
from chatserver.settings import Settings


def add_commands(sub: Any) -> None:
    u = sub.add_parser("update-inbox", help="change an inbox: name, allowed origins, widget settings")
    u.add_argument("--inbox", required=True, metavar="ID")
    u.add_argument("--name")
    u.add_argument(
        "--allowed-origin",
        action="append",
        metavar="URL",
        help="a page origin allowed to use the widget (repeat; replaces the list; '' clears it)",
    )
    u.add_argument("--color", help="the accent colour, #rrggbb")
    u.add_argument("--position", choices=["right", "left"])
    u.add_argument("--title")
    u.add_argument("--subtitle")
    u.add_argument("--greeting")
    u.add_argument("--default-language", help="the language of the title, subtitle and greeting (en)")
    u.add_argument("--timezone", help="business hours' time zone, e.g. Europe/Berlin")
    u.add_argument("--hours", metavar="JSON", help='e.g. \'{"mon": [["09:00", "17:00"]]}\'')
    u.add_argument("--prechat", metavar="JSON", help='e.g. \'[{"type": "email", "required": true}]\'')
    u.add_argument(
        "--widget", metavar="JSON", help="a whole widget object, as PATCH /api/v1/inboxes/{id} takes"
    )
    u.set_defaults(fn=cmd_update_inbox)
    s = sub.add_parser("inbox-secret", help="print a widget inbox's identity secret (for setUser hashes)")
    s.add_argument("--inbox", required=True, metavar="ID")
    s.add_argument(
        "--rotate", action="store_true", help="generate a new one; hashes made with the old one stop working"
    )
    s.set_defaults(fn=cmd_inbox_secret)


def _json(flag: str, raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ChatError(f"update-inbox: --{flag} is not JSON: {exc}") from exc


def widget_changes(args: argparse.Namespace) -> dict[str, Any]:
    changes: dict[str, Any] = _json("widget", args.widget) if args.widget else {}
    if not isinstance(changes, dict):
        raise ChatError("update-inbox: --widget must be a JSON object")
    for name in ("color", "position", "title", "subtitle", "greeting", "default_language", "timezone"):
        value = getattr(args, name)
        if value is not None:
            changes[name] = value or None
    if args.hours is not None:
        changes["hours"] = _json("hours", args.hours)
    if args.prechat is not None:
        changes["prechat"] = _json("prechat", args.prechat)
    return changes


def cmd_update_inbox(settings: Settings, args: argparse.Namespace) -> int:
    from chatserver.api.directory import parse_origins
    from chatserver.channels.inboxes import inbox_wire
    from chatserver.cli import _with_store
    from chatserver.widgetcfg.store import WidgetStore

    changes = widget_changes(args)
    origins = None
    if args.allowed_origin is not None:
        wanted = [o for o in args.allowed_origin if o]
        try:
            origins = parse_origins({"allowed_origins": wanted})
        except ApiError as exc:
            raise ChatError(f"update-inbox: --allowed-origin: {exc.message}") from exc

    async def run() -> dict[str, Any]:
        store = await _with_store(settings)
        try:
            inbox = await store.get_inbox(args.inbox)
            if origins is not None and inbox.channel != "widget":
                raise ChatError("update-inbox: --allowed-origin is for widget inboxes")
            if changes:
                await WidgetStore(store.db).update_widget(inbox.id, changes)
            inbox = await store.update_inbox(inbox.id, name=args.name, allowed_origins=origins)
            return inbox_wire(inbox, settings.base_url)
        except ApiError as exc:
            field = exc.data.get("field")
            raise ChatError(f"update-inbox: {exc.message}" + (f" ({field})" if field else "")) from exc
        finally:
            await store.db.dispose()

    print(json.dumps(asyncio.run(run())))
    return 0


def cmd_inbox_secret(settings: Settings, args: argparse.Namespace) -> int:
    from chatserver.cli import _with_store
    from chatserver.widgetcfg.store import WidgetStore

    async def run() -> str:
        store = await _with_store(settings)
        try:
            _, secret = await WidgetStore(store.db).ensure_secret(args.inbox, rotate=args.rotate)
            return secret
        except ApiError as exc:
            raise ChatError(f"inbox-secret: {exc.message}") from exc
        finally:
            await store.db.dispose()

    print(asyncio.run(run()))
    return 0
