"""``switchboard projections status``: where every consumer and every relay stands.

Per consumer of the registry (the projector and the metrics projection among them) and per
partition it reads: the position its store holds (the next offset to handle), Kafka's end
offset and the lag between them; per relayed store: the last event stored, the last the relay
published and how many wait. Read from the stores and the broker as they are now, so it
answers with every process stopped too (a rebuild's progress: run it again).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from psycopg.rows import dict_row
from psycopg.sql import SQL, Identifier

from runtime.process import Process, Service
from runtime.records import tracking_name
from runtime.store import EVENTS_TABLE, RELAY_TRACKING, TRACKING_TABLE
from services import registry
from services.settings import Settings


@dataclass(frozen=True)
class Reads:
    """One consumer (its group) of a process, the store holding its positions, its topics."""

    process: str
    consumer: str
    store: str
    topics: tuple[tuple[str, int], ...]  # (topic name, partitions)


@dataclass(frozen=True)
class PartitionStatus:
    process: str
    consumer: str
    topic: str
    partition: int
    position: int | None  # None: never read (starts from the beginning)
    end: int

    @property
    def lag(self) -> int:
        return max(0, self.end - (self.position or 0))


@dataclass(frozen=True)
class RelayStatus:
    store: str
    stored: int  # the last notification id in the store
    published: int  # the last the relay recorded as published
    waiting: int  # events stored after it


def consumers(processes: Iterable[Process] = registry.PROCESSES) -> list[Reads]:
    found = []
    for declared in processes:
        if declared.kind != "consumer" or declared.store is None:
            continue
        service = declared.load()
        assert isinstance(service, Service), declared.name
        for subscription in service.subscriptions:
            topics = tuple((topic.name, topic.partitions) for topic in subscription.topics)
            found.append(Reads(declared.name, subscription.consumer, declared.store, topics))
    return found


def partitions(
    reads: Sequence[Reads],
    positions: Mapping[str, Mapping[str, int]],
    ends: Mapping[tuple[str, int], int],
    prefix: str,
) -> list[PartitionStatus]:
    """Every partition each consumer reads, with its store's position (``positions``: store →
    tracking name → next offset) and Kafka's end offset."""
    rows = []
    for consumer in reads:
        held = positions.get(consumer.store, {})
        for topic, count in consumer.topics:
            name = f"{prefix}{topic}"
            for partition in range(count):
                rows.append(
                    PartitionStatus(
                        consumer.process,
                        consumer.consumer,
                        topic,
                        partition,
                        held.get(tracking_name(name, partition)),
                        ends.get((name, partition), 0),
                    )
                )
    return rows


def render(
    rows: Sequence[PartitionStatus], relays: Sequence[RelayStatus], *, each_partition: bool
) -> str:
    """A table per consumer (and per partition when asked), then the relay's per store."""
    lines = [f"{'consumer':<28} {'topic':<26} {'partitions':>10} {'behind':>6} {'lag':>9}"]
    by_consumer: dict[tuple[str, str, str], list[PartitionStatus]] = {}
    for row in rows:
        by_consumer.setdefault((row.process, row.consumer, row.topic), []).append(row)
    for (_, consumer, topic), group in by_consumer.items():
        behind = sum(1 for row in group if row.lag)
        lag = sum(row.lag for row in group)
        lines.append(f"{consumer:<28} {topic:<26} {len(group):>10} {behind:>6} {lag:>9}")
        if each_partition:
            for row in group:
                position = "never read" if row.position is None else str(row.position)
                lines.append(
                    f"  #{row.partition:<3} position {position:>10}  end {row.end:>9}"
                    f"  lag {row.lag:>9}"
                )
    lines.append("")
    lines.append(f"{'relay of store':<28} {'stored':>10} {'published':>10} {'waiting':>9}")
    for relay in relays:
        lines.append(
            f"{relay.store:<28} {relay.stored:>10} {relay.published:>10} {relay.waiting:>9}"
        )
    return "\n".join(lines)


def as_json(rows: Sequence[PartitionStatus], relays: Sequence[RelayStatus]) -> list[Any]:
    return [
        *({"kind": "partition", **asdict(row), "lag": row.lag} for row in rows),
        *({"kind": "relay", **asdict(relay)} for relay in relays),
    ]


async def end_offsets(settings: Settings, reads: Sequence[Reads]) -> dict[tuple[str, int], int]:
    wanted = {
        TopicPartition(f"{settings.topic_prefix}{topic}", partition)
        for consumer in reads
        for topic, count in consumer.topics
        for partition in range(count)
    }
    client = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None)
    await client.start()
    try:
        found = await client.end_offsets(list(wanted))
    finally:
        await client.stop()
    return {(tp.topic, tp.partition): end for tp, end in found.items()}


async def store_positions(settings: Settings, stores: Iterable[str]) -> dict[str, dict[str, int]]:
    """Each store's recorded positions (tracking name → next offset); a store not created yet
    has none."""
    found: dict[str, dict[str, int]] = {}
    async with await psycopg.AsyncConnection.connect(
        settings.database().conninfo(), autocommit=True, row_factory=dict_row
    ) as connection:
        for store in stores:
            statement = SQL(
                "SELECT application_name, max(notification_id) AS position FROM {}.{}"
                " GROUP BY application_name"
            ).format(Identifier(settings.schema(store)), Identifier(TRACKING_TABLE))
            try:
                cursor = await connection.execute(statement)
            except psycopg.errors.UndefinedTable:
                found[store] = {}
                continue
            found[store] = {
                row["application_name"]: row["position"] for row in await cursor.fetchall()
            }
    return found


async def relays(settings: Settings, stores: Iterable[str]) -> list[RelayStatus]:
    found = []
    async with await psycopg.AsyncConnection.connect(
        settings.database().conninfo(), autocommit=True, row_factory=dict_row
    ) as connection:
        for store in stores:
            schema = Identifier(settings.schema(store))
            try:
                cursor = await connection.execute(
                    SQL(
                        "SELECT (SELECT coalesce(max(notification_id), 0) FROM {}.{}) AS stored,"
                        " (SELECT coalesce(max(notification_id), 0) FROM {}.{}"
                        " WHERE application_name = %s) AS published"
                    ).format(schema, Identifier(EVENTS_TABLE), schema, Identifier(TRACKING_TABLE)),
                    (RELAY_TRACKING,),
                )
            except psycopg.errors.UndefinedTable:
                continue
            row = await cursor.fetchone()
            assert row is not None
            waiting_cursor = await connection.execute(
                SQL("SELECT count(*) AS n FROM {}.{} WHERE notification_id > %s").format(
                    schema, Identifier(EVENTS_TABLE)
                ),
                (row["published"],),
            )
            waiting = await waiting_cursor.fetchone()
            assert waiting is not None
            found.append(RelayStatus(store, row["stored"], row["published"], waiting["n"]))
    return found


async def gather(settings: Settings) -> tuple[list[PartitionStatus], list[RelayStatus]]:
    reads = consumers()
    ends = await end_offsets(settings, reads)
    positions = await store_positions(settings, {consumer.store for consumer in reads})
    rows = partitions(reads, positions, ends, settings.topic_prefix)
    return rows, await relays(settings, registry.relayed_stores())
