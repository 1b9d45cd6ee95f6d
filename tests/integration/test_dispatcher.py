"""The dispatcher in-process on the real Kafka broker and PostgreSQL, against a fake Graph API.

Records are published straight to ``conversation.events`` and ``outbound.messages`` (as the
inbound and flows services would); the fake Graph API is a real HTTP server that records
every request. What the dispatcher decided is read from its own store.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
import pytest
from aiokafka import AIOKafkaProducer
from eventsourcing.persistence import Tracking

from events.base import Payload
from events.catalogue import (
    CONVERSATION_EVENTS_TOPIC,
    OUTBOUND_EVENTS_TOPIC,
    OUTBOUND_MESSAGES_TOPIC,
    Topic,
)
from events.codec import decode, encode
from events.conversation import CustomerMessageReceived
from events.envelope import Actor, Envelope
from events.outbound import (
    OutboundMessageFailed,
    OutboundMessageQueued,
    OutboundMessageRefused,
    OutboundMessageSent,
    OutboundOutcomeUnknown,
    OutboundSendAttempted,
    ReplyOption,
    RetryOutboundMessage,
)
from runtime.kafka import ensure_topics
from runtime.postgres import create_tables, open_datastore
from runtime.records import tracking_name
from runtime.relay.app import run_relays
from runtime.store import EventStore, NewEvent
from services.dispatcher.app import create_app
from services.dispatcher.recorder import DispatcherRecorder
from services.settings import Settings
from tests.fake_graph import FakeGraphApi, Reply
from tests.harness import REGISTRY, eventually, free_port, query, topic_records

pytestmark = pytest.mark.integration
NUMBER = "480112093385611"
TOKEN = "test-graph-token"
WORKSPACE = uuid.uuid4()
OUTCOMES = {
    OutboundMessageSent.event_type,
    OutboundMessageFailed.event_type,
    OutboundOutcomeUnknown.event_type,
    OutboundMessageRefused.event_type,
}


@pytest.fixture
def graph() -> Iterator[FakeGraphApi]:
    with FakeGraphApi() as fake:
        yield fake


@pytest.fixture
def dispatch_settings(settings: Settings, graph: FakeGraphApi) -> Settings:
    return replace(
        settings,
        whatsapp_api_base_url=graph.base_url,
        whatsapp_access_token=TOKEN,
        dispatch_max_attempts=3,
        dispatch_backoff_seconds=0.01,
        dispatch_timeout_seconds=1.0,
    )


@asynccontextmanager
async def dispatcher(settings: Settings) -> AsyncIterator[None]:
    app = create_app(settings)
    async with app.lifespan_context():
        await app.start()
        try:
            yield
        finally:
            await app.stop()


class Upstream:
    """Publishes what the inbound and flows services would, and reads the dispatcher's store."""

    def __init__(self, settings: Settings, producer: AIOKafkaProducer) -> None:
        self.settings = settings
        self.producer = producer

    async def publish(self, topic: Topic, envelope: Envelope) -> tuple[int, int]:
        """The record's partition and offset."""
        metadata = await self.producer.send_and_wait(
            topic.qualified(self.settings.topic_prefix),
            encode(envelope),
            key=envelope.stream_id.encode(),
        )
        return metadata.partition, metadata.offset

    async def customer_wrote(self, conversation: uuid.UUID, at: datetime) -> None:
        message = customer_message(conversation, at)
        await self.publish(
            CONVERSATION_EVENTS_TOPIC,
            envelope(message, str(conversation), at, Actor(kind="customer", id="5731")),
        )

    async def queue(self, request: OutboundMessageQueued) -> Envelope:
        queued = envelope(request, str(request.conversation_id), request.queued_at, BOT)
        await self.publish(OUTBOUND_MESSAGES_TOPIC, queued)
        return queued

    async def retry(self, request: OutboundMessageQueued, at: datetime) -> None:
        command = RetryOutboundMessage(
            message_id=request.message_id,
            conversation_id=request.conversation_id,
            requested_by="member-1",
        )
        await self.publish(
            OUTBOUND_MESSAGES_TOPIC,
            envelope(command, str(request.conversation_id), at, Actor(kind="member", id="m1")),
        )

    async def stream(self, message_id: uuid.UUID) -> list[Envelope]:
        rows = await query(
            self.settings,
            "dispatcher",
            "SELECT state FROM {s}.events WHERE originator_id = %s ORDER BY originator_version",
            message_id,
        )
        return [decode(bytes(row["state"]), REGISTRY) for row in rows]

    async def outcome(self, message_id: uuid.UUID, *, count: int = 1) -> list[Payload]:
        """The message's events once its ``count``-th outcome is recorded."""

        async def payloads() -> list[Payload]:
            return [item.payload for item in await self.stream(message_id)]

        return await eventually(
            payloads, lambda found: sum(p.event_type in OUTCOMES for p in found) >= count
        )


BOT = Actor(kind="bot")


def envelope(payload: Payload, stream_id: str, at: datetime, actor: Actor) -> Envelope:
    return Envelope.wrap(
        payload,
        event_id=uuid.uuid4(),
        stream_id=stream_id,
        workspace_id=WORKSPACE,
        occurred_at=at,
        correlation_id=uuid.uuid4(),
        causation_id=None,
        actor=actor,
    )


def customer_message(conversation: uuid.UUID, at: datetime) -> CustomerMessageReceived:
    return CustomerMessageReceived(
        conversation_id=conversation,
        wamid=f"wamid.in.{uuid.uuid4().hex}",
        sequence=1,
        kind="text",
        text="hola",
        reply_id=None,
        content={"body": "hola"},
        context_wamid=None,
        sent_at=at,
    )


def request(
    conversation: uuid.UUID,
    to: str,
    *,
    kind: Any = "text",
    text: str = "¿En qué te ayudo?",
    at: datetime | None = None,
    sequence: int = 1,
    **fields: Any,
) -> OutboundMessageQueued:
    values: dict[str, Any] = {
        "message_id": uuid.uuid4(),
        "conversation_id": conversation,
        "sequence": sequence,
        "phone_number_id": NUMBER,
        "to": to,
        "kind": kind,
        "text": text,
        "options": [],
        "list_button": None,
        "template": None,
        "author": "bot",
        "author_id": None,
        "queued_at": at or datetime.now(UTC),
    }
    return OutboundMessageQueued(**(values | fields))


@pytest.fixture
async def upstream(dispatch_settings: Settings) -> AsyncIterator[Upstream]:
    await ensure_topics(dispatch_settings)
    producer = AIOKafkaProducer(bootstrap_servers=dispatch_settings.kafka_bootstrap)
    await producer.start()
    try:
        yield Upstream(dispatch_settings, producer)
    finally:
        await producer.stop()


def contact() -> str:
    return "57" + str(uuid.uuid4().int)[:10]


def kinds(payloads: list[Payload]) -> list[str]:
    return [type(payload).__name__ for payload in payloads]


async def test_every_kind_goes_out_in_order_once_with_metas_wamid(
    upstream: Upstream, graph: FakeGraphApi, dispatch_settings: Settings
) -> None:
    conversation, to = uuid.uuid4(), contact()
    await upstream.customer_wrote(conversation, datetime.now(UTC) - timedelta(minutes=1))
    options = [ReplyOption(id="ventas", title="Ventas"), ReplyOption(id="soporte", title="Soporte")]
    messages = [
        request(conversation, to, sequence=1, text="Hola"),
        request(conversation, to, sequence=2, kind="buttons", options=options),
        request(conversation, to, sequence=3, kind="list", options=options, list_button="Elegir"),
        request(
            conversation,
            to,
            sequence=4,
            kind="template",
            text="order_update",
            template={"language": {"code": "es"}},
        ),
    ]
    queued = [await upstream.queue(message) for message in messages]
    relay = asyncio.create_task(run_relays(dispatch_settings, stores=("dispatcher",)))
    try:
        async with dispatcher(dispatch_settings):
            outcomes = [await upstream.outcome(message.message_id) for message in messages]
            relayed = await eventually(
                lambda: topic_records(dispatch_settings, OUTBOUND_EVENTS_TOPIC),
                lambda found: len(found) >= 8,
            )
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay

    received = graph.received
    assert [(r.body["type"], r.body.get("interactive", {}).get("type")) for r in received] == [
        ("text", None),
        ("interactive", "button"),
        ("interactive", "list"),
        ("template", None),
    ]
    assert {r.path for r in received} == {f"/v21.0/{NUMBER}/messages"}
    assert {r.authorization for r in received} == {f"Bearer {TOKEN}"}
    assert received[0].body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "biz_opaque_callback_data": str(conversation),
        "type": "text",
        "text": {"body": "Hola"},
    }
    assert received[3].body["template"] == {"name": "order_update", "language": {"code": "es"}}
    for events, answered in zip(outcomes, received, strict=True):
        assert kinds(events) == ["OutboundSendAttempted", "OutboundMessageSent"]
        sent = events[1]
        assert isinstance(sent, OutboundMessageSent)
        assert (sent.wamid, sent.attempts) == (answered.wamid, 1)

    # Relayed to outbound.events, keyed by conversation, caused by the queued records.
    assert len(relayed) == 8
    assert {item.stream_id for item in relayed} == {str(conversation)}
    assert {item.workspace_id for item in relayed} == {WORKSPACE}
    first_attempt = next(item for item in relayed if item.payload == outcomes[0][0])
    assert first_attempt.causation_id == queued[0].event_id
    assert first_attempt.correlation_id == queued[0].correlation_id


async def test_free_text_outside_the_window_is_refused_and_a_new_message_reopens_it(
    upstream: Upstream, graph: FakeGraphApi, dispatch_settings: Settings
) -> None:
    conversation, to = uuid.uuid4(), contact()
    wrote = datetime(2026, 3, 2, 9, tzinfo=UTC)
    await upstream.customer_wrote(conversation, wrote)
    late_text = request(conversation, to, at=wrote + timedelta(hours=25), text="¿Sigues ahí?")
    template = request(
        conversation,
        to,
        kind="template",
        text="follow_up",
        template={"language": {"code": "es"}},
        at=wrote + timedelta(hours=25),
        sequence=2,
    )
    await upstream.queue(late_text)
    await upstream.queue(template)
    async with dispatcher(dispatch_settings):
        [refused] = await upstream.outcome(late_text.message_id)
        assert isinstance(refused, OutboundMessageRefused)
        assert "outside the 24-hour customer-service window" in refused.reason
        assert "25.0 hours before" in refused.reason
        assert refused.refused_at == late_text.queued_at
        assert kinds(await upstream.outcome(template.message_id))[-1] == "OutboundMessageSent"

        # The customer writes again: the window opens anew for a message queued after it.
        await upstream.customer_wrote(conversation, wrote + timedelta(hours=26))
        reply = request(conversation, to, at=wrote + timedelta(hours=26, minutes=1), sequence=3)
        await upstream.queue(reply)
        assert kinds(await upstream.outcome(reply.message_id))[-1] == "OutboundMessageSent"

    assert [(r.body["type"], r.text) for r in graph.received] == [
        ("template", None),
        ("text", "¿En qué te ayudo?"),
    ]


async def test_a_reply_is_not_refused_because_the_window_view_lags_behind(
    upstream: Upstream, graph: FakeGraphApi, dispatch_settings: Settings
) -> None:
    """The customer's message is far down conversation.events when the reply arrives."""
    now = datetime.now(UTC)
    for _ in range(1500):
        await upstream.producer.send(
            CONVERSATION_EVENTS_TOPIC.qualified(dispatch_settings.topic_prefix),
            encode(
                envelope(
                    customer_message(uuid.uuid4(), now),
                    "x",
                    now,
                    BOT,
                )
            ),
            key=uuid.uuid4().bytes,
        )
    await upstream.producer.flush()
    conversation, to = uuid.uuid4(), contact()
    await upstream.customer_wrote(conversation, now)
    reply = request(conversation, to, at=now + timedelta(seconds=1))
    await upstream.queue(reply)
    async with dispatcher(dispatch_settings):
        events = await upstream.outcome(reply.message_id)
    assert kinds(events) == ["OutboundSendAttempted", "OutboundMessageSent"]
    assert len(graph.received_to(to)) == 1


async def test_throttled_then_accepted_is_sent_on_the_second_attempt(
    upstream: Upstream, graph: FakeGraphApi, dispatch_settings: Settings
) -> None:
    conversation, to = uuid.uuid4(), contact()
    graph.script(to, Reply.throttled(), Reply.ok())
    await upstream.customer_wrote(conversation, datetime.now(UTC))
    message = request(conversation, to)
    await upstream.queue(message)
    async with dispatcher(dispatch_settings):
        events = await upstream.outcome(message.message_id)
    assert kinds(events) == [
        "OutboundSendAttempted",
        "OutboundSendAttempted",
        "OutboundMessageSent",
    ]
    assert [e.attempt for e in events if isinstance(e, OutboundSendAttempted)] == [1, 2]
    assert isinstance(events[-1], OutboundMessageSent)
    assert events[-1].attempts == 2
    assert [r.status for r in graph.received_to(to)] == [429, 200]
    assert events[-1].wamid == graph.received_to(to)[1].wamid


async def test_server_errors_until_the_limit_fail_with_the_reason(
    upstream: Upstream, graph: FakeGraphApi, dispatch_settings: Settings
) -> None:
    conversation, to = uuid.uuid4(), contact()
    graph.script(to, Reply.server_error(500), Reply.server_error(503), Reply.server_error(500))
    await upstream.customer_wrote(conversation, datetime.now(UTC))
    message = request(conversation, to)
    await upstream.queue(message)
    async with dispatcher(dispatch_settings):
        events = await upstream.outcome(message.message_id)
        await asyncio.sleep(0.3)  # a fourth request would show now
    assert kinds(events) == ["OutboundSendAttempted"] * 3 + ["OutboundMessageFailed"]
    failure = events[-1]
    assert isinstance(failure, OutboundMessageFailed)
    assert failure.reason.startswith("gave up after 3 attempts; last: HTTP 500")
    assert (failure.http_status, failure.attempts) == (500, 3)
    assert failure.error is not None
    assert failure.error["code"] == 131000
    assert len(graph.received_to(to)) == 3


async def test_an_unreachable_graph_api_is_retried_then_failed_without_a_status(
    upstream: Upstream, dispatch_settings: Settings
) -> None:
    closed = replace(
        dispatch_settings, whatsapp_api_base_url=f"http://127.0.0.1:{free_port()}/v21.0"
    )
    conversation = uuid.uuid4()
    await upstream.customer_wrote(conversation, datetime.now(UTC))
    message = request(conversation, contact())
    await upstream.queue(message)
    async with dispatcher(closed):
        events = await upstream.outcome(message.message_id)
    failure = events[-1]
    assert isinstance(failure, OutboundMessageFailed)
    assert (failure.http_status, failure.attempts) == (None, 3)
    assert "the Graph API was not reached: ConnectError" in failure.reason


async def test_a_400_fails_at_once_with_metas_error_and_a_retry_request_sends_it_again(
    upstream: Upstream, graph: FakeGraphApi, dispatch_settings: Settings
) -> None:
    conversation, to = uuid.uuid4(), contact()
    graph.script(to, Reply.bad_request(131030, "Recipient not allowed"))
    await upstream.customer_wrote(conversation, datetime.now(UTC))
    message = request(conversation, to)
    await upstream.queue(message)
    async with dispatcher(dispatch_settings):
        events = await upstream.outcome(message.message_id)
        assert kinds(events) == ["OutboundSendAttempted", "OutboundMessageFailed"]
        failure = events[-1]
        assert isinstance(failure, OutboundMessageFailed)
        assert failure.http_status == 400
        assert failure.error == Reply.bad_request(131030, "Recipient not allowed").body["error"]  # type: ignore[index]
        assert "Meta refused the message: HTTP 400: (#131030) Recipient not allowed" in (
            failure.reason
        )
        assert len(graph.received_to(to)) == 1

        await upstream.retry(message, datetime.now(UTC))
        events = await upstream.outcome(message.message_id, count=2)
        assert kinds(events)[2:] == ["OutboundSendAttempted", "OutboundMessageSent"]
        attempt = events[2]
        assert isinstance(attempt, OutboundSendAttempted)
        assert attempt.attempt == 2

        # A retry request for a sent message does nothing (the marker proves it was read).
        await upstream.retry(message, datetime.now(UTC))
        marker = request(conversation, to, sequence=2, text="marker")
        await upstream.queue(marker)
        await upstream.outcome(marker.message_id)
    assert len(await upstream.stream(message.message_id)) == 4
    assert [r.text for r in graph.received_to(to)] == [
        "¿En qué te ayudo?",
        "¿En qué te ayudo?",
        "marker",
    ]


async def test_no_answer_is_an_unknown_outcome_never_resent_until_a_retry_request(
    upstream: Upstream, graph: FakeGraphApi, dispatch_settings: Settings
) -> None:
    conversation, to = uuid.uuid4(), contact()
    graph.script(to, Reply.ok(delay=2.5))  # the dispatcher gives up reading after 1 s
    await upstream.customer_wrote(conversation, datetime.now(UTC))
    message = request(conversation, to)
    await upstream.queue(message)
    async with dispatcher(dispatch_settings):
        events = await upstream.outcome(message.message_id)
        assert kinds(events) == ["OutboundSendAttempted", "OutboundOutcomeUnknown"]
        unknown = events[-1]
        assert isinstance(unknown, OutboundOutcomeUnknown)
        assert "ReadTimeout" in unknown.reason
        await asyncio.sleep(2)
        assert len(graph.received_to(to)) == 1

        await upstream.retry(message, datetime.now(UTC))
        events = await upstream.outcome(message.message_id, count=2)
    assert kinds(events)[2:] == ["OutboundSendAttempted", "OutboundMessageSent"]
    assert len(graph.received_to(to)) == 2


async def test_a_duplicate_queued_record_does_nothing(
    upstream: Upstream, graph: FakeGraphApi, dispatch_settings: Settings
) -> None:
    conversation, to = uuid.uuid4(), contact()
    await upstream.customer_wrote(conversation, datetime.now(UTC))
    message = request(conversation, to)
    queued = await upstream.queue(message)
    for _ in range(2):  # a relay that published it again: the very same record
        await upstream.publish(OUTBOUND_MESSAGES_TOPIC, queued)
    marker = request(conversation, to, sequence=2, text="marker")
    async with dispatcher(dispatch_settings):
        await upstream.outcome(message.message_id)
        await upstream.queue(marker)
        await upstream.outcome(marker.message_id)
    stored = [item.payload for item in await upstream.stream(message.message_id)]
    assert kinds(stored) == ["OutboundSendAttempted", "OutboundMessageSent"]
    assert [r.text for r in graph.received_to(to)] == ["¿En qué te ayudo?", "marker"]


async def test_an_attempt_a_crash_left_without_result_becomes_unknown_and_is_not_resent(
    upstream: Upstream, graph: FakeGraphApi, dispatch_settings: Settings
) -> None:
    """The store as a dispatcher killed mid-call leaves it: attempt recorded, no result."""
    conversation, to = uuid.uuid4(), contact()
    await upstream.customer_wrote(conversation, datetime.now(UTC))
    message = request(conversation, to)
    queued = envelope(message, str(conversation), message.queued_at, BOT)
    partition, offset = await upstream.publish(OUTBOUND_MESSAGES_TOPIC, queued)
    source = tracking_name(
        OUTBOUND_MESSAGES_TOPIC.qualified(dispatch_settings.topic_prefix), partition
    )
    attempt = OutboundSendAttempted(
        message_id=message.message_id,
        conversation_id=conversation,
        attempt=1,
        attempted_at=datetime.now(UTC),
    )
    await anyio.to_thread.run_sync(
        seed_store, dispatch_settings, queued, source, Tracking(source, offset + 1), attempt
    )

    async with dispatcher(dispatch_settings):
        events = await upstream.outcome(message.message_id)
        assert kinds(events) == ["OutboundSendAttempted", "OutboundOutcomeUnknown"]
        unknown = events[-1]
        assert isinstance(unknown, OutboundOutcomeUnknown)
        assert unknown.reason.startswith("attempted before a crash")
        assert unknown.attempts == 1
        await asyncio.sleep(0.5)
        assert graph.received_to(to) == []

        await upstream.retry(message, datetime.now(UTC))
        events = await upstream.outcome(message.message_id, count=2)
    assert kinds(events)[2:] == ["OutboundSendAttempted", "OutboundMessageSent"]
    assert len(graph.received_to(to)) == 1


def seed_store(
    settings: Settings,
    queued: Envelope,
    source: str,
    tracking: Tracking,
    attempt: OutboundSendAttempted,
) -> None:
    datastore = open_datastore(settings, settings.schema("dispatcher"), pool_size=1)
    try:
        recorder = DispatcherRecorder(datastore)
        create_tables(settings, recorder)
        assert isinstance(queued.payload, OutboundMessageQueued)
        with datastore.transaction(commit=True) as cursor:
            recorder.remember_request(
                cursor,
                queued.payload.message_id,
                queued.payload.conversation_id,
                source,
                encode(queued),
            )
        attempted = queued.caused(
            [attempt],
            stream_of=lambda _: queued.stream_id,
            workspace_id=queued.workspace_id,
            occurred_at=attempt.attempted_at,
            actor=Actor(kind="system", id="dispatcher"),
        )[0]
        EventStore(recorder, REGISTRY).append(
            [NewEvent(queued.payload.message_id, 1, attempted)], tracking
        )
    finally:
        datastore.close()
