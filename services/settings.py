"""Configuration, read once from the environment by each process's composition root."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import unquote, urlparse

DEFAULT_KAFKA = "127.0.0.1:19092"
DEFAULT_DATABASE = "postgresql://switchboard:switchboard@127.0.0.1:25432/switchboard"
DEFAULT_GRAPH_API = "https://graph.facebook.com/v21.0"
GRAPH_API_VERSION = "v21.0"
# Where the gateway serves the sandbox's stand-in for Meta's Graph API.
SANDBOX_GRAPH_PATH = "/sandbox/graph"
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})


class SettingsError(ValueError):
    """A configuration value that cannot be used; the message names the variable."""


@dataclass(frozen=True)
class DatabaseUrl:
    host: str
    port: int
    dbname: str
    user: str
    password: str

    @classmethod
    def parse(cls, url: str) -> DatabaseUrl:
        parsed = urlparse(url)
        if parsed.scheme not in {"postgresql", "postgres"} or not parsed.path.strip("/"):
            raise SettingsError(
                f"SWITCHBOARD_DATABASE_URL must look like postgresql://user:pass@host:port/db,"
                f" got {url!r}"
            )
        return cls(
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 5432,
            dbname=parsed.path.strip("/"),
            user=unquote(parsed.username or ""),
            password=unquote(parsed.password or ""),
        )

    def conninfo(self) -> str:
        return (
            f"host={self.host} port={self.port} dbname={self.dbname} "
            f"user={self.user} password={self.password}"
        )


@dataclass(frozen=True)
class Settings:
    """Every knob of every process. The README lists each variable."""

    kafka_bootstrap: str = DEFAULT_KAFKA
    database_url: str = DEFAULT_DATABASE
    # Prefixes keep deployments (and test runs) apart on one broker and one database.
    topic_prefix: str = ""
    schema_prefix: str = ""
    # Consumer groups are named after the topic prefix unless this is set: a second,
    # independent reader of the same topics (a replay into fresh schemas) needs its own.
    group_prefix: str | None = None
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    whatsapp_app_secret: str = ""
    whatsapp_verify_token: str = ""
    whatsapp_api_base_url: str = DEFAULT_GRAPH_API
    whatsapp_access_token: str = ""
    # The WhatsApp sandbox (development): the gateway plays Meta at /sandbox, and the
    # dispatcher sends there (see ``sandbox_settings``).
    sandbox: bool = False
    # How long after a member's last live stream ended it is set offline (a reload, a
    # dropped connection that comes back within it, keeps the status).
    presence_grace_seconds: float = 60.0
    publish_timeout_seconds: float = 5.0
    # Meta's deliveries are a few kilobytes; a larger body is refused before it is read.
    webhook_max_body_bytes: int = 1024 * 1024
    # The consumer runtime: records per batch (one transaction each), streams whose state a
    # process keeps between records, and how often an idle relay looks without being woken.
    batch_max_records: int = 500
    stream_cache_size: int = 10_000
    relay_check_seconds: float = 10.0
    # The dispatcher: attempts per round of sending (a retry request starts a new round),
    # the first back-off (doubled after each attempt), and the Graph API call's timeout.
    dispatch_max_attempts: int = 5
    dispatch_backoff_seconds: float = 0.5
    dispatch_timeout_seconds: float = 10.0
    # The expiry service: a conversation closes this long after it started (Meta's 24 h),
    # unless its flow set an earlier expiration. Tests shorten it.
    expiry_max_age_seconds: float = 86400.0
    # The agent suite's session cookie: signed with this secret (the gateway refuses to
    # start without one), valid this long after sign-in.
    session_secret: str = ""
    session_hours: float = 12.0
    log_level: str = "INFO"
    log_format: str = "auto"
    # Each consumer's and the relay's own /metrics, /readyz and /healthz (runtime.observe):
    # None takes the process's port in the registry (9101...), 0 turns it off. The gateway
    # serves them on its HTTP port.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    # /readyz answers 503 while a partition the process holds (or a store the relay
    # publishes) is more than this many records behind.
    ready_max_lag: int = 1000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        settings = cls(
            kafka_bootstrap=env.get("SWITCHBOARD_KAFKA_BOOTSTRAP", DEFAULT_KAFKA),
            database_url=env.get("SWITCHBOARD_DATABASE_URL", DEFAULT_DATABASE),
            topic_prefix=env.get("SWITCHBOARD_TOPIC_PREFIX", ""),
            schema_prefix=env.get("SWITCHBOARD_SCHEMA_PREFIX", ""),
            group_prefix=env.get("SWITCHBOARD_GROUP_PREFIX") or None,
            http_host=env.get("SWITCHBOARD_HTTP_HOST", "127.0.0.1"),
            http_port=_int(env, "SWITCHBOARD_HTTP_PORT", 8000),
            whatsapp_app_secret=env.get("WHATSAPP_APP_SECRET", ""),
            whatsapp_verify_token=env.get("WHATSAPP_VERIFY_TOKEN", ""),
            whatsapp_api_base_url=env.get("WHATSAPP_API_BASE_URL") or DEFAULT_GRAPH_API,
            whatsapp_access_token=env.get("WHATSAPP_ACCESS_TOKEN", ""),
            sandbox=_bool(env, "SWITCHBOARD_SANDBOX"),
            presence_grace_seconds=_float(env, "SWITCHBOARD_PRESENCE_GRACE_SECONDS", 60.0),
            publish_timeout_seconds=_float(env, "SWITCHBOARD_PUBLISH_TIMEOUT", 5.0),
            webhook_max_body_bytes=_int(env, "SWITCHBOARD_WEBHOOK_MAX_BODY_BYTES", 1024 * 1024),
            batch_max_records=_int(env, "SWITCHBOARD_BATCH_MAX_RECORDS", 500),
            stream_cache_size=_int(env, "SWITCHBOARD_STREAM_CACHE_SIZE", 10_000),
            relay_check_seconds=_float(env, "SWITCHBOARD_RELAY_CHECK_SECONDS", 10.0),
            dispatch_max_attempts=_int(env, "SWITCHBOARD_DISPATCH_MAX_ATTEMPTS", 5),
            dispatch_backoff_seconds=_float(env, "SWITCHBOARD_DISPATCH_BACKOFF_SECONDS", 0.5),
            dispatch_timeout_seconds=_float(env, "SWITCHBOARD_DISPATCH_TIMEOUT_SECONDS", 10.0),
            expiry_max_age_seconds=_float(env, "SWITCHBOARD_EXPIRY_MAX_AGE_SECONDS", 86400.0),
            session_secret=env.get("SWITCHBOARD_SESSION_SECRET", ""),
            session_hours=_float(env, "SWITCHBOARD_SESSION_HOURS", 12.0),
            log_level=env.get("SWITCHBOARD_LOG_LEVEL", "INFO").upper(),
            log_format=env.get("SWITCHBOARD_LOG_FORMAT", "auto"),
            metrics_port=(
                _int(env, "SWITCHBOARD_METRICS_PORT", 0)
                if env.get("SWITCHBOARD_METRICS_PORT")
                else None  # not set: the registry's port for the process
            ),
            metrics_host=env.get("SWITCHBOARD_METRICS_HOST")
            or env.get("SWITCHBOARD_HTTP_HOST", "127.0.0.1"),
            ready_max_lag=_int(env, "SWITCHBOARD_READY_MAX_LAG", 1000),
        )
        settings.database()  # fail at start-up, with the variable's name, not at first use
        if settings.dispatch_max_attempts < 1:
            raise SettingsError(
                "SWITCHBOARD_DISPATCH_MAX_ATTEMPTS must be at least 1,"
                f" got {settings.dispatch_max_attempts}"
            )
        if settings.dispatch_backoff_seconds < 0 or settings.dispatch_timeout_seconds <= 0:
            raise SettingsError(
                "SWITCHBOARD_DISPATCH_BACKOFF_SECONDS must be >= 0 and"
                " SWITCHBOARD_DISPATCH_TIMEOUT_SECONDS > 0"
            )
        if settings.batch_max_records < 1 or settings.stream_cache_size < 0:
            raise SettingsError(
                "SWITCHBOARD_BATCH_MAX_RECORDS must be at least 1 and"
                " SWITCHBOARD_STREAM_CACHE_SIZE 0 or more"
            )
        if settings.relay_check_seconds <= 0:
            raise SettingsError(
                "SWITCHBOARD_RELAY_CHECK_SECONDS must be more than 0,"
                f" got {settings.relay_check_seconds}"
            )
        if settings.webhook_max_body_bytes < 1:
            raise SettingsError(
                "SWITCHBOARD_WEBHOOK_MAX_BODY_BYTES must be at least 1,"
                f" got {settings.webhook_max_body_bytes}"
            )
        if settings.expiry_max_age_seconds <= 0:
            raise SettingsError(
                "SWITCHBOARD_EXPIRY_MAX_AGE_SECONDS must be more than 0,"
                f" got {settings.expiry_max_age_seconds}"
            )
        if settings.session_hours <= 0:
            raise SettingsError(
                f"SWITCHBOARD_SESSION_HOURS must be more than 0, got {settings.session_hours}"
            )
        if settings.metrics_port is not None and not 0 <= settings.metrics_port <= 65535:
            raise SettingsError(
                "SWITCHBOARD_METRICS_PORT must be a port (0 turns the endpoint off),"
                f" got {settings.metrics_port}"
            )
        if settings.ready_max_lag < 0:
            raise SettingsError(
                f"SWITCHBOARD_READY_MAX_LAG must be 0 or more, got {settings.ready_max_lag}"
            )
        if settings.presence_grace_seconds < 0:
            raise SettingsError(
                "SWITCHBOARD_PRESENCE_GRACE_SECONDS must be 0 or more,"
                f" got {settings.presence_grace_seconds}"
            )
        if settings.sandbox:
            return sandbox_settings(settings, explicit_base_url=env.get("WHATSAPP_API_BASE_URL"))
        return settings

    def database(self) -> DatabaseUrl:
        return DatabaseUrl.parse(self.database_url)

    def schema(self, name: str) -> str:
        """The Postgres schema a service owns (``inbound``, ``directory``, ``projections``)."""
        return f"{self.schema_prefix}{name}"

    def group_id(self, consumer: str) -> str:
        prefix = self.topic_prefix if self.group_prefix is None else self.group_prefix
        return f"{prefix}switchboard.{consumer}"


def sandbox_access_token(app_secret: str) -> str:
    """The bearer token the sandbox's Graph API stand-in accepts: derived from the app
    secret, so only processes configured with it can put messages on the sandbox phones."""
    digest = hmac.new(app_secret.encode(), b"switchboard sandbox graph api", hashlib.sha256)
    return "sandbox-" + digest.hexdigest()[:40]


def sandbox_settings(settings: Settings, *, explicit_base_url: str | None) -> Settings:
    """Sandbox mode: the dispatcher sends to the gateway's Graph API stand-in, with the
    sandbox's token. It refuses a real access token (and Meta's address), so a development
    setup cannot message real customers."""
    if settings.whatsapp_access_token:
        raise SettingsError(
            "SWITCHBOARD_SANDBOX=1 refuses to start with WHATSAPP_ACCESS_TOKEN set: the sandbox"
            " stands in for Meta; unset the token, or turn the sandbox off to reach Meta"
        )
    if not settings.whatsapp_app_secret:
        raise SettingsError(
            "SWITCHBOARD_SANDBOX=1 needs WHATSAPP_APP_SECRET: the sandbox signs its webhooks"
            " with it"
        )
    base_url = explicit_base_url or ""
    host = urlparse(base_url).hostname or ""
    if host == "facebook.com" or host.endswith(".facebook.com"):
        raise SettingsError(
            f"SWITCHBOARD_SANDBOX=1 refuses WHATSAPP_API_BASE_URL={base_url!r}: that is Meta;"
            " leave it unset (the gateway's sandbox) or turn the sandbox off"
        )
    if not base_url:
        # The gateway as the other processes reach it (a wildcard bind is reached locally).
        gateway = settings.http_host if settings.http_host not in ("0.0.0.0", "::") else None
        base_url = (
            f"http://{gateway or '127.0.0.1'}:{settings.http_port}"
            f"{SANDBOX_GRAPH_PATH}/{GRAPH_API_VERSION}"
        )
    return replace(
        settings,
        whatsapp_api_base_url=base_url,
        whatsapp_access_token=sandbox_access_token(settings.whatsapp_app_secret),
    )


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS:
        return False
    raise SettingsError(f"{name} must be 1 or 0 (true/false, yes/no, on/off), got {raw!r}")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
