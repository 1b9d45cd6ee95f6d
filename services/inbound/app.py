"""Composition root of the inbound consumer process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from faststream import FastStream

from events.catalogue import (
    CONVERSATION_COMMANDS_TOPIC,
    DIRECTORY_EVENTS_TOPIC,
    WHATSAPP_INBOUND,
    build_registry,
)
from events.envelope import Envelope
from events.whatsapp import (
    WhatsAppMessageEchoed,
    WhatsAppMessageReceived,
    WhatsAppStatusReceived,
)
from services.consumer import Delivery, TrackedRuntime
from services.inbound.handlers import DirectoryViewHandler, InboundHandler
from services.inbound.routes import InboundRecorder
from services.kafka import ensure_topics, new_broker, subscribe_tracked
from services.postgres import open_recorder
from services.settings import Settings
from services.store import EventStore
from services.views import CaughtUp, caught_up_with

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
        recorder = await anyio.to_thread.run_sync(
            open_recorder, settings, "inbound", InboundRecorder
        )
        store = EventStore(recorder, registry)
        try:
            async with caught_up_with(DIRECTORY_EVENTS_TOPIC, settings, store.position) as seen:
                records.bind(
                    InboundHandler(store, recorder), before_handle=RouteWaiter(seen, recorder)
                )
                directory_view.bind(DirectoryViewHandler(store, recorder))
                yield
        finally:
            recorder.datastore.close()

    return FastStream(broker, lifespan=lifespan)


class RouteWaiter:
    """Before a record for an unknown number is called unrouted, let the view catch up.

    The directory's events and the webhooks travel on different topics, so a webhook can
    overtake the event that connected its number.
    """

    def __init__(self, caught_up: CaughtUp, recorder: InboundRecorder) -> None:
        self.caught_up = caught_up
        self.recorder = recorder

    async def __call__(self, delivery: Delivery, envelope: Envelope) -> None:
        payload = envelope.payload
        if not isinstance(
            payload, WhatsAppMessageReceived | WhatsAppMessageEchoed | WhatsAppStatusReceived
        ):
            return
        number = payload.phone_number_id

        async def routed() -> bool:
            return await anyio.to_thread.run_sync(self.recorder.route, number) is not None

        await self.caught_up.believe(
            routed, within=ROUTE_WAIT_SECONDS, what=f"who owns business number {number}"
        )
