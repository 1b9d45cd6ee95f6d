"""Tables and topics of the raw pipeline (created by the bench before its processes start)."""

from __future__ import annotations

import psycopg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from psycopg import sql

from bench.raw.config import EVENTS, INBOUND, PARTITIONS, RawConfig

TABLES = (
    # The event store: one row per event, in commit order (one writer, see append.py).
    "CREATE TABLE {s}.events (id bigserial PRIMARY KEY, stream_id text NOT NULL,"
    " body bytea NOT NULL)",
    # Kafka positions, written with the effects they caused.
    "CREATE TABLE {s}.positions (consumer text NOT NULL, topic text NOT NULL,"
    " partition integer NOT NULL, next_offset bigint NOT NULL,"
    " PRIMARY KEY (consumer, topic, partition))",
    "CREATE TABLE {s}.relay_position (id boolean PRIMARY KEY DEFAULT true CHECK (id),"
    " last_id bigint NOT NULL)",
    "INSERT INTO {s}.relay_position VALUES (true, 0)",
    # The read model: one line per customer message.
    "CREATE TABLE {s}.history (wamid text PRIMARY KEY, stream_id text NOT NULL,"
    " contact text NOT NULL, text text, sent_at bigint NOT NULL)",
)


def create_tables(config: RawConfig) -> None:
    with psycopg.connect(config.database_url, autocommit=True) as connection:
        schema = sql.Identifier(config.schema)
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
        for statement in TABLES:
            connection.execute(sql.SQL(statement).format(s=schema))


async def create_topics(config: RawConfig) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=config.kafka)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(config.topic(name), PARTITIONS, 1, topic_configs={"retention.ms": "-1"})
                for name in (INBOUND, EVENTS)
            ]
        )
    finally:
        await admin.close()
