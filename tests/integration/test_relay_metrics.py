"""The relay's lag (stored events not yet published) and its parked events, as counted."""

from __future__ import annotations

import asyncio
import functools
from uuid import uuid4

import anyio.to_thread
import pytest
from prometheus_client import REGISTRY

from events.catalogue import build_registry
from runtime.kafka import ensure_topics
from runtime.postgres import open_datastore
from runtime.producer import HealingProducer
from runtime.relay.relay import BATCH, Relay
from runtime.store import EventStore
from services.settings import Settings
from tests.integration.test_poison import dead_letter, raw, stored

pytestmark = pytest.mark.integration


def parked_by(store: str) -> float:
    labels = {"kind": "stored_event", "source": store}
    return REGISTRY.get_sample_value("switchboard_dead_letters_total", labels) or 0.0


async def test_the_relay_lag_counts_down_batch_by_batch_and_parked_events_are_counted(
    settings: Settings,
) -> None:
    await ensure_topics(settings)
    datastore = await anyio.to_thread.run_sync(
        functools.partial(open_datastore, settings, settings.schema("directory"), pool_size=2)
    )
    producer = HealingProducer.for_settings(settings, client_id="test-relay-metrics")
    await producer.start()
    try:
        store = await anyio.to_thread.run_sync(
            EventStore.create, settings, datastore, build_registry()
        )
        total = 2 * BATCH + 201

        def fill() -> None:
            store.append([stored(dead_letter(f"n{n}"), uuid4()) for n in range(total - 1)], None)
            # One the relay can never publish (not JSON): parked in its place, and counted.
            store.recorder.insert_events([raw("directory.workspace_created", b"{not json")])

        await anyio.to_thread.run_sync(fill)
        relay = Relay(
            "directory",
            store,
            producer,
            topic_prefix=settings.topic_prefix,
            wake=asyncio.Event(),
        )
        relay.progress.active = True
        assert relay.progress.lag is None
        assert relay.progress.behind(total) == ["relay of directory: has not read its store yet"]
        parked_before = parked_by("directory")

        assert await relay.publish_pending() == BATCH
        assert relay.progress.lag == total - BATCH  # counted in the store: a full batch
        assert relay.progress.behind(total - BATCH - 1) == [
            f"relay of directory: {total - BATCH} events not yet published"
        ]
        assert await relay.publish_pending() == BATCH
        assert relay.progress.lag == total - 2 * BATCH
        # The last batch: its 200 events published, the unreadable one parked.
        passed = await relay.publish_pending()
        while relay.progress.lag:
            passed += await relay.publish_pending()
        assert passed == total - 2 * BATCH
        assert relay.progress.lag == 0
        assert relay.progress.behind(0) == []
        assert parked_by("directory") == parked_before + 1
    finally:
        await producer.stop()
        datastore.close()
