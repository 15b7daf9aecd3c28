"""The ``chatserver`` command: serve, worker, smtp, migrate, create-agent, create-sla, ..."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import sys
from collections.abc import Sequence

from chatserver import __version__
from chatserver.auth.passwords import common_passwords, password_problem
from chatserver.auth.secrets import hash_password, new_api_token, sha256_hex
from chatserver.channels.inboxes import CHANNEL_NAMES
from chatserver.datadir import prepare_sqlite, private_paths, warn_if_wider
from chatserver.errors import ChatError, Invalid
from chatserver.model.avatars import avatar_url
from chatserver.model.levels import parse_levels
from chatserver.model.types import Role
from chatserver.settings import SECRET_FILE, Settings
from chatserver.store.db import Database, make_engine
from chatserver.store.migrate import migrate as migrate_schema
from chatserver.store.migrate import require_current
from chatserver.store.store import Store
from chatserver.transport.redact import install_redaction

log = logging.getLogger("chatserver")


async def _with_store(settings: Settings, migrate: bool = False) -> Store:
    """A store on a current schema: migrated first (embedded, ``migrate``, CHATSERVER_AUTO_MIGRATE), or
    checked (ConfigError: one line saying what to run)."""
    engine = make_engine(settings.database_url, pool_size=2)
    try:
        if migrate or settings.embedded or settings.auto_migrate:
            await migrate_schema(engine, always=migrate)
        else:
            await require_current(engine)
    except BaseException:
        await engine.dispose()
        raise
    return Store(Database(engine))


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from chatserver.app import create_app
    from chatserver.bootstrap import first_start
    from chatserver.transport.server import serve

    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    from dataclasses import replace

    settings = replace(settings, host=host, port=port).with_secret()
    warn_if_wider(
        private_paths(
            settings.data_dir if settings.embedded else None,
            settings.database_url,
            settings.data_dir / SECRET_FILE if settings.embedded else None,
        )
    )
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
    serve(create_app(settings), settings, host=host, port=port, proxy_headers=True)
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    """Work that must run somewhere: outbound deliveries (the outbox), SLA warnings and breaches,
    housekeeping (expired sessions), and, unless the server runs in embedded mode (where `serve` has
    them), Telegram long polling and inbound mail (the SMTP server when CHATSERVER_SMTP_LISTEN is set, the
    IMAP pollers). Any number of workers may run: each delivery is sent by the one holding its lease,
    and one worker at a time (a lease) emits SLA events."""
    from chatserver.app import sla_lease
    from chatserver.bus import MemoryBus, make_bus
    from chatserver.channels.sender import register_channel_sender
    from chatserver.model.ids import now_ms
    from chatserver.outbox import OutboxQueries
    from chatserver.outbox.setup import BusPublisher, build_registry, build_worker
    from chatserver.tickets.sla import SlaService, SlaWorker
    from chatserver.tickets.store import TicketQueries
    from chatserver.translation.service import build_translator

    async def housekeeping() -> None:
        store = await _with_store(settings)
        polling = None if args.once or settings.embedded else asyncio.create_task(_poll_channels(settings))
        bus = make_bus(settings.redis_url, settings.redis_prefix) if settings.redis_url else None
        publisher = BusPublisher(bus) if bus is not None else None
        from chatserver.webhooks.setup import ATTEMPTS, register_senders

        registry = build_registry(settings)
        translator = build_translator(settings.translation_config()) if settings.translation_enabled else None
        channel_client = register_channel_sender(
            registry, store, translator.translate if translator is not None else None
        )
        http = register_senders(registry, settings, store.db)
        worker = build_worker(settings, OutboxQueries(store.db), registry, publisher)
        worker.max_attempts_by_kind.update(ATTEMPTS)
        sla = SlaService(store, TicketQueries(store.db))
        sla_worker = SlaWorker(sla, sla_lease(settings, bus or MemoryBus(), sla), publisher)
        try:
            if args.once:
                await worker.run_once()
                if await sla_worker.lease.refresh():
                    await sla_worker.run_once(now_ms())
            else:
                await worker.start()
                await sla_worker.start()
            while True:
                purged = await store.purge_expired_sessions()
                if purged:
                    log.info("purged %d expired sessions", purged)
                if args.once:
                    return
                await asyncio.sleep(60)
        finally:
            if polling is not None:
                polling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await polling
            await sla_worker.stop()
            await worker.stop()
            await channel_client.aclose()
            await http.aclose()
            if translator is not None:
                await translator.aclose()
            if publisher is not None:
                await publisher.drain()
            if bus is not None:
                await bus.stop()
            await store.db.dispose()

    async def run() -> None:
        if args.once or settings.embedded:
            await housekeeping()
            return
        from chatserver.mail.runner import standalone

        async with standalone(settings):
            await housekeeping()

    asyncio.run(run())
    return 0


async def _poll_channels(settings: Settings) -> None:
    """Telegram inboxes in polling mode, with the full conversation service (routing, translation, bus)."""
    from chatserver.app import build_context, close_context
    from chatserver.channels.inbound import Inbound
    from chatserver.channels.polling import running_pollers

    c = await build_context(settings.with_secret())
    try:
        async with running_pollers(c.store, Inbound(c.service, c.channel_client)):
            await asyncio.Event().wait()
    finally:
        await close_context(c)


def cmd_telegram_set_webhook(settings: Settings, args: argparse.Namespace) -> int:
    """Register the inbox's webhook URL with Telegram (setWebhook, with the inbox's secret token)."""
    import httpx

    from adapters.telegram import set_webhook
    from chatserver.channels.inboxes import webhook_url
    from chatserver.errors import DeliveryError, NotFound

    async def run() -> str:
        store = await _with_store(settings)
        try:
            inbox = await store.get_inbox(args.inbox)
        except NotFound as exc:
            raise ChatError(f"no inbox {args.inbox}") from exc
        finally:
            await store.db.dispose()
        if inbox.channel != "telegram":
            raise ChatError(f"inbox {inbox.id} is a {inbox.channel} inbox, not telegram")
        if inbox.config.get("mode") == "polling":
            raise ChatError(f"inbox {inbox.id} is in polling mode; it needs no webhook")
        url = webhook_url(settings.base_url, inbox)
        assert url is not None
        async with httpx.AsyncClient(timeout=30) as client:
            try:
                await set_webhook(client, inbox.config, url)
            except DeliveryError as exc:
                raise ChatError(exc.reason) from exc
        return url

    url = asyncio.run(run())
    print(f"Telegram will deliver updates to {url}")
    if not url.startswith("https://"):
        print("  note: Telegram only calls https URLs; set CHATSERVER_PUBLIC_URL", file=sys.stderr)
    return 0


def cmd_smtp(settings: Settings, args: argparse.Namespace) -> int:
    """The inbound SMTP server alone (CHATSERVER_SMTP_LISTEN)."""
    if not settings.smtp_listen:
        raise ChatError("set CHATSERVER_SMTP_LISTEN=host:port to run the SMTP server")
    from chatserver.mail.runner import standalone

    async def run() -> None:
        async with standalone(settings, imap=False) as mail:
            assert mail.smtp is not None
            print(f"inbound SMTP on {mail.smtp.host}:{mail.smtp.port}", flush=True)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> None:
        store = await _with_store(settings, migrate=True)
        await store.db.dispose()

    asyncio.run(run())
    print("database schema is current")
    return 0


def _check_password(password: str, email: str) -> None:
    problem = password_problem(password, email, common_passwords())
    if problem is not None:
        raise ChatError(f"{problem.message} (rule: {problem.rule})")


def cmd_create_agent(settings: Settings, args: argparse.Namespace) -> int:
    _check_password(args.password, args.email)

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


def cmd_reset_password(settings: Settings, args: argparse.Namespace) -> int:
    """Set a new password for an agent (generated and printed once, or read from stdin) and end all of
    that agent's sessions. API tokens are left alone (revoke those separately)."""
    generated = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = generated = secrets.token_urlsafe(15)
    _check_password(password, args.email)

    async def run() -> int:
        store = await _with_store(settings)
        try:
            found = await store.agent_credentials(args.email)
            if found is None:
                raise ChatError(f"no agent with email {args.email}")
            agent = found[0]
            await store.update_agent(agent.id, password_hash=hash_password(password))
            return await store.revoke_sessions(agent.id)
        finally:
            await store.db.dispose()

    revoked = asyncio.run(run())
    if generated is not None:
        print(generated)
    print(f"password reset for {args.email.strip().lower()}; {revoked} session(s) ended", file=sys.stderr)
    return 0


def cmd_create_inbox(settings: Settings, args: argparse.Namespace) -> int:
    if args.channel == "email":
        return _create_email_inbox(settings, args)
    for flag in ("address", "imap_url", "imap_processed", "tickets"):
        if getattr(args, flag) is not None:
            raise ChatError(f"--{flag.replace('_', '-')} is for --channel email")
    from chatserver.channels.inboxes import inbox_wire, validate_channel_config
    from chatserver.errors import ApiError

    try:
        raw = json.loads(args.config) if args.config is not None else None
        config = validate_channel_config(args.channel, raw)
    except json.JSONDecodeError as exc:
        raise ChatError(f"create-inbox: --config is not JSON: {exc}") from exc
    except ApiError as exc:
        raise ChatError(f"create-inbox: {exc.message}") from exc

    async def run() -> None:
        store = await _with_store(settings)
        try:
            inbox = await store.create_inbox(args.name, args.channel, args.allowed_origin or [], config)
        finally:
            await store.db.dispose()
        wire = inbox_wire(inbox, settings.base_url)
        if args.json:
            print(json.dumps(wire))
        elif args.channel == "widget":
            print(inbox.key)
        else:
            print(f"created {args.channel} inbox {inbox.id}")
            if config.get("mode") == "polling":
                print("  mode          : long polling (run `chatserver worker`, or `serve` embedded)")
            else:
                print(f"  webhook URL   : {wire['webhook_url']}")
            if "status_callback_url" in wire:
                print(f"  status URL    : {wire['status_callback_url']}")

    asyncio.run(run())
    return 0


def _create_email_inbox(settings: Settings, args: argparse.Namespace) -> int:
    from chatserver.errors import ApiError
    from chatserver.mail.config import ConfigProblem, parse_email_config
    from chatserver.mail.store import MailStore
    from chatserver.mail.views import email_inbox_wire

    if args.allowed_origin:
        raise ChatError("--allowed-origin is for widget inboxes")
    if args.address is None:
        raise ChatError("--channel email needs --address (e.g. support@shop.example)")
    try:
        config = parse_email_config(
            address=args.address,
            imap_url=args.imap_url,
            imap_processed=args.imap_processed,
            tickets=args.tickets,
        )
    except ConfigProblem as exc:
        raise ChatError(f"create-inbox: --{exc.field.replace('_', '-')}: {exc.message}") from exc

    async def run() -> None:
        store = await _with_store(settings)
        try:
            inbox = await MailStore(store.db).create_email_inbox(args.name, config)
        except ApiError as exc:
            raise ChatError(f"create-inbox: {exc.message}") from exc
        finally:
            await store.db.dispose()
        print(json.dumps(email_inbox_wire(inbox)) if args.json else inbox.id)

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


def cmd_create_adapter(settings: Settings, args: argparse.Namespace) -> int:
    """A bot or custom channel adapter; prints its token once (only its hash is stored)."""
    from chatserver.adapterapi.model import AdapterKind
    from chatserver.adapterapi.store import AdapterQueries

    async def run() -> str:
        store = await _with_store(settings)
        try:
            url = args.url
            secret = None
            if url:
                from chatserver.webhooks.ssrf import check_url

                await check_url(url, allow_private=settings.webhook_allow_private)
                secret = new_api_token()
            token = new_api_token()
            adapter = await AdapterQueries(store.db).create(
                name=args.name,
                kind=AdapterKind(args.kind),
                token_hash=sha256_hex(token),
                inbox_ids=args.inbox or [],
                url=url,
                secret=secret,
            )
            if args.bot_for:
                for inbox_id in args.inbox or []:
                    await AdapterQueries(store.db).set_inbox_bot(inbox_id, adapter.id)
        finally:
            await store.db.dispose()
        if args.json:
            return json.dumps({**adapter.to_wire(), "token": token, "secret": secret})
        return token

    print(asyncio.run(run()))
    return 0


def cmd_revoke_adapter(settings: Settings, args: argparse.Namespace) -> int:
    """Revoke an adapter's token; its open /ws/adapter sockets close with 4401 in every process: at once
    through the bus (Redis), else when each server next checks (within REVOKE_CHECK_S)."""
    from chatserver.adapterapi.service import REVOKE_CHECK_S
    from chatserver.adapterapi.store import AdapterQueries
    from chatserver.bus import make_bus
    from chatserver.model.events import AccessEvent, agent_topic

    async def run() -> bool:
        store = await _with_store(settings)
        try:
            await AdapterQueries(store.db).revoke(args.id)
        finally:
            await store.db.dispose()
        if not settings.redis_url:
            return False
        bus = make_bus(settings.redis_url, settings.redis_prefix)
        try:  # after the commit: every process closes the adapter's sockets
            return await bus.publish([(agent_topic(args.id), AccessEvent(args.id, "deactivated"))])
        finally:
            await bus.stop()

    told = asyncio.run(run())
    if not told:
        print(
            f"open connections of {args.id} close within {REVOKE_CHECK_S:g} s (when each server checks)",
            file=sys.stderr,
        )
    print(f"revoked {args.id}")
    return 0


def cmd_create_webhook(settings: Settings, args: argparse.Namespace) -> int:
    """An outgoing webhook; prints it as JSON with its signing secret (shown once)."""
    from chatserver.api.outgoing_webhooks import create_webhook
    from chatserver.webhooks.service import WebhookService
    from chatserver.webhooks.store import WebhookQueries

    async def run() -> str:
        store = await _with_store(settings)
        try:
            hook = await create_webhook(
                WebhookService(WebhookQueries(store.db)),
                args.url,
                [e.strip() for e in args.events.split(",") if e.strip()],
                args.secret,
                allow_private=settings.webhook_allow_private,
            )
        finally:
            await store.db.dispose()
        return json.dumps({**hook.to_wire(), "secret": hook.secret})

    print(asyncio.run(run()))
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
    """Routing profile of an agent: skills, languages, capacity, own language, teams; and the avatar."""

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
            if args.avatar_url is not None:
                try:
                    values["avatar_url"] = avatar_url(args.avatar_url, field="--avatar-url")
                except Invalid as exc:
                    raise ChatError(exc.message) from exc
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


def cmd_create_sla(settings: Settings, args: argparse.Namespace) -> int:
    """An SLA policy from JSON, validated exactly as POST /api/v1/sla-policies validates it."""
    from chatserver.api.sla import checked
    from chatserver.errors import ApiError
    from chatserver.model.ids import new_id
    from chatserver.tickets.sla import SlaService
    from chatserver.tickets.store import TicketQueries

    try:
        data = json.loads(args.json)
    except json.JSONDecodeError as exc:
        raise ChatError(f"create-sla: not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ChatError("create-sla: the JSON must be an object")

    async def run() -> None:
        store = await _with_store(settings)
        try:
            service = SlaService(store, TicketQueries(store.db))
            try:
                policy = await checked(service, new_id("sp_"), data)
            except ApiError as exc:
                raise ChatError(f"create-sla: {exc.message} (field {exc.data.get('field')})") from exc
            print(json.dumps((await service.save_policy(policy, create=True)).to_wire()))
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
    sm = sub.add_parser("smtp", help="run the inbound SMTP server alone (CHATSERVER_SMTP_LISTEN)")
    sm.set_defaults(fn=cmd_smtp)
    sub.add_parser("migrate", help="bring the database schema up to date").set_defaults(fn=cmd_migrate)
    a = sub.add_parser("create-agent", help="create an agent")
    a.add_argument("--email", required=True)
    a.add_argument("--password", required=True)
    a.add_argument("--name", required=True)
    a.add_argument("--role", choices=[r.value for r in Role], default="agent")
    a.add_argument("--language", help="the language the agent reads and writes (e.g. es)")
    a.add_argument("--json", action="store_true")
    a.set_defaults(fn=cmd_create_agent)
    rp = sub.add_parser(
        "reset-password",
        help="set a new password for an agent (printed once) and end that agent's sessions",
    )
    rp.add_argument("--email", required=True)
    rp.add_argument(
        "--password-stdin", action="store_true", help="read the new password from the first line of stdin"
    )
    rp.set_defaults(fn=cmd_reset_password)
    i = sub.add_parser(
        "create-inbox",
        help="create an inbox: widget (prints its key), email (its id) or a channel (its webhook URL)",
    )
    i.add_argument("--name", required=True)
    i.add_argument("--channel", choices=[*CHANNEL_NAMES, "email"], default="widget")
    i.add_argument("--config", metavar="JSON", help='the channel\'s settings, e.g. \'{"bot_token": "..."}\'')
    i.add_argument("--allowed-origin", action="append", metavar="URL")
    i.add_argument("--address", help="email: the address mail arrives at, e.g. support@shop.example")
    i.add_argument("--imap-url", help="email: imaps://user:password@host/INBOX to poll (optional)")
    i.add_argument("--imap-processed", help="email: flag (default) or move:<mailbox> for processed mail")
    i.add_argument("--tickets", choices=["always", "on-escalation"], help="email: default always")
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
    sa_.add_argument(
        "--avatar-url", help="https://... or a path on this server shown to visitors; '' removes it"
    )
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
    tw = sub.add_parser("telegram-set-webhook", help="register a Telegram inbox's webhook URL with Telegram")
    tw.add_argument("--inbox", required=True, metavar="ID")
    tw.set_defaults(fn=cmd_telegram_set_webhook)
    sl = sub.add_parser("create-sla", help="create an SLA policy from JSON (as the REST API takes it)")
    sl.add_argument(
        "--json",
        required=True,
        help='e.g. {"name": "std", "targets": {"first_response_s": 3600}, "calendar": {"timezone": "UTC"}}',
    )
    sl.set_defaults(fn=cmd_create_sla)
    t = sub.add_parser("create-token", help="create an API token for an agent; prints it")
    t.add_argument("--agent", required=True, metavar="EMAIL")
    t.add_argument("--name", default="cli")
    t.set_defaults(fn=cmd_create_token)
    from chatserver.widgetcfg.cli import add_commands as add_widget_commands

    add_widget_commands(sub)  # update-inbox, inbox-secret
    ad = sub.add_parser("create-adapter", help="create a bot or custom channel adapter; prints its token")
    ad.add_argument("--name", required=True)
    ad.add_argument("--kind", required=True, choices=["bot", "channel"])
    ad.add_argument("--inbox", action="append", metavar="ID", help="an inbox it serves (repeatable)")
    ad.add_argument("--url", help="channel adapters: where replies are POSTed while it is not connected")
    ad.add_argument("--bot-for", action="store_true", help="bots: also make it the bot of these inboxes")
    ad.add_argument("--json", action="store_true", help="print the adapter as JSON (with the token)")
    ad.set_defaults(fn=cmd_create_adapter)
    ra = sub.add_parser("revoke-adapter", help="revoke an adapter's token")
    ra.add_argument("--id", required=True)
    ra.set_defaults(fn=cmd_revoke_adapter)
    wh = sub.add_parser("create-webhook", help="register an outgoing webhook; prints it as JSON")
    wh.add_argument("--url", required=True)
    wh.add_argument("--events", required=True, help="comma-separated, e.g. message.created,ticket.updated")
    wh.add_argument("--secret", help="the signing secret (default: generated)")
    wh.set_defaults(fn=cmd_create_webhook)
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
        install_redaction()
        prepare_sqlite(settings.database_url)  # before anything opens it
        quiet_alembic(settings.log_level)
        if args.command != "serve":
            settings = settings.with_secret() if settings.embedded else settings
        return int(args.fn(settings, args))
    except ChatError as exc:
        print(f"chatserver: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
