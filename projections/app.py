"""Composition root of the projector process: every event topic into the read models."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
import structlog
from faststream import FastStream

from events.catalogue import (
    ASSIGNMENT_EVENTS_TOPIC,
    CONVERSATION_EVENTS_TOPIC,
    CONVERSATION_NOTES_TOPIC,
    CONVERSATION_READS_TOPIC,
    DIRECTORY_CREDENTIALS_TOPIC,
    DIRECTORY_EVENTS_TOPIC,
    EXPIRY_EVENTS_TOPIC,
    FLOW_EVENTS_TOPIC,
    HAND_OFF_REQUESTS_TOPIC,
    OUTBOUND_EVENTS_TOPIC,
    OUTBOUND_MESSAGES_TOPIC,
    build_registry,
)
from events.envelope import Envelope
from projections.recorder import ProjectionRecorder
from runtime.kafka import ensure_topics
from runtime.legacy import StoreBackedHandler, TrackedRuntime, subscribe_tracked
from runtime.legacy import legacy_broker as new_broker
from runtime.postgres import open_datastore, schema_lock
from runtime.records import Delivery
from runtime.store import EventStore
from services.settings import Settings

# Every topic whose events show in a read model: the history holds bot turns, flow steps,
# hand-offs, assignment decisions and delivery statuses next to the customer's messages; the
# inbox adds members' read markers and the expiry service's deadlines.
PROJECTED_TOPICS = (
    CONVERSATION_EVENTS_TOPIC,
    CONVERSATION_NOTES_TOPIC,  # members' private notes: the projector alone reads them
    CONVERSATION_READS_TOPIC,
    DIRECTORY_EVENTS_TOPIC,
    DIRECTORY_CREDENTIALS_TOPIC,  # restricted: the projector authenticates for the gateway
    EXPIRY_EVENTS_TOPIC,
    FLOW_EVENTS_TOPIC,
    HAND_OFF_REQUESTS_TOPIC,
    ASSIGNMENT_EVENTS_TOPIC,
    OUTBOUND_MESSAGES_TOPIC,
    OUTBOUND_EVENTS_TOPIC,
)


log = structlog.get_logger(__name__)


class ProjectionHandler(StoreBackedHandler):
    name = "projector"

    def __init__(self, recorder: ProjectionRecorder, store: EventStore) -> None:
        self.recorder = recorder
        self.store = store

    def handle(self, delivery: Delivery, envelope: Envelope) -> None:
        self.recorder.project(envelope, delivery.tracking)


def open_recorder(settings: Settings) -> ProjectionRecorder:
    datastore = open_datastore(settings, settings.schema("projections"))
    recorder = ProjectionRecorder(datastore)
    with schema_lock(settings, datastore.schema):
        if recorder.replace_outdated():
            log.warning("read models were built by an older version; rebuilding from offset zero")
        recorder.create_table()
    return recorder


def create_app(settings: Settings) -> FastStream:
    registry = build_registry()
    broker = new_broker(settings, client_id="switchboard-projector")
    runtime = TrackedRuntime("projector", registry)
    subscribe_tracked(
        broker,
        runtime,
        topics=[topic.qualified(settings.topic_prefix) for topic in PROJECTED_TOPICS],
        group_id=settings.group_id("projector"),
        title="projector",
        description="Conversation histories (bot turns and assignment decisions included), who"
        " holds each conversation, the directory's models and the feed of changes.",
    )

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        await ensure_topics(settings)
        recorder = await anyio.to_thread.run_sync(open_recorder, settings)
        runtime.bind(ProjectionHandler(recorder, EventStore(recorder, registry)))
        try:
            yield
        finally:
            recorder.datastore.close()

    return FastStream(broker, lifespan=lifespan)
