"""Composition root of the relay process: one relay per relayed store, one wake-up listener."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Sequence

import anyio.to_thread
import structlog
from eventsourcing.postgres import PostgresDatastore

from events.catalogue import build_registry
from runtime.config import Connections
from runtime.kafka import ensure_topics
from runtime.notify import Notifications
from runtime.postgres import open_datastore
from runtime.producer import HealingProducer
from runtime.relay.relay import Relay
from runtime.store import EVENTS_CHANNEL, EventStore

log = structlog.get_logger(__name__)


async def run_relays(settings: Connections, stores: Sequence[str]) -> None:
    """Relay every store (by service name) until cancelled; a failing relay stops the
    process (and is logged)."""
    await ensure_topics(settings)
    registry = build_registry()
    producer = HealingProducer.for_settings(settings, client_id="switchboard-relay")
    await producer.start()
    conninfo = settings.database().conninfo()
    notifications = Notifications(conninfo, EVENTS_CHANNEL)
    listening = asyncio.create_task(notifications.run())
    datastores: list[PostgresDatastore] = []
    try:
        relays = []
        for name in stores:
            schema = settings.schema(name)
            datastore = await anyio.to_thread.run_sync(
                functools.partial(open_datastore, settings, schema, pool_size=2)
            )
            datastores.append(datastore)
            store = await anyio.to_thread.run_sync(EventStore.create, settings, datastore, registry)
            relay = Relay(
                name,
                store,
                producer,
                topic_prefix=settings.topic_prefix,
                wake=notifications.waiter(schema),
                check_seconds=settings.relay_check_seconds,
            )
            relays.append(relay.run(conninfo, f"switchboard-relay:{schema}"))
        await asyncio.gather(*relays)
    finally:
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening
        await producer.stop()
        for datastore in datastores:
            datastore.close()
