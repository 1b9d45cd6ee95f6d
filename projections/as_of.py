"""The read models as they were at a moment, folded again from the events (time travel).

**Which time counts.** A record counts at ``T`` when its Kafka timestamp (``CreateTime``: the
producer's clock — the relay's or the gateway's — when it sent the record) is at or before
``T``. That is what had reached the projector's topics by ``T``; the projector applies a
record only after it reached the topic, so it is what the projector had applied at ``T``
whenever it kept up (its lag, milliseconds when healthy, is the only difference: had it lagged
at ``T``, the answer is what it would have shown caught up). When the projector applied each
record is recorded nowhere (its tracking rows hold positions, not times), and an event's own
``occurred_at`` is event time (an assignment decision carries the time of the hand-off it
decided, never when it was made), so the record time is the closest honest measure. Kafka
timestamps have millisecond resolution: a record counts when its millisecond is at or
before ``T``'s.

**How.** Each partition of the projector's topics is cut where its first record later than
``T`` sits (Kafka's ``offsets_for_times``), so every partition contributes a prefix, as the
projector reads it; the prefixes are merged in record-time order (a partition's own order
always kept), filtered to one workspace, and applied with the projector's own code
(:class:`~projections.recorder.ProjectionRecorder`) into a scratch schema, which the callers
read with the API's own reads (:class:`~projections.queries.ReadModels`) and which is
dropped afterwards. The projection code is today's: a read model whose shape or rules changed
since ``T`` is shown as today's code folds those events.

The restricted ``directory.credentials`` topic is not read: no read model at stake here uses
it, and the gateway, which calls this, may not read it.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID, uuid4

import anyio
import anyio.to_thread
import psycopg
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from eventsourcing.persistence import Tracking
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from events.catalogue import (
    ASSIGNMENT_EVENTS_TOPIC,
    CONVERSATION_EVENTS_TOPIC,
    CONVERSATION_NOTES_TOPIC,
    CONVERSATION_READS_TOPIC,
    DIRECTORY_EVENTS_TOPIC,
    EXPIRY_EVENTS_TOPIC,
    FLOW_EVENTS_TOPIC,
    HAND_OFF_REQUESTS_TOPIC,
    OUTBOUND_EVENTS_TOPIC,
    OUTBOUND_MESSAGES_TOPIC,
    Topic,
    build_registry,
)
from events.codec import CodecError, Registry, decode
from events.envelope import Envelope
from projections.queries import ReadModels
from projections.recorder import ProjectionRecorder
from runtime.outages import outage_of
from runtime.postgres import open_datastore
from runtime.records import tracking_name
from runtime.store import AlreadyTracked
from services.settings import Settings

log = structlog.get_logger(__name__)

# The projector's topics (projections/app.py) but the restricted credentials topic.
FOLDED_TOPICS: tuple[Topic, ...] = (
    CONVERSATION_EVENTS_TOPIC,
    CONVERSATION_NOTES_TOPIC,
    CONVERSATION_READS_TOPIC,
    DIRECTORY_EVENTS_TOPIC,
    EXPIRY_EVENTS_TOPIC,
    FLOW_EVENTS_TOPIC,
    HAND_OFF_REQUESTS_TOPIC,
    ASSIGNMENT_EVENTS_TOPIC,
    OUTBOUND_MESSAGES_TOPIC,
    OUTBOUND_EVENTS_TOPIC,
)
SCRATCH = "asof_"
# A scratch schema a crashed process left behind is dropped by the next fold after this.
LEFTOVER_SECONDS = 3600
READ_SECONDS = 30.0


class TopicsUnreadable(Exception):
    """The topics could not be read up to the cut in time (Kafka away or too slow)."""


@dataclass(frozen=True)
class TimedRecord:
    """One decoded record with where it sits and its Kafka timestamp."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    envelope: Envelope

    @property
    def tracking(self) -> Tracking:
        return Tracking(tracking_name(self.topic, self.partition), self.offset + 1)


def moment_ms(moment: datetime) -> int:
    """``moment`` as Kafka counts time (milliseconds since the epoch, floored)."""
    return int((moment.timestamp() * 1000) // 1)


def in_record_time(partitions: Iterable[Sequence[TimedRecord]]) -> Iterator[TimedRecord]:
    """The records of several partitions as one sequence: each partition in its own order,
    always; between partitions, the earliest head first (ties by topic, then partition)."""
    lanes = [list(records) for records in partitions if records]
    heads = [
        (lane[0].timestamp_ms, lane[0].topic, lane[0].partition, index, 0)
        for index, lane in enumerate(lanes)
    ]
    heapq.heapify(heads)
    while heads:
        _, _, _, index, position = heapq.heappop(heads)
        lane = lanes[index]
        yield lane[position]
        if position + 1 < len(lane):
            following = lane[position + 1]
            heapq.heappush(
                heads,
                (following.timestamp_ms, following.topic, following.partition, index, position + 1),
            )


def of_workspace(value: bytes | None, workspace_id: UUID, registry: Registry) -> Envelope | None:
    """The record's envelope when it is an event of ``workspace_id``; None for another
    workspace's, a tombstone or a record that cannot be decoded (the projector parks those,
    so they never changed a read model)."""
    if value is None or str(workspace_id).encode() not in value:
        return None  # cheap: most records of a shared topic are someone else's
    try:
        envelope = decode(value, registry)
    except CodecError:
        return None
    return envelope if envelope.workspace_id == workspace_id else None


async def records_until(
    settings: Settings,
    until_ms: int,
    workspace_id: UUID,
    *,
    topics: Sequence[Topic] = FOLDED_TOPICS,
    registry: Registry | None = None,
    within: float = READ_SECONDS,
) -> list[list[TimedRecord]]:
    """Per partition, the workspace's records up to the first record later than
    ``until_ms`` (a prefix of the partition, in offset order)."""
    registry = registry or build_registry()
    if until_ms < 0:
        return []  # Kafka time starts at the epoch; nothing was written before it
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # Partitions read to their cut stay assigned and at their end: a fetch must not wait
        # the default half second for them while others still have records to give.
        fetch_max_wait_ms=50,
    )
    deadline = time.monotonic() + within
    try:
        await consumer.start()  # inside: a start that fails must still close the client
        existing = await consumer.topics()
        partitions = [
            TopicPartition(topic.qualified(settings.topic_prefix), number)
            for topic in topics
            if topic.qualified(settings.topic_prefix) in existing
            for number in range(topic.partitions)
        ]
        if not partitions:
            return []
        # Assigned first: the offsets requests below would otherwise wait for the client's
        # next metadata refresh (about a second) before they are sent.
        consumer.assign(partitions)
        starts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        later = await consumer.offsets_for_times(dict.fromkeys(partitions, until_ms + 1))
        cut = {tp: later[tp].offset if later[tp] is not None else ends[tp] for tp in partitions}
        remaining = {tp for tp in partitions if cut[tp] > starts[tp]}
        found: dict[TopicPartition, list[TimedRecord]] = {tp: [] for tp in remaining}
        if not remaining:
            return []
        consumer.assign(list(remaining))
        await consumer.seek_to_beginning(*remaining)
        # Every producer is idempotent and none transactional: offsets below the cut all hold
        # records, so each partition ends with the record just before its cut (else the
        # deadline says the topics could not be read).
        while remaining:
            if time.monotonic() > deadline:
                raise TopicsUnreadable(f"the topics could not be read within {within:g}s")
            batch = await consumer.getmany(*remaining, timeout_ms=500)
            for tp, items in batch.items():
                for item in items:
                    if item.offset >= cut[tp]:
                        break
                    envelope = of_workspace(item.value, workspace_id, registry)
                    if envelope is not None:
                        record = TimedRecord(
                            tp.topic, tp.partition, item.offset, item.timestamp, envelope
                        )
                        found[tp].append(record)
                if items and items[-1].offset + 1 >= cut[tp]:
                    remaining.discard(tp)
        return [records for records in found.values() if records]
    except TopicsUnreadable:
        raise
    except Exception as error:
        if outage_of(error) is not None:
            raise TopicsUnreadable(f"Kafka is unavailable: {error!r}") from error
        raise
    finally:
        await consumer.stop()


def scratch_schema(settings: Settings) -> str:
    """A schema of its own for one fold; its name says when it was made (see ``sweep``)."""
    return settings.schema(f"{SCRATCH}{int(time.time())}_{uuid4().hex[:8]}")


def fold(settings: Settings, schema: str, records: Iterable[TimedRecord]) -> int:
    """Apply ``records`` in order to fresh read models in ``schema``, as the projector does
    (blocking). A record the projector would fail on (and park: no effect on a read model)
    is left out the same way; a database outage is raised. Answers how many were applied."""
    datastore = open_datastore(settings, schema, pool_size=1)
    applied = 0
    try:
        with datastore.get_connection() as connection:
            # A scratch schema is dropped within seconds: a commit need not wait for the WAL
            # to reach the disk (it commits one event per transaction). The pool is one
            # connection used by this one thread, so the setting holds for every event.
            connection.execute("SET synchronous_commit = off")
        recorder = ProjectionRecorder(datastore)
        recorder.create_table()
        for record in records:
            try:
                recorder.project(record.envelope, record.tracking)
            except AlreadyTracked:
                continue
            except Exception as error:
                if outage_of(error) is not None:
                    raise
                log.warning(
                    "as_of: a record the projector would park is left out",
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    error=repr(error),
                )
                continue
            applied += 1
    finally:
        datastore.close()
    return applied


def drop(settings: Settings, schema: str) -> None:
    """Drop the scratch schema, and any a crashed process left behind long ago."""
    prefix = settings.schema(SCRATCH)
    with psycopg.connect(
        settings.database().conninfo(), autocommit=True, connect_timeout=10
    ) as connection:
        leftovers = [
            row[0]
            for row in connection.execute(
                "SELECT schema_name FROM information_schema.schemata"
                " WHERE starts_with(schema_name, %s)",
                (prefix,),
            ).fetchall()
            if _made_before(str(row[0]), prefix, time.time() - LEFTOVER_SECONDS)
        ]
        for name in {schema, *leftovers}:
            connection.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name))
            )


def _made_before(schema: str, prefix: str, moment: float) -> bool:
    made, _, _ = schema.removeprefix(prefix).partition("_")
    return made.isdigit() and int(made) < moment


@asynccontextmanager
async def read_models_at(
    settings: Settings, pool: AsyncConnectionPool, workspace_id: UUID, moment: datetime
) -> AsyncIterator[ReadModels]:
    """The workspace's read models as they were at ``moment``, read through ``pool`` with
    the API's own reads; dropped on exit."""
    started = time.monotonic()
    partitions = await records_until(settings, moment_ms(moment), workspace_id)
    read = time.monotonic()
    schema = scratch_schema(settings)
    try:
        applied = await anyio.to_thread.run_sync(
            fold, settings, schema, list(in_record_time(partitions))
        )
        log.info(
            "read models folded as of a moment",
            moment=moment.isoformat(),
            workspace_id=str(workspace_id),
            events=applied,
            reading_seconds=round(read - started, 3),
            folding_seconds=round(time.monotonic() - read, 3),
        )
        yield ReadModels(pool, schema)
    finally:
        with anyio.CancelScope(shield=True):  # a cancelled request still drops its schema
            await anyio.to_thread.run_sync(drop, settings, schema)
