"""Composition root of the inbound consumer process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream import FastStream

from events.catalogue import (
    CONVERSATION_COMMANDS_TOPIC,
    DIRECTORY_EVENTS_TOPIC,
    WHATSAPP_INBOUND,
    build_registry,
)
from events.envelope import Envelope
from events.whatsapp import WhatsAppMessageReceived, WhatsAppStatusReceived
from services.consumer import Delivery, TrackedRuntime, tracking_name
from services.inbound.handlers import DirectoryViewHandler, InboundHandler
from services.inbound.routes import InboundRecorder
from services.kafka import ensure_topics, new_broker, subscribe_tracked
from services.postgres import create_tables, open_datastore
from services.settings import Settings
from services.store import EventStore

ROUTE_WAIT_SECONDS = 15.0


def create_app(settings: Settings) -> FastStream:
    registry = build_registry()
    broker = new_broker(settings, client_id="switchboard-inbound")
    records = TrackedRuntime("inbound", registry)
    directory_view = TrackedRuntime("inbound.directory-view", registry)
    subscribe_tracked(
        broker,
        records,
        topics=[
            WHATSAPP_INBOUND.qualified(settings.topic_prefix),
            CONVERSATION_COMMANDS_TOPIC.qualified(settings.topic_prefix),
        ],
        group_id=settings.group_id("inbound"),
        title="inbound",
        description="Webhook records and conversation commands become Conversation events.",
    )
    subscribe_tracked(
        broker,
        directory_view,
        topics=[DIRECTORY_EVENTS_TOPIC.qualified(settings.topic_prefix)],
        group_id=settings.group_id("inbound.directory-view"),
        title="inbound.directory-view",
        description="Which workspace owns which business number, for routing.",
    )

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        await ensure_topics(settings)
        datastore = await anyio.to_thread.run_sync(
            lambda: open_datastore(settings, settings.schema("inbound"))
        )
        recorder = InboundRecorder(datastore)
        await anyio.to_thread.run_sync(create_tables, settings, recorder)
        store = EventStore(recorder, registry)
        offsets = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None)
        await offsets.start()
        waiter = RouteWaiter(settings, store, recorder, offsets)
        records.bind(InboundHandler(store, recorder), before_handle=waiter)
        directory_view.bind(DirectoryViewHandler(store, recorder))
        try:
            yield
        finally:
            await offsets.stop()
            datastore.close()

    return FastStream(broker, lifespan=lifespan)


class RouteWaiter:
    """Before a record for an unknown number is called unrouted, let the view catch up.

    The directory's events and the webhooks travel on different topics, so a webhook can
    overtake the event that connected its number. A record is unrouted only once this
    service has read every directory event that existed when it looked.
    """

    def __init__(
        self,
        settings: Settings,
        store: EventStore,
        recorder: InboundRecorder,
        offsets: AIOKafkaConsumer,
    ) -> None:
        topic = DIRECTORY_EVENTS_TOPIC.qualified(settings.topic_prefix)
        self.partitions = [
            TopicPartition(topic, index) for index in range(DIRECTORY_EVENTS_TOPIC.partitions)
        ]
        self.store = store
        self.recorder = recorder
        self.offsets = offsets

    async def __call__(self, delivery: Delivery, envelope: Envelope) -> None:
        payload = envelope.payload
        if not isinstance(payload, WhatsAppMessageReceived | WhatsAppStatusReceived):
            return
        deadline = time.monotonic() + ROUTE_WAIT_SECONDS
        while True:
            route = await anyio.to_thread.run_sync(self.recorder.route, payload.phone_number_id)
            if route is not None or await self._caught_up():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    "the directory view is behind the directory.events topic; "
                    f"cannot tell yet who owns {payload.phone_number_id}"
                )
            await asyncio.sleep(0.1)

    async def _caught_up(self) -> bool:
        ends = await self.offsets.end_offsets(self.partitions)

        def read_positions() -> dict[TopicPartition, int]:
            return {
                tp: self.store.position(tracking_name(tp.topic, tp.partition)) or 0
                for tp in self.partitions
            }

        positions = await anyio.to_thread.run_sync(read_positions)
        return all(positions[tp] >= ends[tp] for tp in self.partitions)
