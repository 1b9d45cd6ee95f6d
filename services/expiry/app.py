"""Composition root of the expiry process (``switchboard run expiry``).

One subscriber, one store (schema ``expiry``), one background task:

* ``conversation.events`` and ``flow.events`` -> each conversation's deadline
  (``handlers.DeadlineHandler``), with the record's position, in one transaction;
* the timer (``timer.ExpiryTimer``) fires due deadlines: ``expiry.conversation_expired``
  and a ``conversation.close`` command (reason ``expired``) in one transaction.

The relay publishes the store's events to ``expiry.events`` and the commands to
``conversation.commands``, where the inbound service closes the conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import anyio.to_thread
from faststream import FastStream

from events.catalogue import CONVERSATION_EVENTS_TOPIC, FLOW_EVENTS_TOPIC, build_registry
from runtime.kafka import ensure_topics
from runtime.legacy import TrackedRuntime, subscribe_tracked
from runtime.legacy import legacy_broker as new_broker
from runtime.postgres import open_recorder
from runtime.store import EventStore
from services.expiry.handlers import DeadlineFirer, DeadlineHandler
from services.expiry.recorder import ExpiryRecorder
from services.expiry.timer import Clock, ExpiryTimer, SystemClock
from services.settings import Settings


def create_app(settings: Settings, *, clock: Clock | None = None) -> FastStream:
    """The expiry app; ``clock`` replaces the wall clock (tests move time forward with it)."""
    registry = build_registry()
    broker = new_broker(settings, client_id="switchboard-expiry")
    deadlines = TrackedRuntime("expiry", registry)
    subscribe_tracked(
        broker,
        deadlines,
        topics=[
            CONVERSATION_EVENTS_TOPIC.qualified(settings.topic_prefix),
            FLOW_EVENTS_TOPIC.qualified(settings.topic_prefix),
        ],
        group_id=settings.group_id("expiry"),
        title="expiry",
        description="Conversation starts and closes and flow expiration requests: each open"
        " conversation's deadline.",
    )

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        await ensure_topics(settings)
        schema = settings.schema("expiry")
        recorder = await anyio.to_thread.run_sync(open_recorder, settings, "expiry", ExpiryRecorder)
        store = EventStore(recorder, registry)
        timer = ExpiryTimer(recorder, DeadlineFirer(store), clock or SystemClock())
        deadlines.bind(
            DeadlineHandler(
                store,
                max_age=timedelta(seconds=settings.expiry_max_age_seconds),
                deadline_set=timer.deadline_set,
            )
        )
        task = asyncio.create_task(
            timer.run(settings.database().conninfo(), f"switchboard-expiry-timer:{schema}")
        )
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            recorder.datastore.close()

    return FastStream(broker, lifespan=lifespan)
