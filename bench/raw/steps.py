"""The raw pipeline's three back-end steps: append, relay, history."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
import psycopg
from aiokafka import AIOKafkaProducer
from psycopg import sql

from bench.raw.config import BATCH, EVENTS, INBOUND, RawConfig
from bench.raw.consumer import run_consumer


async def append(config: RawConfig) -> None:
    """raw.inbound -> the events table (with positions), then a NOTIFY for the relay.

    One process appends, one transaction at a time, so ids become visible in id order and
    the relay can read "after the last id" without skipping a late commit.
    """
    insert = sql.SQL("INSERT INTO {} (stream_id, body) VALUES (%s, %s)").format(
        config.table("events")
    )

    async def write(cursor: psycopg.AsyncCursor[Any], records: Sequence[Any]) -> None:
        await cursor.executemany(insert, [(r.key.decode(), r.value) for r in records])

    await run_consumer(config, "append", config.topic(INBOUND), write, notify=config.channel)


async def relay(config: RawConfig) -> None:
    """The events table -> raw.events: woken by NOTIFY, in batches, position after the acks."""
    topic = config.topic(EVENTS)
    producer = AIOKafkaProducer(
        bootstrap_servers=config.kafka, acks="all", enable_idempotence=True, linger_ms=0
    )
    await producer.start()
    select = sql.SQL(
        "SELECT id, stream_id, body FROM {} WHERE id > %s ORDER BY id LIMIT %s"
    ).format(config.table("events"))
    record = sql.SQL("UPDATE {} SET last_id = %s").format(config.table("relay_position"))
    try:
        async with (
            await psycopg.AsyncConnection.connect(config.database_url, autocommit=True) as listen,
            await psycopg.AsyncConnection.connect(config.database_url, autocommit=True) as work,
        ):
            await listen.execute(sql.SQL("LISTEN {}").format(sql.Identifier(config.channel)))
            cursor = await work.execute(
                sql.SQL("SELECT last_id FROM {}").format(config.table("relay_position"))
            )
            row = await cursor.fetchone()
            last = int(row[0]) if row else 0
            while True:
                rows = await (await work.execute(select, (last, BATCH))).fetchall()
                if not rows:
                    # Notifications that came while we worked are queued: none is missed.
                    # The time-out only bounds the wait if the append step was restarted.
                    async for _ in listen.notifies(timeout=1.0, stop_after=1):
                        pass
                    continue
                futures = [
                    await producer.send(topic, value=body, key=stream_id.encode())
                    for _, stream_id, body in rows
                ]
                await asyncio.gather(*futures)
                last = int(rows[-1][0])
                await work.execute(record, (last,))
    finally:
        await producer.stop()


async def history(config: RawConfig) -> None:
    """raw.events -> one history line per message (a re-sent event changes nothing)."""
    insert = sql.SQL(
        "INSERT INTO {} (wamid, stream_id, contact, text, sent_at) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (wamid) DO NOTHING"
    ).format(config.table("history"))

    async def write(cursor: psycopg.AsyncCursor[Any], records: Sequence[Any]) -> None:
        rows = []
        for r in records:
            event = orjson.loads(r.value)
            message = event["message"]
            rows.append(
                (
                    message["id"],
                    r.key.decode(),
                    message["from"],
                    message.get("text", {}).get("body"),
                    int(message["timestamp"]),
                )
            )
        await cursor.executemany(insert, rows)

    await run_consumer(config, "history", config.topic(EVENTS), write)
