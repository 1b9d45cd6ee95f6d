"""The dead letters' reads and writes: the ``operations.dead_letters`` topic, a parked stored
event's row, and the record a replay puts back (through the shared idempotent producer)."""

from __future__ import annotations

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from psycopg import sql

from events.catalogue import DEAD_LETTERS, build_registry
from events.codec import CodecError, decode
from events.envelope import Envelope
from services.operations.dead_letters import DeadLetter, NotReplayable, collect
from services.producer import HealingProducer, KafkaRecord
from services.settings import Settings
from services.store import EVENTS_TABLE

SEND_SECONDS = 15.0


async def read_dead_letters(settings: Settings) -> tuple[list[DeadLetter], list[str]]:
    """Every dead letter on the topic up to its end now, and the records that are not one."""
    name = DEAD_LETTERS.qualified(settings.topic_prefix)
    registry = build_registry()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        await consumer.start()  # inside: a start that fails must still close the client
        if name not in await consumer.topics():
            return [], []  # nothing was ever parked (the topic is made at a process's start)
        partitions = [TopicPartition(name, number) for number in range(DEAD_LETTERS.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[tuple[int, int, Envelope]] = []
        problems: list[str] = []
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, items in batch.items():
                for item in items:
                    if item.offset >= ends[tp]:
                        continue
                    try:
                        envelope = decode(item.value or b"", registry)
                    except CodecError as error:
                        problems.append(f"{tp.partition}@{item.offset}: {error}")
                        continue
                    records.append((tp.partition, item.offset, envelope))
                if items and items[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        return collect(records), problems
    finally:
        await consumer.stop()


def stored_event(settings: Settings, store: str, notification_id: int) -> tuple[str, bytes]:
    """A stored event's type column and bytes as they are now, from the store that holds it."""
    table = sql.Identifier(settings.schema(store), EVENTS_TABLE)
    with psycopg.connect(settings.database().conninfo(), autocommit=True) as connection:
        found = connection.execute(
            sql.SQL("SELECT topic, state FROM {} WHERE notification_id = %s").format(table),
            (notification_id,),
        ).fetchone()
    if found is None:
        raise NotReplayable(f"store {store} holds no event #{notification_id} any more")
    return str(found[0]), bytes(found[1])


async def publish(settings: Settings, record: KafkaRecord) -> None:
    """Put one record on its topic; raises ``PublishFailed`` when Kafka does not take it."""
    producer = HealingProducer.for_settings(settings, client_id="switchboard-dead-letters")
    await producer.start(within=SEND_SECONDS)
    try:
        await producer.send_all([record], within=SEND_SECONDS)
    finally:
        await producer.stop()
