"""Configuration, read once from the environment by each process's composition root."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

DEFAULT_KAFKA = "127.0.0.1:19092"
DEFAULT_DATABASE = "postgresql://switchboard:switchboard@127.0.0.1:55432/switchboard"


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
    whatsapp_api_base_url: str = "https://graph.facebook.com/v21.0"
    whatsapp_access_token: str = ""
    publish_timeout_seconds: float = 5.0
    relay_poll_seconds: float = 0.05
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
            whatsapp_api_base_url=env.get(
                "WHATSAPP_API_BASE_URL", "https://graph.facebook.com/v21.0"
            ),
            whatsapp_access_token=env.get("WHATSAPP_ACCESS_TOKEN", ""),
            publish_timeout_seconds=_float(env, "SWITCHBOARD_PUBLISH_TIMEOUT", 5.0),
            relay_poll_seconds=_float(env, "SWITCHBOARD_RELAY_POLL_SECONDS", 0.05),
            dispatch_max_attempts=_int(env, "SWITCHBOARD_DISPATCH_MAX_ATTEMPTS", 5),
            dispatch_backoff_seconds=_float(env, "SWITCHBOARD_DISPATCH_BACKOFF_SECONDS", 0.5),
            dispatch_timeout_seconds=_float(env, "SWITCHBOARD_DISPATCH_TIMEOUT_SECONDS", 10.0),
            expiry_max_age_seconds=_float(env, "SWITCHBOARD_EXPIRY_MAX_AGE_SECONDS", 86400.0),
            session_secret=env.get("SWITCHBOARD_SESSION_SECRET", ""),
            session_hours=_float(env, "SWITCHBOARD_SESSION_HOURS", 12.0),
            log_level=env.get("SWITCHBOARD_LOG_LEVEL", "INFO").upper(),
            log_format=env.get("SWITCHBOARD_LOG_FORMAT", "auto"),
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
        if settings.expiry_max_age_seconds <= 0:
            raise SettingsError(
                "SWITCHBOARD_EXPIRY_MAX_AGE_SECONDS must be more than 0,"
                f" got {settings.expiry_max_age_seconds}"
            )
        if settings.session_hours <= 0:
            raise SettingsError(
                f"SWITCHBOARD_SESSION_HOURS must be more than 0, got {settings.session_hours}"
            )
        return settings

    def database(self) -> DatabaseUrl:
        return DatabaseUrl.parse(self.database_url)

    def schema(self, name: str) -> str:
        """The Postgres schema a service owns (``inbound``, ``directory``, ``projections``)."""
        return f"{self.schema_prefix}{name}"

    def group_id(self, consumer: str) -> str:
        prefix = self.topic_prefix if self.group_prefix is None else self.group_prefix
        return f"{prefix}switchboard.{consumer}"


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
