"""Micro-benchmarks, each beside a raw baseline doing the same work on the same bytes.

1. The relay (``switchboard run relay``, unchanged) publishing rows committed to a store,
   vs a raw aiokafka producer with the same settings sending the same records.
2. The event store's append with its position (``runtime.store.EventStore``, one event
   per transaction as a consumer does today, and 500 per transaction), vs psycopg on an
   identical table: one ``INSERT`` per transaction, ``COPY`` and pipelined ``INSERT`` s of
   500 per transaction.
3. A FastStream hop (consume, publish, one record at a time and in batches) vs a raw
   aiokafka hop (``getmany`` and a batch of sends), the same records between two topics.
4. (with the ongoing sweep, see ``bench.rebuild``) a projection rebuild vs reading and
   decoding the same events with no projection work.

Figures are events per second; each is the median of ``--runs`` repetitions, with the range.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from eventsourcing.persistence import Tracking
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from psycopg import sql

from bench.stats import Spread
from bench.systems import Infrastructure, drop_prefixed, spawn, stop_process
from events.codec import encode
from events.conversation import CustomerMessageReceived
from events.envelope import Actor, Envelope

BATCH = 500
PARTITIONS = 6
RELAY_START_TIMEOUT_SECONDS = 60.0
HOP_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True)
class Figure:
    label: str
    per_second: Spread


@dataclass(frozen=True)
class Comparison:
    name: str
    subject: list[Figure]  # switchboard's
    baseline: list[Figure]
    note: str


@dataclass(frozen=True)
class Row:
    originator_id: UUID
    version: int
    event_type: str
    state: bytes
    key: str
    envelope: Envelope


def customer_messages(count: int, conversations: int = 200) -> list[Row]:
    """Events exactly as the inbound service stores them (the contract's classes)."""
    ids = [uuid4() for _ in range(conversations)]
    versions: Counter[UUID] = Counter()
    workspace = uuid4()
    now = datetime.now(UTC)
    rows: list[Row] = []
    for n in range(count):
        conversation = ids[n % conversations]
        versions[conversation] += 1
        envelope = Envelope.wrap(
            CustomerMessageReceived(
                conversation_id=conversation,
                wamid=f"wamid.micro.{uuid4().hex}",
                sequence=versions[conversation],
                kind="text",
                text=f"mensaje {n}",
                reply_id=None,
                content={"body": f"mensaje {n}"},
                context_wamid=None,
                sent_at=now,
            ),
            event_id=uuid4(),
            stream_id=str(conversation),
            workspace_id=workspace,
            occurred_at=now,
            correlation_id=uuid4(),
            causation_id=None,
            actor=Actor(kind="customer", id=f"5730{n % conversations:08d}"),
        )
        rows.append(
            Row(
                conversation,
                versions[conversation],
                envelope.event_type,
                encode(envelope),
                str(conversation),
                envelope,
            )
        )
    return rows


async def end_offsets(kafka: str, topic: str, partitions: int = PARTITIONS) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=None)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return int(sum(ends.values()))
    finally:
        await consumer.stop()


async def wait_offsets(kafka: str, topic: str, target: int, within: float) -> float:
    """Poll the topic's end offsets every 10 ms until they reach ``target``; the time."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            ends = await consumer.end_offsets(partitions)
            if sum(ends.values()) >= target:
                return time.monotonic()
            await asyncio.sleep(0.01)
        raise TimeoutError(f"{topic} did not reach {target} records within {within:.0f} s")
    finally:
        await consumer.stop()


async def create_topics(kafka: str, names: Sequence[str]) -> None:
    """Create the topics and wait until every partition has a leader: a producer that
    meets a topic before its metadata spends seconds retrying, inside the timed window."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, PARTITIONS, 1, topic_configs={"retention.ms": "-1"}) for name in names]
        )
        deadline = time.monotonic() + RELAY_START_TIMEOUT_SECONDS
        while True:
            described = await admin.describe_topics(list(names))
            led = [
                t
                for t in described
                if t["error_code"] == 0
                and len(t["partitions"]) == PARTITIONS
                and all(p["leader"] >= 0 for p in t["partitions"])
            ]
            if len(led) == len(names):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics {list(names)} have no leaders yet")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


def raw_producer(kafka: str) -> AIOKafkaProducer:
    """The relay's producer settings (idempotent, acks=all, no linger)."""
    return AIOKafkaProducer(
        bootstrap_servers=kafka, acks="all", enable_idempotence=True, linger_ms=0
    )


def relay_headers(row: Row) -> list[tuple[str, bytes]]:
    return [
        ("event_type", row.event_type.encode()),
        ("schema_version", str(row.envelope.schema_version).encode()),
        ("event_id", str(row.envelope.event_id).encode()),
        ("content-type", b"application/json"),
    ]


# --- 1. relay vs raw producer ----------------------------------------------------------


async def relay_vs_producer(
    infra: Infrastructure, work_dir: Path, events: int, runs: int
) -> Comparison:
    tag = uuid.uuid4().hex[:8]
    topic_prefix, schema_prefix = f"benchrelay{tag}.", f"benchrelay{tag}_"
    store = f"{schema_prefix}inbound"
    published = f"{topic_prefix}conversation.events"
    raw_topic = f"{topic_prefix}bench.raw-produce"
    relay = spawn(
        [sys.executable, "-m", "services.cli", "run", "relay"],
        {
            **os.environ,
            "SWITCHBOARD_KAFKA_BOOTSTRAP": infra.kafka,
            "SWITCHBOARD_DATABASE_URL": infra.database_url,
            "SWITCHBOARD_TOPIC_PREFIX": topic_prefix,
            "SWITCHBOARD_SCHEMA_PREFIX": schema_prefix,
            "SWITCHBOARD_LOG_FORMAT": "json",
            "SWITCHBOARD_METRICS_PORT": "0",  # the registry's fixed port may be taken
        },
        work_dir / f"relay-{tag}.log",
    )
    relayed: list[float] = []
    produced: list[float] = []
    try:
        await create_topics(infra.kafka, [raw_topic])
        # The relay is live once a first event makes it to Kafka.
        await _wait_for_table(infra, f"{store}.events", relay)
        probe = customer_messages(1)
        await asyncio.to_thread(copy_into_store, infra, store, probe)
        try:
            await wait_offsets(infra.kafka, published, 1, RELAY_START_TIMEOUT_SECONDS)
        except TimeoutError:
            log = (work_dir / f"relay-{tag}.log").read_text(errors="replace")[-1500:]
            raise RuntimeError(f"the relay published nothing; its log ends:\n{log}") from None
        for _ in range(runs):
            rows = customer_messages(events)
            before = await end_offsets(infra.kafka, published)
            committed = await asyncio.to_thread(copy_into_store, infra, store, rows)
            done = await wait_offsets(infra.kafka, published, before + events, HOP_TIMEOUT_SECONDS)
            relayed.append(events / (done - committed))

            producer = raw_producer(infra.kafka)
            await producer.start()
            try:
                started = time.monotonic()
                futures = [
                    await producer.send(
                        raw_topic, value=r.state, key=r.key.encode(), headers=relay_headers(r)
                    )
                    for r in rows
                ]
                await asyncio.gather(*futures)
                produced.append(events / (time.monotonic() - started))
            finally:
                await producer.stop()
    finally:
        await asyncio.to_thread(stop_process, relay, 15.0)
        await drop_prefixed(infra, topic_prefix, schema_prefix)
    return Comparison(
        name=f"relay: {events} committed events to Kafka",
        subject=[Figure("switchboard run relay", Spread.of(relayed))],
        baseline=[Figure("aiokafka producer, same bytes and settings", Spread.of(produced))],
        note="relay timed from the rows' commit (one COPY) to the last record on the topic;"
        " the producer from its first send to its last ack (no database read)",
    )


async def _wait_for_table(
    infra: Infrastructure, table: str, process: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + RELAY_START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("switchboard run relay exited during start-up")
        with psycopg.connect(infra.database_url, autocommit=True) as connection:
            row = connection.execute("SELECT to_regclass(%s)", (table,)).fetchone()
        if row and row[0] is not None:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{table} was not created within {RELAY_START_TIMEOUT_SECONDS:.0f} s")


def copy_into_store(infra: Infrastructure, schema: str, rows: Sequence[Row]) -> float:
    """Commit ``rows`` to a store's events table in one transaction; the commit's time."""
    with psycopg.connect(infra.database_url) as connection:
        with connection.cursor() as cursor:
            statement = sql.SQL(
                "COPY {} (originator_id, originator_version, topic, state) FROM STDIN"
            ).format(sql.Identifier(schema, "events"))
            with cursor.copy(statement) as copy:
                for r in rows:
                    copy.write_row((r.originator_id, r.version, r.event_type, r.state))
        connection.commit()
        return time.monotonic()


# --- 2. event store append vs psycopg --------------------------------------------------


def append_vs_psycopg(infra: Infrastructure, single: int, batched: int, runs: int) -> Comparison:
    from events.catalogue import build_registry
    from runtime.postgres import open_datastore
    from runtime.store import EventStore
    from services.settings import Settings

    tag = uuid.uuid4().hex[:8]
    settings = Settings.from_env(
        {
            "SWITCHBOARD_KAFKA_BOOTSTRAP": infra.kafka,
            "SWITCHBOARD_DATABASE_URL": infra.database_url,
            "SWITCHBOARD_SCHEMA_PREFIX": f"benchappend{tag}_",
        }
    )
    schema = settings.schema("store")
    datastore = open_datastore(settings, schema, pool_size=2)
    figures: dict[str, list[float]] = {}

    def timed(label: str, count: int, work: Callable[[], None]) -> None:
        started = time.monotonic()
        work()
        figures.setdefault(label, []).append(count / (time.monotonic() - started))

    try:
        store = EventStore.create(settings, datastore, build_registry())
        with psycopg.connect(infra.database_url, autocommit=True) as connection:
            for table in ("events", "tracking"):
                connection.execute(
                    sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(
                        sql.Identifier(schema, f"raw_{table}"), sql.Identifier(schema, table)
                    )
                )
        raw = RawTables(infra.database_url, schema)
        for run in range(runs):
            one, many = customer_messages(single), customer_messages(batched)
            timed(
                "EventStore.append, 1 event + position per transaction",
                single,
                partial(append_each, store, one, f"one#{run}", 1),
            )
            timed(
                f"EventStore.append, {BATCH} events + position per transaction",
                batched,
                partial(append_each, store, many, f"many#{run}", BATCH),
            )
            one, many = customer_messages(single), customer_messages(batched)
            timed(
                "INSERT 1 row + position per transaction",
                single,
                partial(raw.one_by_one, one, f"one#{run}"),
            )
            timed(
                f"COPY {BATCH} rows + position per transaction",
                batched,
                partial(raw.copy, many, f"copy#{run}"),
            )
            many = customer_messages(batched)
            timed(
                f"pipelined INSERT {BATCH} rows + position per transaction",
                batched,
                partial(raw.pipelined, many, f"pipe#{run}"),
            )
    finally:
        datastore.close()
        with psycopg.connect(infra.database_url, autocommit=True) as connection:
            connection.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    labels = list(figures)
    return Comparison(
        name="event store append with its position (events/s)",
        subject=[Figure(label, Spread.of(figures[label])) for label in labels[:2]],
        baseline=[Figure(label, Spread.of(figures[label])) for label in labels[2:]],
        note="the same envelopes; EventStore encodes them (part of its cost) and the library"
        " locks the table for gap-free notification ids; psycopg writes pre-encoded bytes",
    )


def append_each(store: Any, rows: Sequence[Row], name: str, per_transaction: int) -> None:
    """``store.append`` of ``per_transaction`` events at a time, each with its position."""
    from runtime.store import NewEvent

    for n, start in enumerate(range(0, len(rows), per_transaction), 1):
        store.append(
            [
                NewEvent(r.originator_id, r.version, r.envelope)
                for r in rows[start : start + per_transaction]
            ],
            Tracking(name, n),
        )


class RawTables:
    """psycopg on tables identical to the store's (``LIKE ... INCLUDING ALL``)."""

    def __init__(self, database_url: str, schema: str) -> None:
        self.url = database_url
        self.events = sql.Identifier(schema, "raw_events")
        self.tracking = sql.Identifier(schema, "raw_tracking")

    def _track(self) -> sql.Composed:
        return sql.SQL(
            "INSERT INTO {} (application_name, notification_id) VALUES (%s, %s)"
            " ON CONFLICT (application_name)"
            " DO UPDATE SET notification_id = EXCLUDED.notification_id"
        ).format(self.tracking)

    def _insert(self) -> sql.Composed:
        return sql.SQL(
            "INSERT INTO {} (originator_id, originator_version, topic, state)"
            " VALUES (%s, %s, %s, %s)"
        ).format(self.events)

    def one_by_one(self, rows: Sequence[Row], name: str) -> None:
        with psycopg.connect(self.url) as connection:
            for n, r in enumerate(rows, 1):
                with connection.transaction():
                    connection.execute(
                        self._insert(), (r.originator_id, r.version, r.event_type, r.state)
                    )
                    connection.execute(self._track(), (name, n))

    def copy(self, rows: Sequence[Row], name: str) -> None:
        statement = sql.SQL(
            "COPY {} (originator_id, originator_version, topic, state) FROM STDIN"
        ).format(self.events)
        with psycopg.connect(self.url) as connection:
            for n, start in enumerate(range(0, len(rows), BATCH), 1):
                with connection.transaction(), connection.cursor() as cursor:
                    with cursor.copy(statement) as copy:
                        for r in rows[start : start + BATCH]:
                            copy.write_row((r.originator_id, r.version, r.event_type, r.state))
                    cursor.execute(self._track(), (name, n))

    def pipelined(self, rows: Sequence[Row], name: str) -> None:
        with psycopg.connect(self.url) as connection:
            for n, start in enumerate(range(0, len(rows), BATCH), 1):
                with connection.transaction(), connection.cursor() as cursor:
                    cursor.executemany(
                        self._insert(),
                        [
                            (r.originator_id, r.version, r.event_type, r.state)
                            for r in rows[start : start + BATCH]
                        ],
                    )
                    cursor.execute(self._track(), (name, n))


# --- 3. FastStream hop vs raw aiokafka hop ---------------------------------------------


async def hop_vs_aiokafka(infra: Infrastructure, events: int, runs: int) -> Comparison:
    tag = uuid.uuid4().hex[:8]
    prefix = f"benchhop{tag}."
    source = f"{prefix}source"
    figures: dict[str, list[float]] = {}
    try:
        await create_topics(infra.kafka, [source])
        rows = customer_messages(events)
        producer = raw_producer(infra.kafka)
        await producer.start()
        try:
            await asyncio.gather(
                *[await producer.send(source, value=r.state, key=r.key.encode()) for r in rows]
            )
        finally:
            await producer.stop()
        variants: list[tuple[str, Callable[[str, str, str, int, str], Awaitable[float]]]] = [
            ("FastStream subscriber + publisher, one record at a time", _faststream_hop),
            (
                f"FastStream batch subscriber (up to {BATCH}), publishes acked together",
                _faststream_batch_hop,
            ),
        ]
        for run in range(runs):
            for number, (label, hop) in enumerate(variants):
                # A topic and a consumer group per variant and run: a group that already
                # read the source would start at its end.
                target = f"{prefix}{number}.{run}.target"
                await create_topics(infra.kafka, [target])
                rate = await hop(infra.kafka, source, target, events, f"{prefix}g{number}.{run}")
                figures.setdefault(label, []).append(rate)
            target = f"{prefix}raw.{run}.target"
            await create_topics(infra.kafka, [target])
            rate = await _aiokafka_hop(infra.kafka, source, target, events, f"{prefix}raw{run}")
            figures.setdefault("aiokafka getmany + a batch of sends + commit", []).append(rate)
    finally:
        await drop_prefixed(infra, prefix, f"benchhop{tag}_")
    labels = list(figures)
    return Comparison(
        name=f"one Kafka hop, consume and re-publish {events} records (records/s)",
        subject=[Figure(label, Spread.of(figures[label])) for label in labels[:-1]],
        baseline=[Figure(labels[-1], Spread.of(figures[labels[-1]]))],
        note="from the first record consumed to the last one acknowledged on the target"
        " (acks=all, idempotent producer on both sides); group join time excluded",
    )


def _broker(kafka: str) -> KafkaBroker:
    return KafkaBroker(
        kafka,
        acks="all",
        enable_idempotence=True,
        linger_ms=0,
        log_level=logging.WARNING,
        logger=None,
    )


async def _faststream_hop(kafka: str, source: str, target: str, count: int, group: str) -> float:
    """FastStream's own shape: a subscriber per record, ``publish`` awaiting each ack."""
    broker = _broker(kafka)
    first: list[float] = []

    @broker.subscriber(
        source, group_id=group, auto_offset_reset="earliest", ack_policy=AckPolicy.ACK
    )
    async def hop(message: KafkaMessage) -> None:
        if not first:
            first.append(time.monotonic())
        record = message.raw_message
        assert not isinstance(record, tuple)
        await broker.publish(record.value, topic=target, key=record.key)

    return await _time_hop(broker, kafka, target, count, first)


async def _faststream_batch_hop(
    kafka: str, source: str, target: str, count: int, group: str
) -> float:
    """FastStream with ``batch=True``: a list of records per call, each published without
    waiting (``no_confirm``), then every ack awaited. (``publish_batch`` puts the records
    in one producer batch, which 500 records of this size overflow.)"""
    broker = _broker(kafka)
    first: list[float] = []

    @broker.subscriber(
        source,
        group_id=group,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK,
        batch=True,
        max_records=BATCH,
    )
    async def hop(message: KafkaMessage) -> None:
        if not first:
            first.append(time.monotonic())
        records = message.raw_message
        assert isinstance(records, tuple)
        sent = [
            await broker.publish(r.value, topic=target, key=r.key, no_confirm=True) for r in records
        ]
        await asyncio.gather(*sent)

    return await _time_hop(broker, kafka, target, count, first)


async def _time_hop(
    broker: KafkaBroker, kafka: str, target: str, count: int, first: list[float]
) -> float:
    async with broker:
        await broker.start()
        done = await wait_offsets(kafka, target, count, HOP_TIMEOUT_SECONDS)
    return count / (done - first[0])


async def _aiokafka_hop(kafka: str, source: str, target: str, count: int, group: str) -> float:
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=kafka,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=BATCH,
    )
    producer = raw_producer(kafka)
    await consumer.start()
    await producer.start()
    try:
        moved = 0
        first: float | None = None
        deadline = time.monotonic() + HOP_TIMEOUT_SECONDS
        while moved < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the aiokafka hop moved {moved} of {count} records")
            batch = await consumer.getmany(timeout_ms=1000, max_records=BATCH)
            records = [r for items in batch.values() for r in items]
            if not records:
                continue
            if first is None:
                first = time.monotonic()
            await asyncio.gather(
                *[await producer.send(target, value=r.value, key=r.key) for r in records]
            )
            await consumer.commit()
            moved += len(records)
        assert first is not None
        return count / (time.monotonic() - first)
    finally:
        await producer.stop()
        await consumer.stop()
