"""Reading a topic from its beginning to its end as it is now (no consumer group, no commit):
what the operator's commands need, since every topic keeps its history."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from events.catalogue import Topic
from services.settings import Settings


@dataclass(frozen=True)
class TopicRecord:
    partition: int
    offset: int
    value: bytes | None


async def read_topic(settings: Settings, topic: Topic) -> list[TopicRecord]:
    """Every record of every partition up to the end offsets read at the start; none when
    the topic does not exist (nothing was ever written to it)."""
    name = topic.qualified(settings.topic_prefix)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        await consumer.start()  # inside: a start that fails must still close the client
        if name not in await consumer.topics():
            return []
        partitions = [TopicPartition(name, number) for number in range(topic.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[TopicRecord] = []
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, items in batch.items():
                records.extend(
                    TopicRecord(tp.partition, item.offset, item.value)
                    for item in items
                    if item.offset < ends[tp]
                )
                if items and items[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        return records
    finally:
        await consumer.stop()
