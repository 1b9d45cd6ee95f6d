"""A projection rebuild beside reading and decoding the same events with no projection work.

On the system the ongoing sweep filled: stop it, empty the read models with
``switchboard projections rebuild`` (the README's procedure), start ``switchboard run
projector`` alone and time it until it has read every partition it consumes to the end.
Its progress is read from its Kafka consumer group, given a group prefix of its own
(``SWITCHBOARD_GROUP_PREFIX``) so the old group's offsets cannot pass for progress; at the
end every read-model table must hold as many rows as before the rebuild.

Baselines, on the same partitions: aiokafka reading them from offset zero and decoding
each record with ``orjson.loads``, and again with switchboard's own codec
(``events.codec.decode``, which the projector runs too).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from dataclasses import dataclass

import orjson
import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from psycopg import sql

from bench.micro import Comparison, Figure
from bench.scenarios import backlogs_of
from bench.stats import Spread
from bench.systems import ROOT, Switchboard, spawn, stop_process
from events.catalogue import build_registry
from events.codec import decode

NOT_READ_MODELS = ("events", "tracking", "read_model_version")
POLL_SECONDS = 0.25
READ_TIMEOUT_SECONDS = 300
SETTLE_SECONDS = 300.0


@dataclass(frozen=True)
class RebuildResult:
    comparison: Comparison
    events: int
    start_up_seconds: float
    complete: bool
    tables_match: bool


async def projector_partitions(system: Switchboard) -> dict[TopicPartition, int]:
    """The partitions the projector's consumer group read, with their end offsets."""
    admin = AIOKafkaAdminClient(bootstrap_servers=system.infra.kafka)
    await admin.start()
    consumer = AIOKafkaConsumer(bootstrap_servers=system.infra.kafka, group_id=None)
    await consumer.start()
    try:
        groups = [
            str(g[0])
            for g in await admin.list_consumer_groups()
            if str(g[0]).startswith(system.topic_prefix) and str(g[0]).endswith("projector")
        ]
        if not groups:
            raise RuntimeError("no consumer group of the projector found")
        committed = await admin.list_consumer_group_offsets(groups[0])
        partitions = [TopicPartition(tp.topic, tp.partition) for tp in committed]
        ends = await consumer.end_offsets(partitions)
        return {tp: int(offset) for tp, offset in ends.items()}
    finally:
        await consumer.stop()
        await admin.close()


def table_counts(database_url: str, schema: str) -> dict[str, int]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        tables = [
            str(row[0])
            for row in connection.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = %s AND table_type = 'BASE TABLE'",
                (schema,),
            ).fetchall()
            if row[0] not in NOT_READ_MODELS
        ]
        counts: dict[str, int] = {}
        for table in tables:
            row = connection.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))
            ).fetchone()
            counts[table] = int(row[0]) if row else 0
        return counts


async def settle(system: Switchboard, limit_seconds: float) -> None:
    """Wait until nothing waits anywhere (twice in a row, a second apart): the snapshot of
    the read models and of the topics' ends must not move under the rebuild's feet."""
    deadline = time.monotonic() + limit_seconds
    quiet = 0
    while quiet < 2:
        waiting = sum(b.waiting for b in await backlogs_of(system))
        quiet = quiet + 1 if waiting == 0 else 0
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the system still had {waiting} records waiting after {limit_seconds:.0f} s;"
                " a rebuild measured now would chase a moving target"
            )
        await asyncio.sleep(1.0)


async def group_progress(kafka: str, group: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        return sum(max(meta.offset, 0) for meta in committed.values())
    finally:
        await admin.close()


async def rebuild_vs_read(system: Switchboard, runs: int, limit_seconds: float) -> RebuildResult:
    """Stops ``system`` (run all) and leaves it stopped."""
    await settle(system, SETTLE_SECONDS)
    ends = await projector_partitions(system)
    events = sum(ends.values())
    before = await asyncio.to_thread(table_counts, system.infra.database_url, system.projections)
    await system.stop()
    rebuilt: list[float] = []
    start_ups: list[float] = []
    complete = True
    tables_match = True
    for run in range(runs):
        cli = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "services.cli", "projections", "rebuild"],
            cwd=ROOT,
            env=system.env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if cli.returncode != 0:
            raise RuntimeError(f"projections rebuild failed: {cli.stderr[-2000:]}")
        group_prefix = f"{system.topic_prefix}rebuild{run}."
        started = time.monotonic()
        projector = spawn(
            [sys.executable, "-m", "services.cli", "run", "projector"],
            {**system.env(), "SWITCHBOARD_GROUP_PREFIX": group_prefix},
            system.log_dir / f"projector-rebuild-{run}.log",
        )
        group = f"{group_prefix}switchboard.projector"
        first: float | None = None
        progress = 0
        try:
            deadline = started + limit_seconds
            while time.monotonic() < deadline and projector.poll() is None:
                progress = await group_progress(system.infra.kafka, group)
                now = time.monotonic()
                if progress > 0 and first is None:
                    first = now
                if progress >= events:
                    break
                await asyncio.sleep(POLL_SECONDS)
            done = time.monotonic()
        finally:
            await asyncio.to_thread(stop_process, projector, 15.0)
        if first is None:
            raise RuntimeError(
                f"the rebuilding projector made no progress within {limit_seconds:.0f} s"
                f" (see {system.log_dir})"
            )
        complete = complete and progress >= events
        rebuilt.append(progress / max(done - first, POLL_SECONDS))
        start_ups.append(first - started)
        after = await asyncio.to_thread(table_counts, system.infra.database_url, system.projections)
        tables_match = tables_match and after == before
    raw_json: list[float] = []
    raw_codec: list[float] = []
    for _ in range(runs):
        raw_json.append(await read_all(system.infra.kafka, ends, codec=False))
        raw_codec.append(await read_all(system.infra.kafka, ends, codec=True))
    label = f"switchboard run projector from offset zero ({events} events)"
    if not complete:
        label += f", INCOMPLETE after {limit_seconds:.0f} s"
    return RebuildResult(
        comparison=Comparison(
            name="projection rebuild (events/s)",
            subject=[Figure(label, Spread.of(rebuilt))],
            baseline=[
                Figure("aiokafka read + orjson.loads", Spread.of(raw_json)),
                Figure("aiokafka read + events.codec.decode", Spread.of(raw_codec)),
            ],
            note=f"rebuild timed from its first committed record (start-up,"
            f" ~{Spread.of(start_ups).median:.1f} s, excluded) to its last;"
            f" read models {'identical' if tables_match else 'DIFFERENT'} after the rebuild",
        ),
        events=events,
        start_up_seconds=Spread.of(start_ups).median,
        complete=complete,
        tables_match=tables_match,
    )


async def read_all(kafka: str, ends: dict[TopicPartition, int], *, codec: bool) -> float:
    """Read every partition from zero to its end and decode each record; records/s."""
    registry = build_registry()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka, group_id=None, auto_offset_reset="earliest", max_poll_records=500
    )
    await consumer.start()
    try:
        partitions = [tp for tp, end in ends.items() if end > 0]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        remaining = {tp: ends[tp] for tp in partitions}
        count = 0
        started = time.monotonic()
        while remaining:
            if time.monotonic() - started > READ_TIMEOUT_SECONDS:
                raise TimeoutError(
                    f"reading the projector's topics took over {READ_TIMEOUT_SECONDS} s"
                )
            batch = await consumer.getmany(timeout_ms=1000, max_records=500)
            for tp, records in batch.items():
                for record in records:
                    if codec:
                        decode(record.value, registry)
                    else:
                        orjson.loads(record.value)
                count += len(records)
                if records and records[-1].offset + 1 >= remaining.get(tp, 0):
                    remaining.pop(tp, None)
        return count / (time.monotonic() - started)
    finally:
        await consumer.stop()
