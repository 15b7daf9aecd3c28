"""Settings, built once from the environment and passed in.

Nothing else in the package reads ``os.environ``: :meth:`Settings.from_env` is the one place.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from chatserver.auth.throttle import ThrottlePolicy
from chatserver.datadir import create_private_file, make_private_dir
from chatserver.errors import ConfigError
from chatserver.translation.service import TranslationConfig

SECRET_FILE = "secret_key"


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = env.get(name, "")
    return tuple(part.strip().rstrip("/") for part in raw.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    """Every setting of the server. See the configuration table in README.md."""

    data_dir: Path = Path("data")
    database_url: str = ""
    redis_url: str | None = None
    redis_prefix: str = "chat:"
    """Prefix of every Redis key and pub/sub channel, so deployments (or test runs) can share one Redis."""
    secret_key: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = ""
    """The URL agents and visitors use to reach the server (default http://HOST:PORT)."""
    console_origins: tuple[str, ...] = ()
    """Extra origins allowed to open /ws/agent (the server's own origin always is)."""
    admin_email: str = "admin@example.com"
    admin_password: str | None = None
    max_text_bytes: int = 16 * 1024
    max_frame_bytes: int = 64 * 1024
    send_queue_size: int = 512
    db_pool: int = 20
    """Database connections the server process keeps open (a fixed pool: none opened under load)."""
    heartbeat_s: float = 20.0
    rate_limit_per_s: float = 20.0
    rate_limit_burst: int = 60
    rate_limit_strikes: int = 30
    session_ttl_s: int = 14 * 24 * 3600
    visitor_token_ttl_s: int = 30 * 24 * 3600
    reconcile_interval_s: float = 5.0
    presence_ttl_s: float = 30.0
    group_commit_max: int = 256
    log_level: str = "info"
    translation_provider: str = "none"
    """none, google_v3, google_v2 or libretranslate (see docs/operations.md)."""
    translation_project: str | None = None
    translation_location: str = "global"
    translation_api_key: str | None = None
    translation_url: str | None = None
    translation_endpoint: str | None = None
    translation_timeout_s: float = 5.0
    translation_retry_s: float = 15.0
    translation_breaker_failures: int = 5
    translation_breaker_cooldown_s: float = 30.0
    languages: tuple[str, ...] = ("en", "de", "es", "fr", "it", "pt", "nl", "pl")
    """Languages detection chooses among (ISO 639-1)."""
    detection_accuracy: str = "low"
    agent_language: str = "en"
    """The language of agents who have not set one."""
    routing: str = "offers"
    """offers: the router offers conversations to agents; manual: agents take them (conversation.claim)."""
    offer_timeout_s: float = 30.0
    max_concurrent: int = 3
    """Conversations an agent handles at once, unless the agent has their own limit."""
    rona_threshold: int = 3
    agent_grace_s: float = 30.0
    requeue_window_s: float = 300.0
    """How long after a visitor's last activity their pending conversation is still offered again."""
    auto_migrate: bool = False
    """Bring the database schema up to date when ``serve`` or ``worker`` starts."""
    routing_lease_ttl_s: float = 5.0
    max_body_bytes: int = 256 * 1024
    """Largest HTTP request body; larger is refused with 413 before it is read."""
    header_timeout_s: float = 10.0
    """A connection must send a complete request head within this (idle sockets included)."""
    body_timeout_s: float = 30.0
    """A request body may pause this long between chunks before the connection is closed."""
    ws_handshake_timeout_s: float = 10.0
    """From the WebSocket upgrade to `hello`; slower is closed (1013)."""
    ws_per_token: int = 20
    """Open WebSockets per visitor token or agent, per process; more are closed with 4429."""
    ws_per_address: int = 500
    """Open WebSockets per client address, per process; more are closed with 4429."""
    login_account_failures: int = 5
    """Failed logins an account may have before each further one locks it (exponentially longer)."""
    login_address_failures: int = 20
    """The same, per client address (IPv4, or IPv6 /64)."""
    login_lockout_s: float = 2.0
    """The first lockout; it doubles with every further failure, up to login_lockout_max_s."""
    login_lockout_max_s: float = 900.0
    login_window_s: float = 3600.0
    """Failures are forgotten this long after the last one."""
    password_hash_concurrency: int = 2
    """argon2 computations (64 MiB each) a process runs at once; more wait their turn."""
    smtp_listen: str | None = None
    """host:port of the inbound SMTP server (CHATSERVER_SMTP_LISTEN); None: no SMTP server."""
    mail_max_bytes: int = 25 * 1024 * 1024
    mail_dir: Path | None = None
    """Raw mail and attachments (default DATA_DIR/mail)."""
    mail_max_attachments: int = 50
    mail_max_attachment_bytes: int = 10 * 1024 * 1024
    smtp_tls_cert: Path | None = None
    smtp_tls_key: Path | None = None
    smtp_auth_user: str | None = None
    smtp_auth_password: str | None = None
    imap_poll_s: float = 60.0
    mail_auto_reply_limit: int = 3
    """Automatic mails (acknowledgements) to one sender per hour, at most."""
    """Seconds between polls of a mailbox without IDLE (and the longest IDLE before it is renewed)."""
    smtp_url: str | None = None
    """smtp://user:pass@host:port (?starttls=1) or smtps://...: where ticket emails go (none: not sent)."""
    mail_from: str = "support@localhost"
    outbox_retry_s: float = 10.0
    """The first retry of a failed delivery; later ones double, with jitter."""
    outbox_max_attempts: int = 8
    bot_grace_s: float = 30.0
    """A bot disconnected this long hands its conversations to people."""
    bot_handoff_words: tuple[str, ...] = ("agent", "human", "person")
    """A visitor's message that is one of these words hands a bot conversation to people."""
    webhook_allow_private: bool = False
    """Allow webhook URLs on loopback and private addresses (on-premises receivers, tests)."""
    webhook_timeout_s: float = 10.0
    """Connect + response deadline of one webhook delivery; its body is read up to 64 KiB."""
    ticket_reopen_days: float = 7.0
    """A customer's reply reopens a solved ticket within this many days; later it opens a new one."""
    visitor_gone_s: float = 60.0
    """A waiting visitor without a connection this long has left: their conversation becomes a ticket."""
    workers_in_serve: bool = False
    """Run the outbox and SLA workers inside ``serve`` (default: in embedded mode)."""
    files_dir: Path | None = None
    """Files sent in conversations (default DATA_DIR/files)."""
    upload_max_bytes: int = 10 * 1024 * 1024
    upload_types: tuple[str, ...] = ()
    """Accepted upload types (default: chatserver.files.model.DEFAULT_TYPES)."""
    embedded: bool = field(default=False)
    """True when running on the embedded defaults (SQLite file in data_dir, in-process bus)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        data_dir = Path(env.get("CHATSERVER_DATA_DIR") or "data")
        database_url = env.get("DATABASE_URL") or ""
        redis_url = env.get("REDIS_URL") or None
        embedded_db = database_url == ""
        if embedded_db:
            database_url = f"sqlite+aiosqlite:///{(data_dir / 'chatserver.db').as_posix()}"
        database_url = normalize_database_url(database_url)
        host = env.get("CHATSERVER_HOST") or "127.0.0.1"
        port = _int(env, "PORT", 8000)
        settings = cls(
            data_dir=data_dir,
            database_url=database_url,
            redis_url=redis_url,
            redis_prefix=env.get("CHATSERVER_REDIS_PREFIX") or "chat:",
            secret_key=env.get("CHATSERVER_SECRET_KEY") or "",
            host=host,
            port=port,
            public_url=(env.get("CHATSERVER_PUBLIC_URL") or "").rstrip("/"),
            console_origins=_list(env, "CHATSERVER_CONSOLE_ORIGINS"),
            admin_email=env.get("CHATSERVER_ADMIN_EMAIL") or "admin@example.com",
            admin_password=env.get("CHATSERVER_ADMIN_PASSWORD") or None,
            max_text_bytes=_int(env, "CHATSERVER_MAX_TEXT_BYTES", 16 * 1024),
            max_frame_bytes=_int(env, "CHATSERVER_MAX_FRAME_BYTES", 64 * 1024),
            send_queue_size=_int(env, "CHATSERVER_SEND_QUEUE", 512),
            db_pool=_int(env, "CHATSERVER_DB_POOL", 20),
            heartbeat_s=_float(env, "CHATSERVER_HEARTBEAT_S", 20.0),
            rate_limit_per_s=_float(env, "CHATSERVER_RATE_LIMIT_PER_S", 20.0),
            rate_limit_burst=_int(env, "CHATSERVER_RATE_LIMIT_BURST", 60),
            rate_limit_strikes=_int(env, "CHATSERVER_RATE_LIMIT_STRIKES", 30),
            session_ttl_s=_int(env, "CHATSERVER_SESSION_TTL_S", 14 * 24 * 3600),
            visitor_token_ttl_s=_int(env, "CHATSERVER_VISITOR_TOKEN_TTL_S", 30 * 24 * 3600),
            reconcile_interval_s=_float(env, "CHATSERVER_RECONCILE_S", 5.0),
            presence_ttl_s=_float(env, "CHATSERVER_PRESENCE_TTL_S", 30.0),
            group_commit_max=_int(env, "CHATSERVER_GROUP_COMMIT_MAX", 256),
            log_level=env.get("CHATSERVER_LOG_LEVEL") or "info",
            translation_provider=env.get("CHATSERVER_TRANSLATION_PROVIDER") or "none",
            translation_project=env.get("CHATSERVER_TRANSLATION_PROJECT") or None,
            translation_location=env.get("CHATSERVER_TRANSLATION_LOCATION") or "global",
            translation_api_key=env.get("CHATSERVER_TRANSLATION_API_KEY") or None,
            translation_url=env.get("CHATSERVER_TRANSLATION_URL") or None,
            translation_endpoint=env.get("CHATSERVER_TRANSLATION_ENDPOINT") or None,
            translation_timeout_s=_float(env, "CHATSERVER_TRANSLATION_TIMEOUT_S", 5.0),
            translation_retry_s=_float(env, "CHATSERVER_TRANSLATION_RETRY_S", 15.0),
            translation_breaker_failures=_int(env, "CHATSERVER_TRANSLATION_BREAKER_FAILURES", 5),
            translation_breaker_cooldown_s=_float(env, "CHATSERVER_TRANSLATION_BREAKER_COOLDOWN_S", 30.0),
            languages=tuple(code.lower() for code in _list(env, "CHATSERVER_LANGUAGES"))
            or ("en", "de", "es", "fr", "it", "pt", "nl", "pl"),
            detection_accuracy=env.get("CHATSERVER_DETECTION_ACCURACY") or "low",
            agent_language=(env.get("CHATSERVER_AGENT_LANGUAGE") or "en").lower(),
            routing=env.get("CHATSERVER_ROUTING") or "offers",
            offer_timeout_s=_float(env, "CHATSERVER_OFFER_TIMEOUT_S", 30.0),
            max_concurrent=_int(env, "CHATSERVER_MAX_CONCURRENT", 3),
            rona_threshold=_int(env, "CHATSERVER_RONA_THRESHOLD", 3),
            agent_grace_s=_float(env, "CHATSERVER_AGENT_GRACE_S", 30.0),
            requeue_window_s=_float(env, "CHATSERVER_REQUEUE_WINDOW_S", 300.0),
            auto_migrate=_bool(env, "CHATSERVER_AUTO_MIGRATE", False),
            routing_lease_ttl_s=_float(env, "CHATSERVER_ROUTING_LEASE_S", 5.0),
            max_body_bytes=_int(env, "CHATSERVER_MAX_BODY_BYTES", 256 * 1024),
            header_timeout_s=_float(env, "CHATSERVER_HEADER_TIMEOUT_S", 10.0),
            body_timeout_s=_float(env, "CHATSERVER_BODY_TIMEOUT_S", 30.0),
            ws_handshake_timeout_s=_float(env, "CHATSERVER_WS_HANDSHAKE_TIMEOUT_S", 10.0),
            ws_per_token=_int(env, "CHATSERVER_WS_PER_TOKEN", 20),
            ws_per_address=_int(env, "CHATSERVER_WS_PER_ADDRESS", 500),
            login_account_failures=_int(env, "CHATSERVER_LOGIN_ACCOUNT_FAILURES", 5),
            login_address_failures=_int(env, "CHATSERVER_LOGIN_ADDRESS_FAILURES", 20),
            login_lockout_s=_float(env, "CHATSERVER_LOGIN_LOCKOUT_S", 2.0),
            login_lockout_max_s=_float(env, "CHATSERVER_LOGIN_LOCKOUT_MAX_S", 900.0),
            login_window_s=_float(env, "CHATSERVER_LOGIN_WINDOW_S", 3600.0),
            password_hash_concurrency=_int(env, "CHATSERVER_PASSWORD_HASH_CONCURRENCY", 2),
            smtp_listen=env.get("CHATSERVER_SMTP_LISTEN") or None,
            mail_max_bytes=_int(env, "CHATSERVER_MAIL_MAX_BYTES", 25 * 1024 * 1024),
            mail_dir=Path(env["CHATSERVER_MAIL_DIR"]) if env.get("CHATSERVER_MAIL_DIR") else None,
            mail_max_attachments=_int(env, "CHATSERVER_MAIL_MAX_ATTACHMENTS", 50),
            mail_max_attachment_bytes=_int(env, "CHATSERVER_MAIL_MAX_ATTACHMENT_BYTES", 10 * 1024 * 1024),
            smtp_tls_cert=Path(env["CHATSERVER_SMTP_TLS_CERT"])
            if env.get("CHATSERVER_SMTP_TLS_CERT")
            else None,
            smtp_tls_key=Path(env["CHATSERVER_SMTP_TLS_KEY"]) if env.get("CHATSERVER_SMTP_TLS_KEY") else None,
            smtp_auth_user=env.get("CHATSERVER_SMTP_AUTH_USER") or None,
            smtp_auth_password=env.get("CHATSERVER_SMTP_AUTH_PASSWORD") or None,
            imap_poll_s=_float(env, "CHATSERVER_IMAP_POLL_S", 60.0),
            mail_auto_reply_limit=_int(env, "CHATSERVER_MAIL_AUTO_REPLY_LIMIT", 3),
            smtp_url=env.get("CHATSERVER_SMTP_URL") or None,
            mail_from=env.get("CHATSERVER_MAIL_FROM") or "support@localhost",
            outbox_retry_s=_float(env, "CHATSERVER_OUTBOX_RETRY_S", 10.0),
            outbox_max_attempts=_int(env, "CHATSERVER_OUTBOX_MAX_ATTEMPTS", 8),
            bot_grace_s=_float(env, "CHATSERVER_BOT_GRACE_S", 30.0),
            bot_handoff_words=_list(env, "CHATSERVER_BOT_HANDOFF_WORDS") or ("agent", "human", "person"),
            webhook_allow_private=_bool(env, "CHATSERVER_WEBHOOK_ALLOW_PRIVATE", False),
            webhook_timeout_s=_float(env, "CHATSERVER_WEBHOOK_TIMEOUT_S", 10.0),
            ticket_reopen_days=_float(env, "CHATSERVER_TICKET_REOPEN_DAYS", 7.0),
            visitor_gone_s=_float(env, "CHATSERVER_VISITOR_GONE_S", 60.0),
            workers_in_serve=_bool(env, "CHATSERVER_WORKERS_IN_SERVE", embedded_db and redis_url is None),
            files_dir=Path(env["CHATSERVER_FILES_DIR"]) if env.get("CHATSERVER_FILES_DIR") else None,
            upload_max_bytes=_int(env, "CHATSERVER_UPLOAD_MAX_BYTES", 10 * 1024 * 1024),
            upload_types=tuple(t.lower() for t in _list(env, "CHATSERVER_UPLOAD_TYPES")),
            embedded=embedded_db and redis_url is None,
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.max_text_bytes <= 0 or self.max_frame_bytes <= self.max_text_bytes:
            raise ConfigError("CHATSERVER_MAX_FRAME_BYTES must exceed CHATSERVER_MAX_TEXT_BYTES")
        if self.send_queue_size < 8:
            raise ConfigError("CHATSERVER_SEND_QUEUE must be at least 8")
        if self.db_pool < 2:
            raise ConfigError("CHATSERVER_DB_POOL must be at least 2")
        if self.routing not in ("offers", "manual"):
            raise ConfigError("CHATSERVER_ROUTING must be offers or manual")
        if self.offer_timeout_s <= 0 or self.max_concurrent < 1 or self.rona_threshold < 1:
            raise ConfigError("offer timeout, max concurrent and RONA threshold must be positive")
        if self.requeue_window_s < 0:
            raise ConfigError("CHATSERVER_REQUEUE_WINDOW_S must be >= 0")
        if self.detection_accuracy not in ("low", "high"):
            raise ConfigError("CHATSERVER_DETECTION_ACCURACY must be low or high")
        if self.max_body_bytes < 1024:
            raise ConfigError("CHATSERVER_MAX_BODY_BYTES must be at least 1024")
        if min(self.header_timeout_s, self.body_timeout_s, self.ws_handshake_timeout_s) <= 0:
            raise ConfigError(
                "CHATSERVER_HEADER_TIMEOUT_S, CHATSERVER_BODY_TIMEOUT_S and "
                "CHATSERVER_WS_HANDSHAKE_TIMEOUT_S must be positive"
            )
        if self.ws_per_token < 1 or self.ws_per_address < 1:
            raise ConfigError("CHATSERVER_WS_PER_TOKEN and CHATSERVER_WS_PER_ADDRESS must be at least 1")
        if self.login_account_failures < 1 or self.login_address_failures < 1:
            raise ConfigError("CHATSERVER_LOGIN_ACCOUNT_FAILURES and _ADDRESS_FAILURES must be at least 1")
        if not 0 < self.login_lockout_s <= self.login_lockout_max_s or self.login_window_s <= 0:
            raise ConfigError(
                "need 0 < CHATSERVER_LOGIN_LOCKOUT_S <= CHATSERVER_LOGIN_LOCKOUT_MAX_S "
                "and CHATSERVER_LOGIN_WINDOW_S > 0"
            )
        if self.password_hash_concurrency < 1:
            raise ConfigError("CHATSERVER_PASSWORD_HASH_CONCURRENCY must be at least 1")
        self.smtp_address()
        if self.mail_max_bytes < 1024 or self.mail_max_attachments < 0 or self.mail_max_attachment_bytes < 1:
            raise ConfigError("CHATSERVER_MAIL_MAX_BYTES and the attachment limits must be positive")
        if not 0 < self.upload_max_bytes <= 1024 * 1024 * 1024:
            raise ConfigError("CHATSERVER_UPLOAD_MAX_BYTES must be between 1 and 1073741824")
        if (self.smtp_tls_cert is None) != (self.smtp_tls_key is None):
            raise ConfigError("set both CHATSERVER_SMTP_TLS_CERT and CHATSERVER_SMTP_TLS_KEY, or neither")
        if (self.smtp_auth_user is None) != (self.smtp_auth_password is None):
            raise ConfigError(
                "set both CHATSERVER_SMTP_AUTH_USER and CHATSERVER_SMTP_AUTH_PASSWORD, or neither"
            )
        if self.mail_auto_reply_limit < 0:
            raise ConfigError("CHATSERVER_MAIL_AUTO_REPLY_LIMIT must be 0 or more")
        if self.imap_poll_s <= 0:
            raise ConfigError("CHATSERVER_IMAP_POLL_S must be positive")
        if self.outbox_retry_s <= 0 or self.outbox_max_attempts < 1:
            raise ConfigError(
                "CHATSERVER_OUTBOX_RETRY_S must be positive, CHATSERVER_OUTBOX_MAX_ATTEMPTS >= 1"
            )
        if self.smtp_url is not None:
            from chatserver.outbox.smtp import SmtpConfig

            SmtpConfig.from_url(self.smtp_url)  # raises ConfigError on a bad URL
        self.translation_config()  # raises ConfigError when the provider settings are incomplete
        if self.is_sqlite and self.redis_url:
            # Several processes would each hold their own SQLite writer: refuse the foot-gun.
            raise ConfigError("REDIS_URL (several processes) needs PostgreSQL: set DATABASE_URL too")

    @property
    def translation_enabled(self) -> bool:
        return self.translation_provider != "none"

    def translation_config(self) -> TranslationConfig:
        try:
            return TranslationConfig(
                provider=self.translation_provider,  # type: ignore[arg-type]  # validated by TranslationConfig
                project=self.translation_project,
                location=self.translation_location,
                api_key=self.translation_api_key,
                url=self.translation_url,
                endpoint=self.translation_endpoint,
                timeout_s=self.translation_timeout_s,
                breaker_failure_threshold=self.translation_breaker_failures,
                breaker_cooldown_s=self.translation_breaker_cooldown_s,
            )
        except ValueError as exc:
            raise ConfigError(f"translation settings: {exc}") from exc

    def login_policies(self) -> tuple[ThrottlePolicy, ThrottlePolicy]:
        """The login throttle per account and per client address."""
        return (
            ThrottlePolicy(
                self.login_account_failures,
                self.login_lockout_s,
                self.login_lockout_max_s,
                self.login_window_s,
            ),
            ThrottlePolicy(
                self.login_address_failures,
                self.login_lockout_s,
                self.login_lockout_max_s,
                self.login_window_s,
            ),
        )

    def smtp_address(self) -> tuple[str, int] | None:
        """CHATSERVER_SMTP_LISTEN as (host, port)."""
        if not self.smtp_listen:
            return None
        host, _, port = self.smtp_listen.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ConfigError(f"CHATSERVER_SMTP_LISTEN must be host:port, got {self.smtp_listen!r}")
        return host.strip("[]"), int(port)

    @property
    def files_path(self) -> Path:
        return self.files_dir if self.files_dir is not None else self.data_dir / "files"

    @property
    def accepted_upload_types(self) -> tuple[str, ...]:
        from chatserver.files.model import DEFAULT_TYPES

        return self.upload_types or DEFAULT_TYPES

    @property
    def mail_path(self) -> Path:
        return self.mail_dir if self.mail_dir is not None else self.data_dir / "mail"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    def with_secret(self) -> Settings:
        """Return settings with a secret key: the configured one, or (embedded mode only) one kept
        in the data directory, generated on first start."""
        if self.secret_key:
            return self
        if not self.embedded:
            raise ConfigError(
                "CHATSERVER_SECRET_KEY is required when DATABASE_URL or REDIS_URL is set "
                "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        make_private_dir(self.data_dir)
        path = self.data_dir / SECRET_FILE
        key = secrets.token_urlsafe(48)
        if not create_private_file(path, key + "\n"):
            key = path.read_text().strip()
        return replace(self, secret_key=key)


def normalize_database_url(url: str) -> str:
    """Accept the usual spellings and pick the async drivers (aiosqlite, asyncpg)."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    if url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
        return url
    raise ConfigError(f"DATABASE_URL must be a PostgreSQL or SQLite URL, got {url.split(':', 1)[0]}:...")
