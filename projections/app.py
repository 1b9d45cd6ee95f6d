"""The projector process: every event topic into the read models, a batch per transaction.

It runs on the batch runtime (``runtime.consumer``) like every consumer: the records one poll
returned are handled in one unit of work, with every partition's position and the handled
event ids. Its handler only queues each record's event; as the unit of work commits, the
queued events are folded into the read models in that same transaction
(``ProjectionRecorder.fold``, set-based where the fold allows, ``projections.batch``). A
batch that fails is folded again record by record and a record that keeps failing is parked,
as for every consumer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from weakref import WeakKeyDictionary

import structlog
from faststream import FastStream
from psycopg import Cursor
from psycopg.rows import DictRow

from events.catalogue import (
    ASSIGNMENT_EVENTS_TOPIC,
    CONVERSATION_EVENTS_TOPIC,
    CONVERSATION_NOTES_TOPIC,
    CONVERSATION_READS_TOPIC,
    DEAD_LETTERS,
    DIRECTORY_CREDENTIALS_TOPIC,
    DIRECTORY_EVENTS_TOPIC,
    EXPIRY_EVENTS_TOPIC,
    FLOW_EVENTS_TOPIC,
    HAND_OFF_REQUESTS_TOPIC,
    OUTBOUND_EVENTS_TOPIC,
    OUTBOUND_MESSAGES_TOPIC,
)
from events.envelope import Envelope
from projections.recorder import ProjectionRecorder
from runtime.app import consumer_app
from runtime.config import Connections
from runtime.postgres import open_datastore, schema_lock
from runtime.process import Binding, Context, Service, Subscription
from runtime.records import Record
from runtime.work import Work, cursor_of
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


class Projector:
    """The projector's handler: queues each record's event in its unit of work, and folds
    the queue into the read models once, as that unit of work commits."""

    def __init__(self, recorder: ProjectionRecorder) -> None:
        self.recorder = recorder
        # The events queued in each open unit of work (gone with it, committed or not).
        self._queued: WeakKeyDictionary[Work, list[Envelope]] = WeakKeyDictionary()

    def __call__(self, work: Work, record: Record) -> None:
        queued = self._queued.get(work)
        if queued is None:
            queued = self._queued[work] = []
            cursor = cursor_of(work)
            events = queued  # the callback holds the list and cursor, not the unit of work
            work.before_commit(lambda: self._fold(cursor, events))
        queued.append(record.envelope)

    def _fold(self, cursor: Cursor[DictRow], events: list[Envelope]) -> None:
        batch = self.recorder.fold(cursor, events)
        log.debug("batch projected", events=len(events), statements=batch.statements)


def open_recorder(settings: Connections) -> ProjectionRecorder:
    datastore = open_datastore(settings, settings.schema("projections"))
    recorder = ProjectionRecorder(datastore)
    with schema_lock(settings, datastore.schema):
        if recorder.replace_outdated():
            log.warning("read models were built by an older version; rebuilding from offset zero")
        recorder.create_table()
    return recorder


@asynccontextmanager
async def start(context: Context) -> AsyncIterator[Mapping[str, Binding]]:
    recorder = context.store.recorder
    assert isinstance(recorder, ProjectionRecorder)
    yield {"projector": Binding(Projector(recorder))}


SERVICE = Service(
    name="projector",
    open_recorder=open_recorder,
    subscriptions=(
        Subscription(
            "projector",
            PROJECTED_TOPICS,
            "Conversation histories (bot turns and assignment decisions included), who holds"
            " each conversation, the directory's models and the feed of changes.",
        ),
    ),
    start=start,
    emits=(DEAD_LETTERS,),
)


def create_app(settings: Settings) -> FastStream:
    return consumer_app(SERVICE, settings)
