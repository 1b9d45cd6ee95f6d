"""How every consumer handles its records: a batch per poll, one transaction per batch.

A :class:`Consumer` runs one subscription's handler (``handler(work, record)``, synchronous
because the eventsourcing API is; it runs in a worker thread) over the batches its Kafka
subscriber fetches:

* **A batch, one transaction.** Every record of the batch is handled in order in one unit
  of work (``runtime.work``): their events, their view rows, every partition's position and
  the handled event ids commit together. Later records see what earlier ones staged. No
  transaction is held across Kafka I/O: what must wait for Kafka (a view catching up) waits
  before the unit of work opens, or rolls it back and waits outside it.
* **Exactly once.** Positions are read under a lock per partition inside the transaction, so
  a record whose position is recorded is skipped; a record whose *event id* this consumer
  handled before (the relay published it again, at a new offset) is skipped too. On every
  partition assignment the consumer seeks to the positions PostgreSQL holds.
* **Failures.** When a batch fails (a stream conflict, a bug, a bad record) its transaction
  rolls back and the batch is handled again record by record, each in its own transaction
  (``handle_each``, the retry-and-park step ``runtime.kafka`` installs as FastStream
  middleware): a conflict is decided again on fresh state (up to ``CONFLICT_ATTEMPTS``), any
  other failure is retried ``HANDLER_ATTEMPTS`` times, then the record is parked as a dead
  letter with the reason and the consumer moves on. A record that cannot be decoded (a
  tombstone included) is parked at once.
* **Outages are waited out, never parked.** A failure that says the database, Kafka or a
  view is away (``runtime.outages``) is retried after a back-off (doubling up to 5 s) for as
  long as it lasts, and never counts towards parking.

Records of a partition are always handled in order: nothing here lets a later record
overtake an earlier one, and nothing reaches FastStream as an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol
from uuid import UUID

import anyio.to_thread
import psycopg
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from events.codec import CodecError, Registry, decode
from runtime import metrics
from runtime.decider import StreamCache
from runtime.outages import outage_of
from runtime.records import (
    Delivery,
    Received,
    Record,
    Unreadable,
    dead_letter_envelope,
    tracking_name,
)
from runtime.store import AlreadyTracked, NewEvent, StreamConflict
from runtime.views import ViewUnsure
from runtime.work import Work

log = structlog.get_logger(__name__)

HANDLER_ATTEMPTS = 3
CONFLICT_ATTEMPTS = 20
OUTAGE_FIRST_BACKOFF_SECONDS = 0.2
OUTAGE_BACKOFF_CAP_SECONDS = 5.0
# A deadlock or a serialization failure between two transactions is a race, not an outage:
# the loser decides again, like after a version conflict.
RACES: tuple[type[BaseException], ...] = (StreamConflict, psycopg.errors.TransactionRollback)


class UnitOfWork(Work, Protocol):
    """What the runtime adds to a handler's unit of work (both stores provide it)."""

    @property
    def touched(self) -> set[UUID]: ...
    def positions(self, names: Iterable[str]) -> dict[str, int | None]: ...
    def handled_among(self, consumer: str, event_ids: Iterable[UUID]) -> set[UUID]: ...
    def advance(self, tracking: Any) -> None: ...
    def mark_handled(self, consumer: str, event_id: UUID) -> None: ...
    def commit(self) -> list[Callable[[], None]]: ...


class Store(Protocol):
    """A store a consumer commits to: ``runtime.store.EventStore`` or ``runtime.memory``'s."""

    @property
    def cache(self) -> StreamCache: ...
    def work(self) -> AbstractContextManager[Any]: ...
    def position(self, tracking_name: str) -> int | None: ...
    def positions(self, tracking_names: Iterable[str]) -> dict[str, int | None]: ...


Handler = Callable[[Any, Record], None]
"""``handler(work, record)``: stage what ``record`` causes in ``work`` (a unit of work of the
consumer's store). Raise to fail the record; never commit."""

Prepare = Callable[[Sequence[Record]], Awaitable[None]]
"""Async work that must pass before a batch's transaction opens (e.g. a view catching up)."""

OnAssigned = Callable[[list[str]], Awaitable[None]]
"""Called with the tracking names of newly assigned partitions, after the seek."""


class Consumer:
    """One subscription's runtime: its name (the consumer group and handled-ids key), its
    store and handler (bound once the process's resources exist), and what it knows of
    the partitions it holds."""

    def __init__(
        self,
        name: str,
        registry: Registry,
        *,
        handler_attempts: int = HANDLER_ATTEMPTS,
        conflict_attempts: int = CONFLICT_ATTEMPTS,
    ) -> None:
        self.name = name
        self.registry = registry
        self.handler_attempts = handler_attempts
        self.conflict_attempts = conflict_attempts
        self._store: Store | None = None
        self._handler: Handler | None = None
        self.prepare: Prepare | None = None
        self.on_assigned: OnAssigned | None = None
        # The next offset of each partition this process holds, as far as it knows: records
        # before it were handled (by this process or before it got the partition).
        self._next_offset: dict[tuple[str, int], int] = {}
        self.progress = metrics.ConsumerProgress(name, self._next_offset)

    def bind(
        self,
        store: Store,
        handler: Handler,
        *,
        prepare: Prepare | None = None,
        on_assigned: OnAssigned | None = None,
    ) -> None:
        """Attach the store and handler once the process's resources exist (in the app's
        lifespan): subscribers are declared before anything connects, so the AsyncAPI
        document can be generated without a broker or a database."""
        self._store = store
        self._handler = handler
        self.prepare = prepare
        self.on_assigned = on_assigned

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError(f"consumer {self.name} received records before start-up ended")
        return self._store

    @property
    def handler(self) -> Handler:
        if self._handler is None:
            raise RuntimeError(f"consumer {self.name} received records before start-up ended")
        return self._handler

    # -- decoding ---------------------------------------------------------------------------

    def received(self, delivery: Delivery) -> Received:
        """The record decoded, or why it cannot be."""
        if delivery.value is None:
            return Unreadable(delivery, "tombstone: the record has no value, so no envelope")
        try:
            return Record(delivery, decode(delivery.value, self.registry))
        except CodecError as error:
            return Unreadable(delivery, f"undecodable record: {error}")

    # -- partitions ---------------------------------------------------------------------------

    async def assigned(self, consumer: AIOKafkaConsumer, partitions: set[TopicPartition]) -> None:
        """Seek each newly assigned partition to the position PostgreSQL holds."""
        names = {tracking_name(tp.topic, tp.partition): tp for tp in partitions}
        store = self.store
        positions = await self._waiting_out_outages(lambda: store.positions(names))
        unread: list[TopicPartition] = []
        for name, tp in names.items():
            position = positions.get(name)
            if position is None:
                unread.append(tp)
                self._next_offset[(tp.topic, tp.partition)] = 0
            else:
                consumer.seek(tp, position)
                self._next_offset[(tp.topic, tp.partition)] = position
        if unread:
            # One offset reset for all of them: awaited one partition at a time, each waits
            # for the fetcher's next round trip (tens of seconds for the projector's dozens
            # of partitions on a busy machine).
            await consumer.seek_to_beginning(*unread)
        log.info("partitions assigned", consumer=self.name, positions=positions)
        self.progress.joined = True
        if self.on_assigned is not None:
            on_assigned = self.on_assigned
            await self._waiting_out_outages_async(lambda: on_assigned(sorted(names)))

    # -- a batch ------------------------------------------------------------------------------

    async def handle_batch(self, batch: Sequence[Received]) -> None:
        """Handle ``batch`` in one transaction, waiting out outages; raise if it failed for
        another reason (nothing of it is then written: handle it with ``handle_each``)."""
        pending = self._not_yet_handled(batch)
        if not pending:
            return
        started = time.monotonic()
        records = [item for item in pending if isinstance(item, Record)]
        if self.prepare is not None and records:
            prepare = self.prepare
            await self._waiting_out_outages_async(lambda: prepare(records))
        callbacks, outcomes = await self._waiting_out_outages(lambda: self._commit(pending))
        self._moved_past(pending)
        self._count(pending, outcomes)
        metrics.BATCH_SECONDS.labels(self.name).observe(time.monotonic() - started)
        await self._run_after_commit(callbacks)

    async def handle_each(self, batch: Sequence[Received]) -> None:
        """Handle ``batch`` record by record, each in its own transaction: conflicts decided
        again, failures retried, then parked. Never raises (but for cancellation)."""
        for item in self._not_yet_handled(batch):
            await self._handle_one(item)

    async def _handle_one(self, item: Received) -> None:
        failures = conflicts = 0
        outage_delay = OUTAGE_FIRST_BACKOFF_SECONDS
        callbacks: list[Callable[[], None]] = []
        outcomes: list[str] = []
        started = time.monotonic()
        while True:
            try:
                if self.prepare is not None and isinstance(item, Record):
                    await self.prepare([item])
                callbacks, outcomes = await anyio.to_thread.run_sync(lambda: self._commit([item]))
                break
            except ViewUnsure as unsure:
                with _record_context(self.name, item):
                    log.info("view not caught up; waiting for it", what=unsure.what)
                try:
                    await unsure.view.catch_up(what=unsure.what)
                except Exception as behind:  # ViewBehind: still not caught up; wait longer
                    outage_delay = await self._wait_out(behind, outage_delay, item)
                continue
            except AlreadyTracked:
                outcomes = [metrics.SKIPPED_DUPLICATE]
                break  # handled meanwhile (another replica, after a rebalance)
            except Exception as failure:
                if isinstance(failure, RACES):
                    if conflicts < self.conflict_attempts:
                        conflicts += 1
                        with _record_context(self.name, item):
                            log.info("conflict; deciding again", race=repr(failure), n=conflicts)
                        await asyncio.sleep(random.uniform(0, 0.01 * min(conflicts, 10)))
                        continue
                elif outage_of(failure) is not None:
                    outage_delay = await self._wait_out(failure, outage_delay, item)
                    continue
                failed = failure
            failures += 1
            with _record_context(self.name, item):
                log.warning("handling failed", attempt=failures, exc_info=failed)
            if failures >= self.handler_attempts:
                reason = f"{type(failed).__name__}: {failed} (after {failures} attempts)"
                await self._park(item.delivery, reason)
                return
            conflicts = 0
            await asyncio.sleep(0.1 * 2**failures)
        self._moved_past([item])
        self._count([item], outcomes)
        metrics.BATCH_SECONDS.labels(self.name).observe(time.monotonic() - started)
        await self._run_after_commit(callbacks)

    # -- the unit of work (in a worker thread) ------------------------------------------------

    def commit_batch(self, batch: Sequence[Received]) -> list[Callable[[], None]]:
        """Handle ``batch`` in one unit of work and commit it; the after-commit callbacks.

        Synchronous (a worker thread runs it); tests call it directly on a memory store.
        """
        callbacks, _ = self._commit(batch)
        return callbacks

    def _commit(self, batch: Sequence[Received]) -> tuple[list[Callable[[], None]], list[str]]:
        """``commit_batch``, and what became of each record (counted once committed)."""
        with self.store.work() as work:
            try:
                return self._handle_in(work, batch)
            except RACES:
                # Some state this unit of work read is out of date: read it afresh next time.
                self.store.cache.drop(work.touched)
                raise

    def _handle_in(
        self, work: UnitOfWork, batch: Sequence[Received]
    ) -> tuple[list[Callable[[], None]], list[str]]:
        positions = work.positions({item.delivery.tracking_name for item in batch})
        handled = work.handled_among(
            self.name, (item.envelope.event_id for item in batch if isinstance(item, Record))
        )
        outcomes: list[str] = []
        for item in batch:
            delivery = item.delivery
            position = positions.get(delivery.tracking_name)
            if position is not None and delivery.offset < position:
                outcomes.append(metrics.SKIPPED_DUPLICATE)
                continue  # its effect was committed before (a redelivery)
            if isinstance(item, Unreadable):
                with _record_context(self.name, item):
                    log.error("record dead-lettered", reason=item.reason)
                self._stage_dead_letter(work, delivery, item.reason)
                outcomes.append(metrics.PARKED)
            elif item.envelope.event_id in handled:
                with _record_context(self.name, item):
                    log.info("record handled before (published again); skipped")
                outcomes.append(metrics.SKIPPED_DUPLICATE)
            else:
                handled.add(item.envelope.event_id)
                with _record_context(self.name, item):
                    self.handler(work, item)
                work.mark_handled(self.name, item.envelope.event_id)
                outcomes.append(metrics.HANDLED)
            work.advance(delivery.tracking)
        return work.commit(), outcomes

    def _stage_dead_letter(self, work: UnitOfWork, delivery: Delivery, reason: str) -> None:
        envelope = dead_letter_envelope(delivery, delivery.dead_letter(self.name, reason))
        # Parked before (a rebuild replays what was parked): only the position moves.
        if work.version(envelope.event_id) == 0:
            work.append([NewEvent(envelope.event_id, 1, envelope)])

    async def _park(self, delivery: Delivery, reason: str) -> None:
        log.error(
            "record dead-lettered",
            consumer=self.name,
            topic=delivery.topic,
            partition=delivery.partition,
            offset=delivery.offset,
            reason=reason,
        )

        def park() -> list[Callable[[], None]]:
            with self.store.work() as work:
                position = work.positions([delivery.tracking_name]).get(delivery.tracking_name)
                if position is None or delivery.offset >= position:
                    self._stage_dead_letter(work, delivery, reason)
                    work.advance(delivery.tracking)
                return list(work.commit())

        with contextlib.suppress(AlreadyTracked):
            await self._waiting_out_outages(park)
        parked = Unreadable(delivery, reason)
        self._moved_past([parked])
        self._count([parked], [metrics.PARKED])

    # -- bookkeeping --------------------------------------------------------------------------

    def _not_yet_handled(self, batch: Sequence[Received]) -> list[Received]:
        return [
            item
            for item in batch
            if item.delivery.offset
            >= self._next_offset.get((item.delivery.topic, item.delivery.partition), 0)
        ]

    def _moved_past(self, batch: Iterable[Received]) -> None:
        for item in batch:
            key = (item.delivery.topic, item.delivery.partition)
            self._next_offset[key] = max(self._next_offset.get(key, 0), item.delivery.position)

    def _count(self, batch: Sequence[Received], outcomes: Sequence[str]) -> None:
        """Count what became of each committed record, and how long it took since its poll."""
        now = time.monotonic()
        for item, outcome in zip(batch, outcomes, strict=False):
            delivery = item.delivery
            metrics.RECORDS.labels(self.name, delivery.topic, outcome).inc()
            if outcome == metrics.PARKED:
                metrics.DEAD_LETTERS.labels("record", self.name).inc()
            if delivery.received_at > 0:  # 0: a delivery not fetched by a poll (tests)
                metrics.RECORD_SECONDS.labels(self.name).observe(now - delivery.received_at)

    async def _run_after_commit(self, callbacks: list[Callable[[], None]]) -> None:
        """What handlers asked to do once their effects are durable (a call to Meta, waking
        a timer). The records are handled whatever happens here: a failure is logged."""
        for callback in callbacks:
            try:
                await anyio.to_thread.run_sync(callback)
            except Exception:
                log.exception("after-commit work failed", consumer=self.name)

    async def _waiting_out_outages(self, work: Callable[[], Any]) -> Any:
        """Run blocking store work in a thread; wait out outages, never skip."""
        delay = OUTAGE_FIRST_BACKOFF_SECONDS
        while True:
            try:
                return await anyio.to_thread.run_sync(work)
            except Exception as error:
                if outage_of(error) is None:
                    raise
                delay = await self._wait_out(error, delay, None)

    async def _waiting_out_outages_async(self, work: Callable[[], Awaitable[Any]]) -> Any:
        delay = OUTAGE_FIRST_BACKOFF_SECONDS
        while True:
            try:
                return await work()
            except Exception as error:
                if outage_of(error) is None:
                    raise
                delay = await self._wait_out(error, delay, None)

    async def _wait_out(self, error: BaseException, delay: float, item: Received | None) -> float:
        """Not the record's fault: wait, and say how long to wait next time."""
        away = outage_of(error) or "something"
        log.error(
            f"{away} unavailable; waiting",
            consumer=self.name,
            offset=item.delivery.offset if item is not None else None,
            error=repr(error),
            delay=delay,
        )
        await asyncio.sleep(delay)
        return min(delay * 2, OUTAGE_BACKOFF_CAP_SECONDS)


@contextlib.contextmanager
def _record_context(consumer: str, item: Received) -> Any:
    """Bind a record's identity to every log line about it (structlog context variables)."""
    delivery = item.delivery
    fields: dict[str, Any] = {
        "consumer": consumer,
        "topic": delivery.topic,
        "partition": delivery.partition,
        "offset": delivery.offset,
    }
    if isinstance(item, Record):
        envelope = item.envelope
        fields.update(
            event_type=envelope.event_type,
            event_id=str(envelope.event_id),
            workspace_id=str(envelope.workspace_id) if envelope.workspace_id else None,
            stream_id=envelope.stream_id,
            correlation_id=str(envelope.correlation_id),
            causation_id=str(envelope.causation_id) if envelope.causation_id else None,
        )
    with structlog.contextvars.bound_contextvars(**fields):
        yield


def received_now() -> float:
    return time.monotonic()
