"""The composition root every consumer process shares: a service declaration, running.

``consumer_app(service, settings)`` builds the FastStream app: one broker, one batch
subscriber per subscription (declared at once, so the AsyncAPI document needs no
connection), and a lifespan that creates the topics, opens the service's store, lets the
service build its handlers (``Service.start``) and binds them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from faststream import FastStream

from events.catalogue import build_registry
from runtime.consumer import Consumer
from runtime.kafka import ensure_topics, new_broker, subscribe
from runtime.process import Context, Service
from runtime.store import EventStore


def consumer_app(service: Service, settings: Any, **options: Any) -> FastStream:
    """``service`` as a FastStream app; ``options`` go to its ``start`` (tests pass a clock)."""
    registry = build_registry()
    broker = new_broker(settings, client_id=f"switchboard-{service.name}")
    consumers = {
        subscription.consumer: Consumer(subscription.consumer, registry)
        for subscription in service.subscriptions
    }
    for subscription in service.subscriptions:
        subscribe(
            broker,
            consumers[subscription.consumer],
            settings=settings,
            topics=subscription.topics,
            description=subscription.description,
            max_records=subscription.max_records,
        )

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        await ensure_topics(settings)
        recorder = await anyio.to_thread.run_sync(service.open_recorder, settings)
        store = EventStore(recorder, registry, cache_size=settings.stream_cache_size)
        try:
            async with service.start(Context(settings, store), **options) as bindings:
                missing = set(consumers) - set(bindings)
                if missing:
                    raise RuntimeError(f"{service.name} started without handlers for {missing}")
                for name, binding in bindings.items():
                    consumers[name].bind(
                        store,
                        binding.handler,
                        prepare=binding.prepare,
                        on_assigned=binding.on_assigned,
                    )
                yield
        finally:
            recorder.datastore.close()

    return FastStream(broker, lifespan=lifespan)
