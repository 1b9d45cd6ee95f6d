"""Composition root of the dispatcher process (``switchboard run dispatcher``).

Two subscribers, one store (schema ``dispatcher``):

* ``outbound.messages`` (queued messages, retry requests) -> the send protocol
  (``handlers.OutboundHandler``), behind a wait for the windows view when it says the
  customer-service window is closed;
* ``conversation.events`` -> the ``windows`` view.

The relay publishes the store's events to ``outbound.events``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from uuid import UUID

import anyio.to_thread
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream import FastStream

from events.catalogue import (
    CONVERSATION_EVENTS_TOPIC,
    OUTBOUND_MESSAGES_TOPIC,
    build_registry,
)
from events.codec import Registry
from events.envelope import Envelope
from events.outbound import OutboundMessageQueued, RetryOutboundMessage
from runtime.kafka import ensure_topics
from runtime.legacy import TrackedRuntime, Waiter, subscribe_tracked
from runtime.legacy import legacy_broker as new_broker
from runtime.postgres import open_recorder
from runtime.records import Delivery, tracking_name
from runtime.store import EventStore
from runtime.views import CaughtUp, caught_up_with
from services.dispatcher.decide import FREE_FORM_KINDS, window_open
from services.dispatcher.graph import GraphApi
from services.dispatcher.handlers import OutboundHandler, WindowViewHandler
from services.dispatcher.recorder import DispatcherRecorder
from services.settings import Settings

log = structlog.get_logger(__name__)
WINDOW_WAIT_SECONDS = 15.0


def create_app(settings: Settings) -> FastStream:
    registry = build_registry()
    broker = new_broker(settings, client_id="switchboard-dispatcher")
    outbound = DispatchRuntime("dispatcher", registry)
    windows = TrackedRuntime("dispatcher.windows", registry)
    subscribe_tracked(
        broker,
        outbound,
        topics=[OUTBOUND_MESSAGES_TOPIC.qualified(settings.topic_prefix)],
        group_id=settings.group_id("dispatcher"),
        title="dispatcher",
        description="Queued outbound messages and retry requests, sent to the WhatsApp Cloud"
        " API at most once each.",
    )
    subscribe_tracked(
        broker,
        windows,
        topics=[CONVERSATION_EVENTS_TOPIC.qualified(settings.topic_prefix)],
        group_id=settings.group_id("dispatcher.windows"),
        title="dispatcher.windows",
        description="When each customer last wrote: the 24-hour customer-service window.",
    )

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        await ensure_topics(settings)
        recorder = await anyio.to_thread.run_sync(
            open_recorder, settings, "dispatcher", DispatcherRecorder
        )
        store = EventStore(recorder, registry)
        client = GraphApi.client_for(settings)
        try:
            async with caught_up_with(CONVERSATION_EVENTS_TOPIC, settings, store.position) as seen:
                outbound.bind_outbound(
                    OutboundHandler(
                        store,
                        recorder,
                        GraphApi(client),
                        max_attempts=settings.dispatch_max_attempts,
                        backoff_seconds=settings.dispatch_backoff_seconds,
                    ),
                    before_handle=WindowWaiter(recorder, seen),
                )
                windows.bind(WindowViewHandler(store, recorder))
                yield
        finally:
            client.close()
            recorder.datastore.close()

    return FastStream(broker, lifespan=lifespan)


class DispatchRuntime(TrackedRuntime):
    """The shared runtime, plus: on every assignment, settle the sends a crash left open.

    It runs after the seek and before any record of the new partitions is fetched, so a
    message attempted before a crash is called unknown before anything else happens to it.
    """

    def __init__(self, name: str, registry: Registry) -> None:
        super().__init__(name, registry)
        self._outbound: OutboundHandler | None = None

    def bind_outbound(self, handler: OutboundHandler, *, before_handle: Waiter) -> None:
        self.bind(handler, before_handle=before_handle)
        self._outbound = handler

    async def on_assigned(self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> None:
        await super().on_assigned(consumer, assigned)
        outbound = self._outbound
        if outbound is None:
            raise RuntimeError("the dispatcher was assigned partitions before start-up ended")
        names = sorted(tracking_name(tp.topic, tp.partition) for tp in assigned)
        await self._database(lambda: outbound.settle(names))


class WindowWaiter:
    """Before a free-form message is refused for a closed window, let the view catch up.

    The customer's message (on ``conversation.events``) and the reply queued because of it
    (on ``outbound.messages``) travel on different topics, so the reply can arrive first.
    The window is called closed only once this service has read every conversation event
    that existed when it looked.
    """

    def __init__(self, recorder: DispatcherRecorder, caught_up: CaughtUp) -> None:
        self.recorder = recorder
        self.caught_up = caught_up

    async def __call__(self, delivery: Delivery, envelope: Envelope) -> None:
        conversation: UUID
        at: datetime
        match envelope.payload:
            case OutboundMessageQueued(kind=kind, conversation_id=conversation, queued_at=at):
                if kind not in FREE_FORM_KINDS:
                    return
            case RetryOutboundMessage(conversation_id=conversation):
                at = envelope.occurred_at
            case _:
                return

        async def window_is_open() -> bool:
            last = await anyio.to_thread.run_sync(self.recorder.window, conversation)
            return window_open(last, at)

        await self.caught_up.believe_when(
            window_is_open,
            within=WINDOW_WAIT_SECONDS,
            what=f"whether the customer of conversation {conversation} wrote within 24 hours",
        )
