"""Publish stored events to their Kafka topics in notification order, then record how far.

The position is written only after Kafka acknowledged every record of a batch, so a crash
between the two publishes some records again on restart; consumers recognise them by
event id and position. One relay runs per store at a time: it holds a Postgres advisory
lock for as long as it runs, and a second relay waits as a hot standby.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import anyio.to_thread
import orjson
import structlog
from aiokafka import AIOKafkaProducer
from eventsourcing.persistence import Notification, Tracking

from events.catalogue import topic_of
from services.postgres import advisory_lock
from services.store import RELAY_TRACKING, EventStore

log = structlog.get_logger(__name__)
BATCH = 500
MAX_BACKOFF_SECONDS = 5.0


class Relay:
    def __init__(
        self,
        name: str,
        store: EventStore,
        producer: AIOKafkaProducer,
        *,
        topic_prefix: str,
        poll_seconds: float,
    ) -> None:
        self.name = name
        self.store = store
        self.producer = producer
        self.topic_prefix = topic_prefix
        self.poll_seconds = poll_seconds

    async def run(self, conninfo: str, lock_key: str) -> None:
        """Publish forever (until cancelled), holding this store's relay lock."""
        async with advisory_lock(conninfo, lock_key, holder="relay"):
            log.info("relay active", store=self.name)
            delay = self.poll_seconds
            while True:
                try:
                    sent = await self.publish_pending()
                except Exception as error:
                    # Kafka or Postgres away: nothing was recorded, so the same batch is
                    # sent again once they are back (consumers recognise the re-sends).
                    delay = min(max(delay * 2, 0.2), MAX_BACKOFF_SECONDS)
                    log.error(
                        "relay failed; retrying", store=self.name, error=repr(error), delay=delay
                    )
                    await asyncio.sleep(delay)
                    continue
                delay = self.poll_seconds
                if sent == 0:
                    await asyncio.sleep(self.poll_seconds)

    async def publish_pending(self) -> int:
        """Publish one batch after the recorded position; the number of records sent."""
        position = await anyio.to_thread.run_sync(self.store.position, RELAY_TRACKING) or 0
        batch = await anyio.to_thread.run_sync(self.store.notifications, position, BATCH)
        if not batch:
            return 0
        await self._send(batch)
        last = batch[-1].id
        await anyio.to_thread.run_sync(
            self.store.recorder.insert_tracking, Tracking(RELAY_TRACKING, last)
        )
        log.debug("relayed", store=self.name, count=len(batch), position=last)
        return len(batch)

    async def _send(self, batch: Sequence[Notification]) -> None:
        futures = []
        for notification in batch:
            header = orjson.loads(notification.state)
            topic = topic_of(notification.topic).qualified(self.topic_prefix)
            futures.append(
                await self.producer.send(
                    topic,
                    value=notification.state,
                    key=str(header["stream_id"]).encode(),
                    headers=[
                        ("event_type", notification.topic.encode()),
                        ("schema_version", str(header["schema_version"]).encode()),
                        ("event_id", str(header["event_id"]).encode()),
                        ("content-type", b"application/json"),
                    ],
                )
            )
        # Every record acknowledged (acks=all), or an exception and no position recorded.
        await asyncio.gather(*futures)
