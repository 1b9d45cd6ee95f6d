"""``make bench``: throughput of switchboard's hot paths beside a raw baseline, same run.

1. Inbound handling: a webhook record decided and appended with its tracking position (one
   transaction each, as the consumer does) versus a bare one-row INSERT transaction.
2. Webhook publishing: the gateway's publisher (envelope encoding, acks=all, idempotence)
   versus aiokafka's ``send_and_wait`` of the same bytes.

Figures depend on the machine; compare the two columns, not runs on different machines.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import UTC, datetime
from uuid import uuid4

import psycopg
from aiokafka import AIOKafkaProducer
from psycopg import sql

from events.catalogue import WHATSAPP_INBOUND, build_registry
from events.codec import encode
from events.directory import BusinessNumberConnected
from events.envelope import Actor, Envelope
from services.consumer import Delivery
from services.gateway.dependencies import Publisher
from services.gateway.webhook import split_webhook
from services.inbound.handlers import DirectoryViewHandler, InboundHandler
from services.inbound.routes import InboundRecorder
from services.kafka import ensure_topics
from services.postgres import create_tables, open_datastore
from services.producer import HealingProducer
from services.settings import Settings
from services.store import EventStore
from tests.webhooks import Text, messages_webhook

RECORDS = int(os.environ.get("SWITCHBOARD_BENCH_RECORDS", "2000"))
NUMBER = "480112093385611"


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:8.0f}/s  ({seconds * 1000 / count:6.2f} ms each)"


def bench_inbound(settings: Settings) -> tuple[float, float]:
    registry = build_registry()
    datastore = open_datastore(settings, settings.schema("inbound"), pool_size=2)
    recorder = InboundRecorder(datastore)
    create_tables(settings, recorder)
    store = EventStore(recorder, registry)
    workspace = uuid4()
    route = Envelope.wrap(
        BusinessNumberConnected(workspace_id=workspace, phone_number_id=NUMBER),
        event_id=uuid4(),
        stream_id=str(workspace),
        workspace_id=workspace,
        occurred_at=datetime.now(UTC),
        correlation_id=uuid4(),
        causation_id=None,
        actor=Actor(kind="system"),
    )
    DirectoryViewHandler(store, recorder).handle(
        Delivery("directory.events", 0, 0, None, b"", 0), route
    )
    handler = InboundHandler(store, recorder)
    envelopes = [
        record.envelope
        for n in range(RECORDS)
        for record in split_webhook(
            messages_webhook(NUMBER, [Text(f"57{n % 100:04d}", f"wamid.bench.{n}", f"m{n}")]),
            received_at=datetime.now(UTC),
        )
    ]
    started = time.perf_counter()
    for offset, envelope in enumerate(envelopes):
        handler.handle(Delivery("whatsapp.inbound", 0, offset, None, b"", 0), envelope)
    switchboard = time.perf_counter() - started

    table = sql.Identifier(settings.schema("inbound"), "bench_raw")
    with psycopg.connect(settings.database().conninfo(), autocommit=True) as connection:
        connection.execute(
            sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, body bytea)").format(table)
        )
        payloads = [encode(envelope) for envelope in envelopes]
        started = time.perf_counter()
        for offset, payload in enumerate(payloads):
            with connection.transaction():
                connection.execute(
                    sql.SQL("INSERT INTO {} VALUES (%s, %s)").format(table), (offset, payload)
                )
        raw = time.perf_counter() - started
    assert store.position("whatsapp.inbound#0") == RECORDS
    datastore.close()
    return switchboard, raw


async def bench_publish(settings: Settings) -> tuple[float, float]:
    await ensure_topics(settings, [WHATSAPP_INBOUND])
    topic = WHATSAPP_INBOUND.qualified(settings.topic_prefix)
    records = [
        record
        for n in range(RECORDS)
        for record in split_webhook(
            messages_webhook(NUMBER, [Text(f"57{n % 100:04d}", f"wamid.pub.{n}", f"m{n}")]),
            received_at=datetime.now(UTC),
        )
    ]
    producer = HealingProducer.for_settings(settings, client_id="bench")
    await producer.start()
    try:
        publisher = Publisher(producer, timeout=10)
        started = time.perf_counter()
        for record in records:
            await publisher.publish(topic, [record])
        switchboard = time.perf_counter() - started
    finally:
        await producer.stop()
    raw_producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await raw_producer.start()
    try:
        payloads = [(record.key.encode(), encode(record.envelope)) for record in records]
        started = time.perf_counter()
        for key, value in payloads:
            await raw_producer.send_and_wait(topic, value, key=key)
        raw = time.perf_counter() - started
    finally:
        await raw_producer.stop()
    return switchboard, raw


def main() -> None:
    tag = uuid.uuid4().hex[:8]
    settings = Settings.from_env(
        {
            **os.environ,
            "SWITCHBOARD_TOPIC_PREFIX": f"bench{tag}.",
            "SWITCHBOARD_SCHEMA_PREFIX": f"bench{tag}_",
        }
    )
    print(f"{RECORDS} records each; one at a time, as a webhook or a consumer sees them\n")
    print(f"{'path':<44} {'switchboard':<30} {'raw baseline':<30}")
    switchboard, raw = bench_inbound(settings)
    print(
        f"{'inbound: decide + append with position':<44} {rate(RECORDS, switchboard):<30} "
        f"{rate(RECORDS, raw):<30} (bare INSERT transaction)"
    )
    switchboard, raw = asyncio.run(bench_publish(settings))
    print(
        f"{'gateway: publish one record, wait for ack':<44} {rate(RECORDS, switchboard):<30} "
        f"{rate(RECORDS, raw):<30} (aiokafka send_and_wait)"
    )
    with psycopg.connect(settings.database().conninfo(), autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(settings.schema("inbound")))
        )


if __name__ == "__main__":
    main()
