"""The raw pipeline's configuration, from the environment its processes are started with."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from psycopg import sql

INBOUND = "raw.inbound"
EVENTS = "raw.events"
PARTITIONS = 6  # as switchboard's whatsapp.inbound and conversation.events
BATCH = 500


@dataclass(frozen=True)
class RawConfig:
    kafka: str
    database_url: str
    prefix: str  # topics and consumer groups
    schema: str
    port: int
    secret: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RawConfig:
        env = os.environ if env is None else env
        return cls(
            kafka=env["SWITCHBOARD_KAFKA_BOOTSTRAP"],
            database_url=env["SWITCHBOARD_DATABASE_URL"],
            prefix=env["BENCH_RAW_PREFIX"],
            schema=env["BENCH_RAW_SCHEMA"],
            port=int(env["BENCH_RAW_PORT"]),
            secret=env["BENCH_RAW_SECRET"],
        )

    def env(self) -> dict[str, str]:
        return {
            "SWITCHBOARD_KAFKA_BOOTSTRAP": self.kafka,
            "SWITCHBOARD_DATABASE_URL": self.database_url,
            "BENCH_RAW_PREFIX": self.prefix,
            "BENCH_RAW_SCHEMA": self.schema,
            "BENCH_RAW_PORT": str(self.port),
            "BENCH_RAW_SECRET": self.secret,
        }

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    @property
    def channel(self) -> str:
        """Where the append step tells the relay that new events committed."""
        return f"{self.schema}_events"

    def table(self, name: str) -> sql.Identifier:
        return sql.Identifier(self.schema, name)
