"""Kafka plumbing: topic creation from the catalogue, subscribers (producing: ``producer``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from events.catalogue import TOPICS, Topic
from services.consumer import Delivery, SeekToTrackedPositions, TrackedRuntime
from services.settings import Settings

log = structlog.get_logger(__name__)


async def ensure_topics(settings: Settings, topics: Sequence[Topic] = TOPICS) -> None:
    """Create the catalogue's topics that do not exist yet (idempotent, replica-safe)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            topic for topic in topics if topic.qualified(settings.topic_prefix) not in existing
        ]
        if not missing:
            return
        new_topics = [
            NewTopic(
                name=topic.qualified(settings.topic_prefix),
                num_partitions=topic.partitions,
                replication_factor=1,
                topic_configs={"retention.ms": str(topic.retention_ms), "retention.bytes": "-1"},
            )
            for topic in missing
        ]
        try:
            response = await admin.create_topics(new_topics)
        except TopicAlreadyExistsError:
            return
        for name, code, message in _topic_errors(response):
            if code not in (0, TopicAlreadyExistsError.errno):
                raise RuntimeError(f"cannot create topic {name}: error {code} {message}")
        log.info("topics created", topics=[topic.name for topic in new_topics])
    finally:
        await admin.close()


def _topic_errors(response: object) -> list[tuple[str, int, str | None]]:
    errors = getattr(response, "topic_errors", [])
    result: list[tuple[str, int, str | None]] = []
    for item in errors:
        name, code = item[0], item[1]
        message = item[2] if len(item) > 2 else None
        result.append((name, code, message))
    return result


def new_broker(settings: Settings, *, client_id: str) -> KafkaBroker:
    return KafkaBroker(
        settings.kafka_bootstrap,
        client_id=client_id,
        allow_auto_create_topics=False,
        # FastStream logs every record received and processed at this level: per-record
        # lines belong to DEBUG; our own handlers log what matters with context.
        log_level=logging.DEBUG,
        description="switchboard: WhatsApp conversations, flows and agents, event-sourced",
    )


def subscribe_tracked(
    broker: KafkaBroker,
    runtime: TrackedRuntime,
    *,
    topics: Sequence[str],
    group_id: str,
    title: str,
    description: str,
) -> None:
    """Feed every record of ``topics`` to ``runtime``, in partition order."""
    listener = SeekToTrackedPositions(runtime)
    subscriber = broker.subscriber(
        *topics,
        group_id=group_id,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK,
        listener=listener,
        max_poll_records=200,
        title=title,
        description=description,
    )
    listener.consumer = lambda: subscriber.consumer

    @subscriber
    async def on_record(message: KafkaMessage) -> None:
        record = message.raw_message
        assert not isinstance(record, tuple)  # one record per call, never a batch here
        await runtime.process(
            Delivery(
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                key=record.key,
                value=record.value,
                timestamp_ms=record.timestamp,
            )
        )
