"""Composition root of the relay process: one relay per service event store."""

from __future__ import annotations

import asyncio
import functools

import anyio.to_thread
import structlog
from eventsourcing.postgres import PostgresDatastore

from events.catalogue import build_registry
from services.kafka import ensure_topics
from services.postgres import open_datastore
from services.producer import HealingProducer
from services.relay.relay import Relay
from services.settings import Settings
from services.store import EventStore

log = structlog.get_logger(__name__)

# The services whose stores are relayed. Each owns the schema of the same name.
RELAYED_STORES = (
    "directory",
    "inbound",
    "flows",
    "dispatcher",
    "expiry",
    "assignment",
    "projections",
)


async def run_relays(settings: Settings, stores: tuple[str, ...] = RELAYED_STORES) -> None:
    """Relay every store until cancelled; a failing relay stops the process (and is logged)."""
    await ensure_topics(settings)
    registry = build_registry()
    producer = HealingProducer.for_settings(settings, client_id="switchboard-relay")
    await producer.start()
    datastores: list[PostgresDatastore] = []
    try:
        relays = []
        for name in stores:
            datastore = await anyio.to_thread.run_sync(
                functools.partial(open_datastore, settings, settings.schema(name), pool_size=2)
            )
            datastores.append(datastore)
            store = await anyio.to_thread.run_sync(EventStore.create, settings, datastore, registry)
            relay = Relay(
                name,
                store,
                producer,
                topic_prefix=settings.topic_prefix,
                poll_seconds=settings.relay_poll_seconds,
            )
            relays.append(
                relay.run(
                    settings.database().conninfo(), f"switchboard-relay:{settings.schema(name)}"
                )
            )
        await asyncio.gather(*relays)
    finally:
        await producer.stop()
        for datastore in datastores:
            datastore.close()
