"""Settings, built once from the environment and passed in.

Nothing else in the package reads ``os.environ``: :meth:`Settings.from_env` is the one place.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

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
            embedded=embedded_db and redis_url is None,
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.max_text_bytes <= 0 or self.max_frame_bytes <= self.max_text_bytes:
            raise ConfigError("CHATSERVER_MAX_FRAME_BYTES must exceed CHATSERVER_MAX_TEXT_BYTES")
        if self.send_queue_size < 8:
            raise ConfigError("CHATSERVER_SEND_QUEUE must be at least 8")
        if self.routing not in ("offers", "manual"):
            raise ConfigError("CHATSERVER_ROUTING must be offers or manual")
        if self.offer_timeout_s <= 0 or self.max_concurrent < 1 or self.rona_threshold < 1:
            raise ConfigError("offer timeout, max concurrent and RONA threshold must be positive")
        if self.requeue_window_s < 0:
            raise ConfigError("CHATSERVER_REQUEUE_WINDOW_S must be >= 0")
        if self.detection_accuracy not in ("low", "high"):
            raise ConfigError("CHATSERVER_DETECTION_ACCURACY must be low or high")
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
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / SECRET_FILE
        if path.exists():
            key = path.read_text().strip()
        else:
            key = secrets.token_urlsafe(48)
            path.touch(mode=0o600)
            path.write_text(key + "\n")
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
