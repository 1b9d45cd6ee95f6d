"""The dead letters' reads and writes: the ``operations.dead_letters`` topic, a parked stored
event's row, and the record a replay puts back (through the shared idempotent producer)."""

from __future__ import annotations

import psycopg
from psycopg import sql

from events.catalogue import DEAD_LETTERS, build_registry
from events.codec import CodecError, decode
from events.envelope import Envelope
from runtime.producer import HealingProducer, KafkaRecord
from runtime.store import EVENTS_TABLE
from services.operations.dead_letters import DeadLetter, NotReplayable, collect
from services.operations.topic_reader import read_topic
from services.settings import Settings

SEND_SECONDS = 15.0


async def read_dead_letters(settings: Settings) -> tuple[list[DeadLetter], list[str]]:
    """Every dead letter on the topic up to its end now, and the records that are not one."""
    registry = build_registry()
    records: list[tuple[int, int, Envelope]] = []
    problems: list[str] = []
    for record in await read_topic(settings, DEAD_LETTERS):
        try:
            envelope = decode(record.value or b"", registry)
        except CodecError as error:
            problems.append(f"{record.partition}@{record.offset}: {error}")
            continue
        records.append((record.partition, record.offset, envelope))
    return collect(records), problems


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
