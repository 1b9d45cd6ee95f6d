"""The runtime every consumer shares: positions from Postgres, bounded retries, dead letters.

A consumer service implements :class:`RecordHandler` (synchronous, because the eventsourcing
API is) and this module runs it for each Kafka record:

* the record's position (``topic#partition`` -> offset + 1) is the tracking id written in
  the same transaction as the record's effect, so a redelivered record is recognised and
  skipped, and on every partition assignment the consumer seeks to the position Postgres
  holds (Postgres is the truth; Kafka's committed offsets are only a hint);
* a record that cannot be decoded (a tombstone, with no value at all, included) is
  dead-lettered at once, with the reason;
* a failure of the handler is retried a bounded number of times, then dead-lettered with
  the reason; a failure that says the infrastructure is away (the database, Kafka, a view
  still catching up: ``services.outages``), from the handler or from the step before it,
  is waited out and retried until it passes, and never counts towards parking: a record is
  parked only for what is wrong with the record.

The handler never lets an exception reach FastStream: records of a partition are handled
strictly in order, and a nack there would let later records overtake the failed one.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID, uuid5

import anyio.to_thread
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from eventsourcing.persistence import Tracking

from events.codec import CodecError, Registry, decode
from events.envelope import Actor, Envelope
from events.operations import RecordDeadLettered
from services.outages import database_unavailable, outage_of
from services.store import AlreadyTracked, EventStore, NewEvent, StreamConflict

log = structlog.get_logger(__name__)

HANDLER_ATTEMPTS = 3
INFRA_FIRST_BACKOFF_SECONDS = 0.2
INFRA_BACKOFF_CAP_SECONDS = 5.0


@dataclass(frozen=True)
class Delivery:
    """One Kafka record as the handlers see it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None  # None: a tombstone (Kafka allows a record without a value)
    timestamp_ms: int

    @property
    def tracking(self) -> Tracking:
        return Tracking(tracking_name(self.topic, self.partition), self.offset + 1)

    def dead_letter(self, consumer: str, reason: str) -> RecordDeadLettered:
        return RecordDeadLettered(
            consumer=consumer,
            source_topic=self.topic,
            source_partition=self.partition,
            source_offset=self.offset,
            key=self.key.decode("utf-8", "replace") if self.key is not None else None,
            value_base64=None if self.value is None else base64.b64encode(self.value).decode(),
            reason=reason[:2000],
        )


def tracking_name(topic: str, partition: int) -> str:
    return f"{topic}#{partition}"


DEAD_LETTER_NAMESPACE = UUID("5d0c7a9e-8f61-4b0a-b2e4-7e9c1a3d5f20")


def dead_letter_event(delivery: Delivery, dead_letter: RecordDeadLettered) -> NewEvent:
    """The dead letter as an event of the consumer's own store, in a stream of its own.

    Its id derives from the record's position, so parking the same record twice is one
    event; its time is the record's Kafka timestamp, so a replay parks it identically.
    """
    event_id = uuid5(
        DEAD_LETTER_NAMESPACE,
        f"{dead_letter.consumer}:{delivery.topic}:{delivery.partition}:{delivery.offset}",
    )
    envelope = Envelope.wrap(
        dead_letter,
        event_id=event_id,
        stream_id=dead_letter.key or "",
        workspace_id=None,
        occurred_at=datetime.fromtimestamp(delivery.timestamp_ms / 1000, tz=UTC),
        correlation_id=event_id,
        causation_id=None,
        actor=Actor(kind="system", id=dead_letter.consumer),
    )
    return NewEvent(originator_id=event_id, originator_version=1, envelope=envelope)


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
        for name, tp in names.items():
            position = positions.get(name)
            if position is None:
                await consumer.seek_to_beginning(tp)
                self._next_offset[(tp.topic, tp.partition)] = 0
            else:
                consumer.seek(tp, position)
                self._next_offset[(tp.topic, tp.partition)] = position
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
        if delivery.value is None:
            await self._park(delivery, "tombstone: the record has no value, so no envelope")
            return
        try:
            envelope = decode(delivery.value, self.registry)
        except CodecError as error:
            await self._park(delivery, f"undecodable record: {error}")
            return
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
        while True:
            try:
                if self.before_handle is not None:
                    await self.before_handle(delivery, envelope)
                await anyio.to_thread.run_sync(lambda: self.handler.handle(delivery, envelope))
                break
            except AlreadyTracked:
                log.info("record was handled before; skipped")
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
                    return
                await asyncio.sleep(0.1 * 2**failures)
        self._next_offset[(delivery.topic, delivery.partition)] = delivery.offset + 1

    async def _park(self, delivery: Delivery, reason: str) -> None:
        log.error("record dead-lettered", reason=reason)
        dead_letter = delivery.dead_letter(self.name, reason)
        with contextlib.suppress(AlreadyTracked):
            await self._database(lambda: self.handler.park(delivery, dead_letter))
        self._next_offset[(delivery.topic, delivery.partition)] = delivery.offset + 1

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
