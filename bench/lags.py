"""Where the backlog is: records each consumer group has not handled yet, events each store
has not relayed yet. Under a load above capacity the queue builds in front of the slowest
stage, so the biggest backlog names the stage to profile.

Consumer lag is read from Kafka's committed offsets (switchboard's consumers commit them
after handling, as a hint): end offset minus committed offset, per group. Relay lag is
read from each store's tables: the last notification id minus the relay's tracking
position (the eventsourcing library's ``events`` and ``tracking`` tables). A runtime that
stops committing to Kafka, or renames those tables, makes the corresponding figure vanish
from the snapshot (it is skipped, not guessed).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from psycopg import sql

RELAY_TRACKING = "__relay__"


@dataclass(frozen=True)
class Backlog:
    stage: str  # a consumer group (without the prefix) or "relay:<store>"
    process: str  # the ``switchboard run`` name that does the stage's work
    waiting: int


def process_of_group(group: str) -> str:
    """``switchboard.assignment-router`` -> ``assignment``; ``switchboard.flows.directory-view``
    -> ``flows`` (the process is the first word of the consumer's name)."""
    name = group.removeprefix("switchboard.")
    for separator in (".", "-"):
        name = name.split(separator)[0]
    return name


async def consumer_backlogs(kafka: str, prefix: str) -> list[Backlog]:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka, request_timeout_ms=10_000)
    await admin.start()
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=None)
    await consumer.start()
    try:
        groups = [
            str(group[0])
            for group in await admin.list_consumer_groups()
            if str(group[0]).startswith(prefix)
        ]
        backlogs: list[Backlog] = []
        for group in groups:
            committed = await admin.list_consumer_group_offsets(group)
            partitions = [TopicPartition(tp.topic, tp.partition) for tp in committed]
            if not partitions:
                continue
            ends = await consumer.end_offsets(partitions)
            waiting = sum(
                max(ends[tp] - max(meta.offset, 0), 0)
                for tp, meta in committed.items()
                if tp in ends
            )
            name = group.removeprefix(prefix)
            backlogs.append(Backlog(name, process_of_group(name), waiting))
        return backlogs
    finally:
        await consumer.stop()
        await admin.close()


def relay_backlogs(database_url: str, schema_prefix: str) -> list[Backlog]:
    backlogs: list[Backlog] = []
    with psycopg.connect(database_url, autocommit=True) as connection:
        schemas = [
            str(row[0])
            for row in connection.execute(
                "SELECT table_schema FROM information_schema.tables WHERE table_name = 'events'"
            ).fetchall()
            if str(row[0]).startswith(schema_prefix)
        ]
        for schema in schemas:
            with contextlib.suppress(psycopg.Error):
                row = connection.execute(
                    sql.SQL(
                        "SELECT (SELECT coalesce(max(notification_id), 0) FROM {}.events)"
                        " - coalesce((SELECT notification_id FROM {}.tracking"
                        " WHERE application_name = %s), 0)"
                    ).format(sql.Identifier(schema), sql.Identifier(schema)),
                    (RELAY_TRACKING,),
                ).fetchone()
                if row is not None:
                    store = schema.removeprefix(schema_prefix)
                    backlogs.append(Backlog(f"relay:{store}", "relay", int(row[0])))
    return backlogs


def slowest(backlogs: list[Backlog]) -> Backlog | None:
    """The stage with the most work waiting (None when nothing waits anywhere)."""
    waiting = [b for b in backlogs if b.waiting > 0]
    return max(waiting, key=lambda b: b.waiting) if waiting else None
