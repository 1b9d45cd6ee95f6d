"""The dispatcher's handlers through the batch runtime on PostgreSQL, without Kafka.

Records go through ``runtime.consumer.Consumer`` exactly as fetched ones do (positions,
handled event ids, one unit of work per batch, after-commit calls); the Graph API is the
fake HTTP server. The handlers read their views through the unit of work's cursor, so these
tests need the database (the in-memory store has no SQL views).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from events.conversation import CustomerMessageReceived
from events.outbound import OutboundMessageQueued, OutboundSendAttempted
from runtime.consumer import Consumer
from runtime.postgres import open_recorder
from runtime.records import Delivery
from runtime.store import EventStore
from runtime.views import Complete
from services.dispatcher.graph import GraphApi
from services.dispatcher.handlers import OutboundHandler, WindowViewHandler
from services.dispatcher.recorder import DispatcherRecorder
from services.settings import Settings
from tests.fake_graph import FakeGraphApi
from tests.harness import REGISTRY
from tests.integration.test_dispatcher import BOT, TOKEN, contact, envelope, kinds, request
from tests.memory import Topic

pytestmark = pytest.mark.integration


class Dispatcher:
    """The dispatcher's two consumers on its PostgreSQL store, fed by hand."""

    def __init__(self, store: EventStore, recorder: DispatcherRecorder, graph: GraphApi) -> None:
        self.store = store
        self.handler = OutboundHandler(
            store, recorder, graph, Complete(), max_attempts=3, backoff_seconds=0.01
        )
        self.outbound = Consumer("dispatcher", REGISTRY)
        self.outbound.bind(store, self.handler)
        self.windows = Consumer("dispatcher.windows", REGISTRY)
        self.windows.bind(store, WindowViewHandler(recorder))
        self.messages = Topic("outbound.messages")
        self.conversations = Topic("conversation.events")

    def handle(self, consumer: Consumer, *deliveries: Delivery) -> None:
        """One batch committed, then what it asked to do after the commit (the calls)."""
        for callback in consumer.commit_batch([consumer.received(d) for d in deliveries]):
            callback()

    def kinds(self, message_id: uuid.UUID) -> list[str]:
        return kinds([e.payload for e in self.store.load(message_id).envelopes])


@pytest.fixture
def graph() -> Iterator[FakeGraphApi]:
    with FakeGraphApi() as fake:
        yield fake


@pytest.fixture
def dispatcher(settings: Settings, graph: FakeGraphApi) -> Iterator[Dispatcher]:
    settings = replace(settings, whatsapp_api_base_url=graph.base_url, whatsapp_access_token=TOKEN)
    recorder = open_recorder(settings, "dispatcher", DispatcherRecorder)
    client = GraphApi.client_for(settings)
    try:
        yield Dispatcher(EventStore(recorder, REGISTRY), recorder, GraphApi(client))
    finally:
        client.close()
        recorder.datastore.close()


def customer_wrote(dispatcher: Dispatcher, conversation: uuid.UUID) -> None:
    message = CustomerMessageReceived(
        conversation_id=conversation,
        wamid=f"wamid.in.{uuid.uuid4().hex}",
        sequence=1,
        kind="text",
        text="hola",
        reply_id=None,
        content={"body": "hola"},
        context_wamid=None,
        sent_at=datetime.now(UTC),
    )
    written = envelope(message, str(conversation), message.sent_at, BOT)
    dispatcher.handle(dispatcher.windows, dispatcher.conversations.record(written))


def test_a_queued_message_published_again_at_a_new_offset_is_not_sent_again(
    dispatcher: Dispatcher, graph: FakeGraphApi
) -> None:
    conversation, to = uuid.uuid4(), contact()
    customer_wrote(dispatcher, conversation)
    message = request(conversation, to)
    queued = envelope(message, str(conversation), message.queued_at, BOT)
    dispatcher.handle(dispatcher.outbound, dispatcher.messages.record(queued))
    assert dispatcher.kinds(message.message_id) == ["OutboundSendAttempted", "OutboundMessageSent"]

    # The relay publishes it again after a crash: the same event id at a later offset, in
    # a batch of its own and in a batch with a new message.
    again = dispatcher.messages.record(queued)
    dispatcher.handle(dispatcher.outbound, again)
    other = request(conversation, to, sequence=2, text="marker")
    dispatcher.handle(
        dispatcher.outbound,
        dispatcher.messages.record(queued),
        dispatcher.messages.record(envelope(other, str(conversation), other.queued_at, BOT)),
    )
    assert dispatcher.kinds(message.message_id) == ["OutboundSendAttempted", "OutboundMessageSent"]
    assert [r.text for r in graph.received_to(to)] == ["¿En qué te ayudo?", "marker"]
    assert dispatcher.store.position("outbound.messages#0") == 4


def test_a_customer_message_published_again_changes_no_window(
    dispatcher: Dispatcher, settings: Settings
) -> None:
    conversation = uuid.uuid4()
    customer_wrote(dispatcher, conversation)
    with dispatcher.store.work() as work:
        first = dispatcher.handler.recorder.window(work.cursor, conversation)
    assert first is not None
    later = CustomerMessageReceived(
        conversation_id=conversation,
        wamid="wamid.in.later",
        sequence=2,
        kind="text",
        text="¿sigues ahí?",
        reply_id=None,
        content={"body": "¿sigues ahí?"},
        context_wamid=None,
        sent_at=datetime.now(UTC),
    )
    record = envelope(later, str(conversation), later.sent_at, BOT)
    dispatcher.handle(dispatcher.windows, dispatcher.conversations.record(record))
    dispatcher.handle(dispatcher.windows, dispatcher.conversations.record(record))
    with dispatcher.store.work() as work:
        assert dispatcher.handler.recorder.window(work.cursor, conversation) == later.sent_at
    assert dispatcher.store.position("conversation.events#0") == 3


def test_a_send_staged_in_a_unit_of_work_that_rolled_back_is_not_kept_in_flight(
    dispatcher: Dispatcher, graph: FakeGraphApi
) -> None:
    """Otherwise a crash of the replica that then made the attempt would never be settled."""
    conversation, to = uuid.uuid4(), contact()
    customer_wrote(dispatcher, conversation)
    message = request(conversation, to)
    queued = envelope(message, str(conversation), message.queued_at, BOT)
    delivery = dispatcher.messages.record(queued)
    record = dispatcher.outbound.received(delivery)
    with dispatcher.store.work() as work:
        dispatcher.handler(work, record)  # type: ignore[arg-type]
        # ... and the batch fails before it commits (a conflict elsewhere in it).
    # Another replica handles the record, commits its attempt, and dies before the call.
    crashed = Dispatcher(
        dispatcher.store, dispatcher.handler.recorder, dispatcher.handler.graph
    ).outbound
    crashed.commit_batch([record])  # its after-commit call never runs

    settled = dispatcher.handler.settle([delivery.tracking_name])
    assert settled == [message.message_id]
    assert dispatcher.kinds(message.message_id) == [
        "OutboundSendAttempted",
        "OutboundOutcomeUnknown",
    ]
    assert graph.received_to(to) == []


def test_the_call_is_made_only_after_the_attempt_is_committed(
    dispatcher: Dispatcher, graph: FakeGraphApi
) -> None:
    conversation, to = uuid.uuid4(), contact()
    customer_wrote(dispatcher, conversation)
    message = request(conversation, to)
    queued = envelope(message, str(conversation), message.queued_at, BOT)
    calls: list[Callable[[], None]] = dispatcher.outbound.commit_batch(
        [dispatcher.outbound.received(dispatcher.messages.record(queued))]
    )
    assert graph.received_to(to) == []  # committed, not called yet
    attempted = [e.payload for e in dispatcher.store.load(message.message_id).envelopes]
    assert [type(p) for p in attempted] == [OutboundSendAttempted]
    assert isinstance(queued.payload, OutboundMessageQueued)
    for call in calls:
        call()
    assert len(graph.received_to(to)) == 1
    assert dispatcher.kinds(message.message_id) == ["OutboundSendAttempted", "OutboundMessageSent"]
