"""The raw consumer loop: a batch per poll, its effects and positions in one transaction.

Positions live in PostgreSQL beside the effects; on every assignment the consumer seeks to
them (Kafka's committed offsets are not used), so a redelivered batch changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from psycopg import sql

from bench.raw.config import BATCH, RawConfig

Write = Callable[[psycopg.AsyncCursor[Any], Sequence[Any]], Awaitable[None]]


class SeekToPositions(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, config: RawConfig, name: str) -> None:
        self.config = config
        self.name = name
        self.consumer: AIOKafkaConsumer | None = None

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        assert self.consumer is not None
        async with await psycopg.AsyncConnection.connect(self.config.database_url) as connection:
            cursor = await connection.execute(
                sql.SQL("SELECT topic, partition, next_offset FROM {} WHERE consumer = %s").format(
                    self.config.table("positions")
                ),
                (self.name,),
            )
            known = {TopicPartition(t, p): o for t, p, o in await cursor.fetchall()}
        for tp in assigned:
            if tp in known:
                self.consumer.seek(tp, known[tp])
            else:
                await self.consumer.seek_to_beginning(tp)


async def run_consumer(
    config: RawConfig, name: str, topic: str, write: Write, *, notify: str | None = None
) -> None:
    """Consume ``topic`` forever: ``write`` each batch and its positions in one transaction,
    then (in the same transaction, so at commit) notify ``notify`` if given."""
    listener = SeekToPositions(config, name)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=config.kafka,
        group_id=f"{config.prefix}raw.{name}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=BATCH,
    )
    listener.consumer = consumer
    consumer.subscribe([topic], listener=listener)
    upsert = sql.SQL(
        "INSERT INTO {} (consumer, topic, partition, next_offset) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (consumer, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset"
    ).format(config.table("positions"))
    await consumer.start()
    try:
        async with await psycopg.AsyncConnection.connect(config.database_url) as connection:
            while True:
                batch = await consumer.getmany(timeout_ms=1000, max_records=BATCH)
                records = [record for records in batch.values() for record in records]
                if not records:
                    continue
                async with connection.transaction(), connection.cursor() as cursor:
                    await write(cursor, records)
                    await cursor.executemany(
                        upsert,
                        [
                            (name, tp.topic, tp.partition, items[-1].offset + 1)
                            for tp, items in batch.items()
                            if items
                        ],
                    )
                    if notify is not None:
                        await cursor.execute("SELECT pg_notify(%s, '')", (notify,))
    finally:
        await consumer.stop()
