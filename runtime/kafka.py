"""FastStream at the edges: topics from the catalogue, batch subscribers, their contract.

Each consumer is a FastStream batch subscriber of its own router:

* a **decoder** turns each fetched record into a :class:`~runtime.records.Record` (its
  delivery and typed envelope) or an :class:`~runtime.records.Unreadable` with the reason;
* the **handler** hands the batch to ``Consumer.handle_batch`` (one transaction);
* the router's **middleware** (:class:`RetryAndPark`) catches a batch that failed and
  handles it record by record, with bounded retries and dead letters (``handle_each``);
* a **rebalance listener** seeks every assigned partition to the position PostgreSQL holds.

What is kept from before, because it is better than FastStream's defaults: partitions are
handled in order (one batch at a time per subscriber), positions come from PostgreSQL and
Kafka's commits are only a hint (auto-committed in the background: ``ACK_FIRST``). The
AsyncAPI document describes each subscriber's records by the envelope of the events its
topics carry (:func:`envelope_of`), and each process's publishers the same way.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from itertools import chain
from typing import Any, Union

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream import AckPolicy, BaseMiddleware
from faststream.kafka import KafkaBroker, KafkaRouter
from faststream.message import StreamMessage
from pydantic import BaseModel, Field, create_model

from events.catalogue import TOPICS, Topic
from events.envelope import Envelope
from runtime.config import Connections
from runtime.consumer import Consumer, received_now
from runtime.records import Delivery, Received

log = structlog.get_logger(__name__)

BATCH_MAX_RECORDS = 500
# How long an idle poll waits before it looks again. aiokafka's getmany returns as soon as
# records are fetched, so this bounds only the wait of an idle consumer, not a record's.
IDLE_POLL_MS = 5000
# How long the broker may hold a fetch with no new records: it answers as soon as one
# arrives, so this too only spaces out an idle consumer's requests.
FETCH_MAX_WAIT_MS = 1000


async def ensure_topics(settings: Connections, topics: Sequence[Topic] = TOPICS) -> None:
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


def new_broker(settings: Connections, *, client_id: str) -> KafkaBroker:
    """A consumer process's broker: it only consumes (the relay writes to Kafka), so it opens
    no producer; handlers get the decoder's records as they are (no re-validation)."""
    return KafkaBroker(
        settings.kafka_bootstrap,
        client_id=client_id,
        allow_auto_create_topics=False,
        consumer_only=True,
        apply_types=False,
        logger=broker_logger(),
        # FastStream logs every batch received and processed at this level: per-batch lines
        # belong to DEBUG; the runtime logs what matters with context.
        log_level=logging.DEBUG,
        description="switchboard: WhatsApp conversations, flows and agents, event-sourced",
    )


def broker_logger() -> logging.Logger:
    """The logger FastStream's brokers write to. Given explicitly, FastStream does not install
    its own handler (a coloured text line on stdout): the line goes to the root handler, JSON
    like every other (``services.logs``)."""
    return logging.getLogger("faststream.access.kafka")


@functools.cache
def envelope_of(topics: tuple[Topic, ...]) -> type[BaseModel]:
    """The record schema of ``topics``: the envelope, its payload one of the events they carry
    (the AsyncAPI contract; records are decoded by ``events.codec``, which upcasts too)."""
    carried = tuple(dict.fromkeys(chain.from_iterable(topic.carries for topic in topics)))
    payload: Any = Union[carried] if len(carried) > 1 else carried[0]  # noqa: UP007
    name = "".join(part.title() for topic in topics for part in topic.name.split(".")) + "Record"
    return create_model(
        name,
        __base__=Envelope,
        __doc__=f"A record of {', '.join(topic.name for topic in topics)}: the envelope and one"
        " of the events listed as its payload.",
        payload=(payload, Field(description="the event; which one event_type says")),
    )


class RetryAndPark(BaseMiddleware):
    """A batch that failed is handled again record by record: retried, then parked."""

    def __init__(self, msg: Any, /, *, context: Any, consumer: Consumer) -> None:
        super().__init__(msg, context=context)
        self.consumer = consumer

    async def consume_scope(self, call_next: Any, msg: StreamMessage[Any]) -> Any:
        try:
            return await call_next(msg)
        except Exception as error:
            batch: list[Received] = await msg.decode() or []
            log.warning(
                "batch failed; handling it record by record",
                consumer=self.consumer.name,
                records=len(batch),
                error=repr(error),
            )
            await self.consumer.handle_each(batch)
            return None


class SeekToPositions(ConsumerRebalanceListener):  # type: ignore[misc]
    """On assignment, move the consumer to the positions recorded in PostgreSQL."""

    def __init__(self, consumer: Consumer) -> None:
        self.runtime = consumer
        self.kafka_consumer: Any = lambda: None

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        kafka_consumer = self.kafka_consumer()
        if kafka_consumer is not None and assigned:
            await self.runtime.assigned(kafka_consumer, assigned)
        # A replica given no partition (more replicas than partitions) is caught up too.
        self.runtime.progress.joined = True


def subscribe(
    broker: KafkaBroker,
    consumer: Consumer,
    *,
    settings: Connections,
    topics: Sequence[Topic],
    description: str,
    max_records: int | None = None,
) -> None:
    """Feed the records of ``topics`` to ``consumer`` in batches (of at most ``max_records``,
    else the setting), in partition order."""
    decode = _decoder(consumer)
    router = KafkaRouter(middlewares=[functools.partial(RetryAndPark, consumer=consumer)])
    listener = SeekToPositions(consumer)
    max_records = max_records or settings.batch_max_records
    subscriber = router.subscriber(
        *(topic.qualified(settings.topic_prefix) for topic in topics),
        batch=True,
        max_records=max_records,
        max_poll_records=max_records,
        batch_timeout_ms=IDLE_POLL_MS,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        group_id=settings.group_id(consumer.name),
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK_FIRST,
        listener=listener,
        decoder=decode,
        title=consumer.name,
        description=description,
    )
    listener.kafka_consumer = lambda: subscriber.consumer
    consumer.progress.kafka = lambda: subscriber.consumer
    _poll_patiently(subscriber, max_records)

    async def handle(batch: list[Received]) -> None:
        await consumer.handle_batch(batch)

    # FastStream documents a subscriber's records by its handler's first parameter: on the
    # wire each is the envelope of one of its topics' events (the decoder adds where it
    # came from, and parks what it cannot read).
    handle.__annotations__ = {"batch": list[envelope_of(tuple(topics))], "return": None}  # type: ignore[misc]
    subscriber(handle)
    broker.include_router(router)


def _decoder(consumer: Consumer) -> Any:
    async def decode(message: StreamMessage[tuple[Any, ...]]) -> list[Received]:
        received = received_now()
        return [
            consumer.received(
                Delivery(
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    key=record.key,
                    value=record.value,
                    timestamp_ms=record.timestamp,
                    received_at=received,
                )
            )
            for record in message.raw_message
        ]

    return decode


def _poll_patiently(subscriber: Any, max_records: int) -> None:
    """Make the batch subscriber wait for records instead of returning empty-handed.

    FastStream's batch subscriber sleeps ``batch_timeout_ms`` after a poll that found
    nothing, so a record arriving after a quiet spell could wait that long; a short timeout
    instead wakes every idle consumer dozens of times a second. Polling until records come
    costs neither (the consume task is cancelled when the subscriber stops).
    """

    async def get_msg(kafka_consumer: AIOKafkaConsumer) -> tuple[Any, ...]:
        while True:
            fetched = await kafka_consumer.getmany(timeout_ms=IDLE_POLL_MS, max_records=max_records)
            if fetched:
                return tuple(chain.from_iterable(fetched.values()))

    subscriber.get_msg = get_msg
