"""The per-record runtime the services used before ``runtime.consumer``: kept only while the
last of them move onto the batch runtime, one commit each (this module goes with the last).

One record per PostgreSQL transaction, through a thread hop; positions, dead letters and the
waiting out of outages as ``runtime.consumer`` describes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import anyio.to_thread
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from events.codec import CodecError, Registry, decode
from events.envelope import Envelope
from events.operations import RecordDeadLettered
from runtime import metrics
from runtime.config import Connections
from runtime.kafka import broker_logger
from runtime.outages import database_unavailable, outage_of
from runtime.records import Delivery, dead_letter_envelope, tracking_name
from runtime.store import AlreadyTracked, EventStore, NewEvent, StreamConflict

log = structlog.get_logger(__name__)

HANDLER_ATTEMPTS = 3
INFRA_FIRST_BACKOFF_SECONDS = 0.2
INFRA_BACKOFF_CAP_SECONDS = 5.0


def dead_letter_event(delivery: Delivery, dead_letter: RecordDeadLettered) -> NewEvent:
    envelope = dead_letter_envelope(delivery, dead_letter)
    return NewEvent(originator_id=envelope.event_id, originator_version=1, envelope=envelope)


class StoreBackedHandler:
    """A handler whose positions and dead letters live in its own event store.

    A record parked before a rebuild is not parked twice: its dead letter already exists,
    so only the position moves.
    """

    name: str
    store: EventStore

    def positions(self, tracking_names: Iterable[str]) -> dict[str, int | None]:
        return {name: self.store.position(name) for name in tracking_names}

    def park(self, delivery: Delivery, dead_letter: RecordDeadLettered) -> None:
        try:
            self.store.append([dead_letter_event(delivery, dead_letter)], delivery.tracking)
        except StreamConflict:
            self.store.append([], delivery.tracking)


class RecordHandler(Protocol):
    """What a consumer service provides. Every method runs in a worker thread."""

    name: str

    def positions(self, tracking_names: Iterable[str]) -> dict[str, int | None]:
        """The recorded tracking id (next offset) of each partition, None if never read."""
        ...

    def handle(self, delivery: Delivery, envelope: Envelope) -> None:
        """Record the effect of one record together with ``delivery.tracking``.

        Raise :class:`AlreadyTracked` when the position was recorded before.
        """
        ...

    def park(self, delivery: Delivery, dead_letter: RecordDeadLettered) -> None:
        """Record the dead letter together with ``delivery.tracking``."""
        ...


Waiter = Callable[[Delivery, Envelope], Any]


class TrackedRuntime:
    """Runs a :class:`RecordHandler` for the records of one Kafka subscriber."""

    def __init__(
        self,
        name: str,
        registry: Registry,
        *,
        handler_attempts: int = HANDLER_ATTEMPTS,
    ) -> None:
        self.name = name
        self.registry = registry
        self.handler_attempts = handler_attempts
        self._handler: RecordHandler | None = None
        # An async step that must pass before handling (e.g. waiting for a view to catch
        # up); it may raise to be retried like any other failure.
        self.before_handle: Waiter | None = None
        self._next_offset: dict[tuple[str, int], int] = {}
        self.progress = metrics.ConsumerProgress(name, self._next_offset)

    def bind(self, handler: RecordHandler, *, before_handle: Waiter | None = None) -> None:
        """Attach the handler once the process's resources exist (in the app's lifespan).

        Subscribers are declared when the app is built, before anything connects, so the
        AsyncAPI document can be generated without a broker or a database.
        """
        self._handler = handler
        self.before_handle = before_handle

    @property
    def handler(self) -> RecordHandler:
        if self._handler is None:
            raise RuntimeError(f"consumer {self.name} received a record before start-up ended")
        return self._handler

    async def on_assigned(self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> None:
        names = {tracking_name(tp.topic, tp.partition): tp for tp in assigned}
        positions = await self._database(lambda: self.handler.positions(names))
        never_read: list[TopicPartition] = []
        for name, tp in names.items():
            position = positions.get(name)
            if position is None:
                never_read.append(tp)
                self._next_offset[(tp.topic, tp.partition)] = 0
            else:
                consumer.seek(tp, position)
                self._next_offset[(tp.topic, tp.partition)] = position
        if never_read:
            # One call for them all: each call waits for the fetcher to reset the offsets
            # (about a second during a rebalance), so one call per partition made every
            # assignment of fresh partitions take seconds.
            await consumer.seek_to_beginning(*never_read)
        log.info("partitions assigned", consumer=self.name, positions=positions)

    async def process(self, delivery: Delivery) -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            consumer=self.name,
            topic=delivery.topic,
            partition=delivery.partition,
            offset=delivery.offset,
        )
        if delivery.offset < self._next_offset.get((delivery.topic, delivery.partition), 0):
            log.debug("record already handled")
            return
        started = time.monotonic()
        outcome = await self._handled(delivery)
        # One record per transaction: a batch of one, its latency the record's.
        took = time.monotonic() - started
        metrics.RECORDS.labels(self.name, delivery.topic, outcome).inc()
        metrics.BATCH_SECONDS.labels(self.name).observe(took)
        metrics.RECORD_SECONDS.labels(self.name).observe(took)

    async def _handled(self, delivery: Delivery) -> str:
        """Handle or park ``delivery``; what became of it."""
        if delivery.value is None:
            await self._park(delivery, "tombstone: the record has no value, so no envelope")
            return metrics.PARKED
        try:
            envelope = decode(delivery.value, self.registry)
        except CodecError as error:
            await self._park(delivery, f"undecodable record: {error}")
            return metrics.PARKED
        structlog.contextvars.bind_contextvars(
            event_type=envelope.event_type,
            event_id=str(envelope.event_id),
            workspace_id=str(envelope.workspace_id) if envelope.workspace_id else None,
            stream_id=envelope.stream_id,
            correlation_id=str(envelope.correlation_id),
            causation_id=str(envelope.causation_id) if envelope.causation_id else None,
        )
        failures = 0
        outage_delay = INFRA_FIRST_BACKOFF_SECONDS
        outcome = metrics.HANDLED
        while True:
            try:
                if self.before_handle is not None:
                    await self.before_handle(delivery, envelope)
                await anyio.to_thread.run_sync(lambda: self.handler.handle(delivery, envelope))
                break
            except AlreadyTracked:
                log.info("record was handled before; skipped")
                outcome = metrics.SKIPPED_DUPLICATE
                break
            except Exception as error:
                away = outage_of(error)
                if away is not None:
                    # Not the record's fault: wait as long as it lasts, never park for it.
                    log.error(f"{away} unavailable; waiting", error=repr(error), delay=outage_delay)
                    await asyncio.sleep(outage_delay)
                    outage_delay = min(outage_delay * 2, INFRA_BACKOFF_CAP_SECONDS)
                    continue
                failures += 1
                log.warning("handling failed", attempt=failures, error=repr(error), exc_info=True)
                if failures >= self.handler_attempts:
                    await self._park(
                        delivery, f"{type(error).__name__}: {error} (after {failures} attempts)"
                    )
                    return metrics.PARKED
                await asyncio.sleep(0.1 * 2**failures)
        self._next_offset[(delivery.topic, delivery.partition)] = delivery.offset + 1
        return outcome

    async def _park(self, delivery: Delivery, reason: str) -> None:
        log.error("record dead-lettered", reason=reason)
        dead_letter = delivery.dead_letter(self.name, reason)
        with contextlib.suppress(AlreadyTracked):
            await self._database(lambda: self.handler.park(delivery, dead_letter))
        self._next_offset[(delivery.topic, delivery.partition)] = delivery.offset + 1
        metrics.DEAD_LETTERS.labels("record", self.name).inc()

    async def _database(self, work: Callable[[], Any]) -> Any:
        """Run blocking store work in a thread; wait out database outages, never skip."""
        delay = INFRA_FIRST_BACKOFF_SECONDS
        while True:
            try:
                return await anyio.to_thread.run_sync(work)
            except Exception as error:
                if not database_unavailable(error):
                    raise
                log.error("database unavailable; retrying", error=str(error), delay=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, INFRA_BACKOFF_CAP_SECONDS)


class SeekToTrackedPositions(ConsumerRebalanceListener):  # type: ignore[misc]
    """On assignment, move the consumer to the positions recorded in Postgres."""

    def __init__(self, runtime: TrackedRuntime) -> None:
        self.runtime = runtime
        self.consumer: Callable[[], AIOKafkaConsumer | None] = lambda: None

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        consumer = self.consumer()
        if consumer is not None and assigned:
            await self.runtime.on_assigned(consumer, assigned)
        # A replica given no partition (more replicas than partitions) is caught up too.
        self.runtime.progress.joined = True


def legacy_broker(settings: Connections, *, client_id: str) -> KafkaBroker:
    return KafkaBroker(
        settings.kafka_bootstrap,
        client_id=client_id,
        allow_auto_create_topics=False,
        logger=broker_logger(),
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
    runtime.progress.kafka = lambda: subscriber.consumer

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
