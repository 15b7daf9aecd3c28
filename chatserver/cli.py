"""``chatserver serve | worker | migrate | create-agent | create-inbox | create-token``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence

from chatserver import __version__
from chatserver.auth.secrets import hash_password, new_api_token, sha256_hex
from chatserver.errors import ChatError, Invalid
from chatserver.model.levels import parse_levels
from chatserver.model.types import Role
from chatserver.settings import Settings
from chatserver.store.db import Database, make_engine
from chatserver.store.migrate import migrate as migrate_schema
from chatserver.store.migrate import require_current
from chatserver.store.store import Store

log = logging.getLogger("chatserver")


async def _with_store(settings: Settings, migrate: bool = False) -> Store:
    """A store on a current schema: migrated first (embedded, ``migrate``, CHATSERVER_AUTO_MIGRATE), or
    checked (ConfigError: one line saying what to run)."""
    engine = make_engine(settings.database_url, pool_size=2)
    try:
        if migrate or settings.embedded or settings.auto_migrate:
            await migrate_schema(engine)
        else:
            await require_current(engine)
    except BaseException:
        await engine.dispose()
        raise
    return Store(Database(engine))


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from chatserver.app import create_app
    from chatserver.bootstrap import first_start

    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    from dataclasses import replace

    settings = replace(settings, host=host, port=port).with_secret()
    boot = asyncio.run(first_start(settings, migrate=args.migrate))
    if args.migrate:  # the app checks the schema again at start: it is current now
        settings = replace(settings, auto_migrate=True)
    base = settings.base_url
    bus = "Redis" if settings.redis_url else "in-process"
    mode = (
        f"embedded: SQLite at {settings.database_url.split('///', 1)[-1]}, in-process bus"
        if settings.embedded
        else f"database {settings.database_url.split('://', 1)[0]}, bus {bus}"
    )
    lines = [
        f"chatserver {__version__} ({mode})",
        f"  Agent console : {base}/console/",
        f"  Demo page     : {base}/demo   (a page with the chat widget)",
    ]
    if boot.inbox is not None:
        lines.append(f"  Inbox key     : {boot.inbox.key}")
    if boot.admin_email:
        if boot.generated_password:
            lines.append(f"  Log in as     : {boot.admin_email} / {boot.generated_password}   (shown once)")
        else:
            lines.append(f"  Log in as     : {boot.admin_email} (password from CHATSERVER_ADMIN_PASSWORD)")
    print("\n".join(lines), flush=True)
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        ws="websockets-sansio",
        ws_max_size=settings.max_frame_bytes,
        ws_per_message_deflate=False,
        ws_ping_interval=settings.heartbeat_s,
        ws_ping_timeout=settings.heartbeat_s,
        log_level=settings.log_level,
        lifespan="on",
        proxy_headers=True,
    )
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    """Housekeeping that must run somewhere once: expired sessions. (Routing, SLA timers and outbound
    delivery join this process as they are built.)"""

    async def run() -> None:
        store = await _with_store(settings)
        try:
            while True:
                purged = await store.purge_expired_sessions()
                if purged:
                    log.info("purged %d expired sessions", purged)
                if args.once:
                    return
                await asyncio.sleep(60)
        finally:
            await store.db.dispose()

    asyncio.run(run())
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> None:
        store = await _with_store(settings, migrate=True)
        await store.db.dispose()

    asyncio.run(run())
    print("database schema is current")
    return 0


def cmd_create_agent(settings: Settings, args: argparse.Namespace) -> int:
    if len(args.password) < 8:
        raise ChatError("the password must have at least 8 characters")

    async def run() -> None:
        store = await _with_store(settings)
        try:
            agent = await store.create_agent(
                email=args.email,
                name=args.name,
                role=Role(args.role),
                password_hash=hash_password(args.password),
                language=args.language,
            )
        finally:
            await store.db.dispose()
        print(
            json.dumps(agent.to_wire())
            if args.json
            else f"created {agent.role.value} {agent.email} ({agent.id})"
        )

    asyncio.run(run())
    return 0


def cmd_create_inbox(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> None:
        store = await _with_store(settings)
        try:
            inbox = await store.create_inbox(args.name, "widget", args.allowed_origin or [])
        finally:
            await store.db.dispose()
        print(json.dumps(inbox.to_wire()) if args.json else inbox.key)

    asyncio.run(run())
    return 0


def cmd_create_token(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> None:
        store = await _with_store(settings)
        try:
            found = await store.agent_credentials(args.agent)
            if found is None:
                raise ChatError(f"no agent with email {args.agent}")
            token = new_api_token()
            await store.create_api_token(found[0].id, sha256_hex(token), args.name)
        finally:
            await store.db.dispose()
        print(token)

    asyncio.run(run())
    return 0


def _levels(text: str | None, what: str) -> dict[str, int] | None:
    """``billing=4,de=3`` -> {"billing": 4, "de": 3}."""
    if text is None:
        return None
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, level = part.partition("=")
        if not name or not level.isdigit():
            raise ChatError(
                f"{what}: write name=level with a level from 1 to 5, e.g. billing=4 (got {part!r})"
            )
        out[name] = int(level)
    try:
        return parse_levels(out, what.lstrip("-"))
    except Invalid as exc:
        raise ChatError(f"{what}: {exc.message}") from exc


def cmd_set_agent(settings: Settings, args: argparse.Namespace) -> int:
    """Routing profile of an agent: skills, languages, capacity, own language, teams."""

    async def run() -> None:
        store = await _with_store(settings)
        try:
            found = await store.agent_credentials(args.email)
            if found is None:
                raise ChatError(f"no agent with email {args.email}")
            values: dict[str, object] = {}
            skills = _levels(args.skills, "--skills")
            languages = _levels(args.languages, "--languages")
            if skills is not None:
                values["skills"] = skills
            if languages is not None:
                values["languages"] = languages
            if args.max_concurrent is not None:
                if not 1 <= args.max_concurrent <= 100:
                    raise ChatError("--max-concurrent must be from 1 to 100")
                values["max_concurrent"] = args.max_concurrent
            if args.language is not None:
                values["language"] = args.language.split("-")[0].lower()
            agent = await store.update_agent(found[0].id, **values)
            for team_name in args.team or []:
                team = next((t for t in await store.list_teams() if t.name == team_name), None)
                if team is None:
                    raise ChatError(f"no team named {team_name!r}")
                await store.set_team_members(team.id, [*team.members, agent.id])
        finally:
            await store.db.dispose()
        print(json.dumps(agent.to_wire()))

    asyncio.run(run())
    return 0


def cmd_create_team(settings: Settings, args: argparse.Namespace) -> int:
    from chatserver.routing.config import ConfigProblem, parse_holidays, parse_hours, parse_timezone

    try:
        timezone = parse_timezone(args.timezone)
        hours = parse_hours(json.loads(args.hours) if args.hours else None)
        holidays = parse_holidays(args.holiday or [])
    except (ConfigProblem, json.JSONDecodeError) as exc:
        raise ChatError(f"create-team: {exc}") from exc

    async def run() -> None:
        store = await _with_store(settings)
        try:
            team = await store.create_team(args.name, timezone, hours, holidays)
            print(json.dumps(team.to_wire()))
        finally:
            await store.db.dispose()

    asyncio.run(run())
    return 0


def cmd_create_rule(settings: Settings, args: argparse.Namespace) -> int:
    """A routing rule from JSON, validated exactly as POST /api/v1/routing/rules validates it."""
    from chatserver.api.routing import rule_from_json
    from chatserver.errors import ApiError
    from chatserver.model.ids import new_id

    try:
        data = json.loads(args.json)
        if not isinstance(data, dict):
            raise ChatError("create-rule: the JSON must be an object")
        rule = rule_from_json(new_id("rr_"), data)
    except json.JSONDecodeError as exc:
        raise ChatError(f"create-rule: not JSON: {exc}") from exc
    except ApiError as exc:
        raise ChatError(f"create-rule: {exc.message} (field {exc.data.get('field')})") from exc

    async def run() -> None:
        store = await _with_store(settings)
        try:
            print(json.dumps((await store.save_rule(rule)).to_wire()))
        finally:
            await store.db.dispose()

    asyncio.run(run())
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="chatserver", description="Omnichannel live-chat server")
    p.add_argument("--version", action="version", version=__version__)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the web server (HTTP + WebSocket)")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument(
        "--migrate",
        action="store_true",
        help="bring the database schema up to date first (safe with several)",
    )
    s.set_defaults(fn=cmd_serve)
    w = sub.add_parser("worker", help="run background jobs")
    w.add_argument("--once", action="store_true", help="run one round and exit")
    w.set_defaults(fn=cmd_worker)
    sub.add_parser("migrate", help="bring the database schema up to date").set_defaults(fn=cmd_migrate)
    a = sub.add_parser("create-agent", help="create an agent")
    a.add_argument("--email", required=True)
    a.add_argument("--password", required=True)
    a.add_argument("--name", required=True)
    a.add_argument("--role", choices=[r.value for r in Role], default="agent")
    a.add_argument("--language", help="the language the agent reads and writes (e.g. es)")
    a.add_argument("--json", action="store_true")
    a.set_defaults(fn=cmd_create_agent)
    i = sub.add_parser("create-inbox", help="create a widget inbox; prints its key")
    i.add_argument("--name", required=True)
    i.add_argument("--allowed-origin", action="append", metavar="URL")
    i.add_argument("--json", action="store_true")
    i.set_defaults(fn=cmd_create_inbox)
    sa_ = sub.add_parser(
        "set-agent", help="set an agent's routing profile (skills, languages, capacity, teams)"
    )
    sa_.add_argument("--email", required=True)
    sa_.add_argument("--skills", help="e.g. billing=4,returns=2 (levels 1-5)")
    sa_.add_argument("--languages", help="e.g. de=5,en=3 (levels 1-5)")
    sa_.add_argument("--language", help="the language the agent reads and writes")
    sa_.add_argument("--max-concurrent", type=int)
    sa_.add_argument("--team", action="append", metavar="NAME", help="add the agent to this team")
    sa_.set_defaults(fn=cmd_set_agent)
    tm = sub.add_parser("create-team", help="create a team; prints it as JSON")
    tm.add_argument("--name", required=True)
    tm.add_argument("--timezone", default="UTC")
    tm.add_argument("--hours", help='weekly hours as JSON, e.g. \'{"mon": [["09:00", "17:00"]]}\'')
    tm.add_argument("--holiday", action="append", metavar="YYYY-MM-DD")
    tm.set_defaults(fn=cmd_create_team)
    rr = sub.add_parser("create-rule", help="create a routing rule from JSON (as the REST API takes it)")
    rr.add_argument(
        "--json",
        required=True,
        help='e.g. \'{"name": "billing", "match": {"fields": {"topic": "billing"}}}\'',
    )
    rr.set_defaults(fn=cmd_create_rule)
    t = sub.add_parser("create-token", help="create an API token for an agent; prints it")
    t.add_argument("--agent", required=True, metavar="EMAIL")
    t.add_argument("--name", default="cli")
    t.set_defaults(fn=cmd_create_token)
    return p


def quiet_alembic(log_level: str) -> None:
    """Alembic reports every step at INFO ("Context impl ...", "Will assume transactional DDL"): noise on
    each command. Keep its warnings; show the rest only with CHATSERVER_LOG_LEVEL=debug."""
    logging.getLogger("alembic").setLevel(logging.DEBUG if log_level.lower() == "debug" else logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env(os.environ)
        logging.basicConfig(
            level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        quiet_alembic(settings.log_level)
        if args.command != "serve":
            settings = settings.with_secret() if settings.embedded else settings
        return int(args.fn(settings, args))
    except ChatError as exc:
        print(f"chatserver: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
