"""The metrics process: the service metrics projection, on its own, on the batch runtime.

A process of its own rather than a part of the projector: its schema (``metrics``), its
positions, its handled ids and its version are its own, so it is rebuilt, upgraded, scaled
and restarted without touching the other read models (and while the projector moves to the
batch runtime, neither waits for the other). Its store holds only the records it parks,
which the relay publishes to ``operations.dead_letters`` like every store's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import structlog
from faststream import FastStream

from events.catalogue import (
    ASSIGNMENT_EVENTS_TOPIC,
    CONVERSATION_EVENTS_TOPIC,
    DEAD_LETTERS,
    DIRECTORY_EVENTS_TOPIC,
    HAND_OFF_REQUESTS_TOPIC,
    OUTBOUND_MESSAGES_TOPIC,
)
from projections.metrics.tables import CONSUMER, MetricsRecorder, MetricsWriter
from runtime.app import consumer_app
from runtime.config import Connections
from runtime.postgres import open_datastore, schema_lock
from runtime.process import Binding, Context, Service, Subscription
from runtime.records import Record
from runtime.work import Work, cursor_of
from services.settings import Settings

log = structlog.get_logger(__name__)

# Hand-offs (assignment.requests), first assignments (assignment.events), replies and bot
# turns (outbound.messages), customer messages and closes (conversation.events), and each
# workspace's time zone (directory.events).
METRICS_TOPICS = (
    CONVERSATION_EVENTS_TOPIC,
    HAND_OFF_REQUESTS_TOPIC,
    ASSIGNMENT_EVENTS_TOPIC,
    OUTBOUND_MESSAGES_TOPIC,
    DIRECTORY_EVENTS_TOPIC,
)


def open_metrics_recorder(settings: Connections) -> MetricsRecorder:
    """Its store in schema ``metrics``; tables of an older version dropped first (the
    process then replays from offset zero)."""
    recorder = MetricsRecorder(open_datastore(settings, settings.schema(CONSUMER)))
    with schema_lock(settings, recorder.datastore.schema):
        if recorder.replace_outdated():
            log.warning("metrics were built by an older version; rebuilding from offset zero")
        recorder.create_table()
    return recorder


class MetricsHandler:
    """Thin: the fold is ``projections.metrics.fold``; this hands it the unit of work's cursor."""

    def __init__(self, writer: MetricsWriter) -> None:
        self.writer = writer

    def __call__(self, work: Work, record: Record) -> None:
        self.writer.project(cursor_of(work), record.envelope)


@asynccontextmanager
async def start(context: Context) -> AsyncIterator[Mapping[str, Binding]]:
    writer = MetricsWriter(context.store.recorder.datastore.schema)
    yield {CONSUMER: Binding(MetricsHandler(writer))}


SERVICE = Service(
    name=CONSUMER,
    open_recorder=open_metrics_recorder,
    subscriptions=(
        Subscription(
            CONSUMER,
            METRICS_TOPICS,
            "Service metrics per group, agent and day: hand-offs, queue waits, first"
            " responses, resolutions, closes by reason, messages in and out.",
        ),
    ),
    start=start,
    emits=(DEAD_LETTERS,),
)


def create_app(settings: Settings) -> FastStream:
    return consumer_app(SERVICE, settings)
