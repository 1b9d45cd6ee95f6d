"""SIGKILL of the dispatcher mid-burst: no message reaches Meta twice, none is lost.

``switchboard run dispatcher`` and ``switchboard run relay`` run as OS processes; the Graph
API is the fake one (a real HTTP server in this test process), which counts every request
it receives. 500 messages are queued over 50 conversations whose windows are open.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from events.catalogue import (
    CONVERSATION_EVENTS_TOPIC,
    OUTBOUND_EVENTS_TOPIC,
    OUTBOUND_MESSAGES_TOPIC,
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
)
from runtime.kafka import ensure_topics
from services.settings import Settings
from tests.fake_graph import FakeGraphApi, Reply
from tests.harness import REGISTRY, Processes, eventually, query, topic_records

pytestmark = pytest.mark.e2e
CONVERSATIONS = 50
PER_CONVERSATION = 10
TOTAL = CONVERSATIONS * PER_CONVERSATION
NUMBER = "480112093385611"
OUTCOMES = (
    OutboundMessageSent.event_type,
    OutboundMessageFailed.event_type,
    OutboundOutcomeUnknown.event_type,
    OutboundMessageRefused.event_type,
)


def wrap(payload: CustomerMessageReceived | OutboundMessageQueued, at: datetime) -> Envelope:
    return Envelope.wrap(
        payload,
        event_id=uuid.uuid4(),
        stream_id=str(payload.conversation_id),
        workspace_id=uuid.UUID(int=42),
        occurred_at=at,
        correlation_id=uuid.uuid4(),
        causation_id=None,
        actor=Actor(kind="bot"),
    )


async def publish_burst(settings: Settings) -> tuple[dict[str, uuid.UUID], dict[uuid.UUID, str]]:
    """Open 50 windows, queue 500 messages: the message id of each text, the conversations."""
    now = datetime.now(UTC)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    ids: dict[str, uuid.UUID] = {}
    conversations: dict[uuid.UUID, str] = {}
    try:
        for c in range(CONVERSATIONS):
            conversation, to = uuid.uuid4(), f"5732{c:06d}"
            wrote = CustomerMessageReceived(
                conversation_id=conversation,
                wamid=f"wamid.in.{c}",
                sequence=1,
                kind="text",
                text="hola",
                reply_id=None,
                content={"body": "hola"},
                context_wamid=None,
                sent_at=now - timedelta(minutes=1),
            )
            await producer.send(
                CONVERSATION_EVENTS_TOPIC.qualified(settings.topic_prefix),
                encode(wrap(wrote, wrote.sent_at)),
                key=str(conversation).encode(),
            )
            for n in range(PER_CONVERSATION):
                text = f"m{c}.{n}"
                queued = OutboundMessageQueued(
                    message_id=uuid.uuid4(),
                    conversation_id=conversation,
                    sequence=n + 1,
                    phone_number_id=NUMBER,
                    to=to,
                    kind="text",
                    text=text,
                    options=[],
                    list_button=None,
                    template=None,
                    author="bot",
                    author_id=None,
                    queued_at=now,
                )
                ids[text] = queued.message_id
                conversations[queued.message_id] = str(conversation)
                await producer.send(
                    OUTBOUND_MESSAGES_TOPIC.qualified(settings.topic_prefix),
                    encode(wrap(queued, now)),
                    key=str(conversation).encode(),
                )
        await producer.flush()
    finally:
        await producer.stop()
    return ids, conversations


async def test_sigkill_of_the_dispatcher_mid_burst_sends_nothing_twice_and_loses_nothing(
    e2e_env: dict[str, str], tmp_path: Path
) -> None:
    with FakeGraphApi(default=Reply.ok(delay=0.02)) as graph:
        env = {
            **e2e_env,
            "WHATSAPP_API_BASE_URL": graph.base_url,
            "WHATSAPP_ACCESS_TOKEN": "e2e-token",
        }
        settings = Settings.from_env(env)
        await ensure_topics(settings)
        ids, conversations = await publish_burst(settings)
        processes = Processes(env, tmp_path)
        try:
            processes.start("dispatcher")
            processes.start("relay")

            async def received() -> int:
                return len(graph.received)

            await eventually(received, lambda n: n >= 150, within=90, interval=0.005)
            processes.kill("dispatcher")
            at_kill = len(graph.received)
            processes.start("dispatcher")

            async def settled() -> int:
                rows = await query(
                    settings,
                    "dispatcher",
                    "SELECT count(DISTINCT originator_id) AS n FROM {s}.events"
                    " WHERE topic = ANY(%s)",
                    list(OUTCOMES),
                )
                return int(rows[0]["n"])

            await eventually(settled, lambda n: n >= TOTAL, within=180, interval=0.2)
            relayed = await eventually(
                lambda: topic_records(settings, OUTBOUND_EVENTS_TOPIC),
                lambda found: len({e.event_id for e in found if e.event_type in OUTCOMES}) >= TOTAL,
                within=60,
                interval=0.5,
            )
            dispatcher_log = processes.log("dispatcher")
        finally:
            processes.stop_all()
        requests = graph.received

    assert at_kill < TOTAL, "the kill came after the burst: it proved nothing"

    # At most once: no message reached the Graph API twice, and only the bearer's.
    per_text = Counter(request.text for request in requests)
    assert set(per_text) <= set(ids)
    assert max(per_text.values()) == 1, per_text.most_common(3)
    assert {request.authorization for request in requests} == {"Bearer e2e-token"}

    rows = await query(
        settings,
        "dispatcher",
        "SELECT originator_id, topic, state FROM {s}.events ORDER BY originator_id,"
        " originator_version",
    )
    streams: dict[uuid.UUID, list[Envelope]] = {}
    for row in rows:
        streams.setdefault(row["originator_id"], []).append(decode(bytes(row["state"]), REGISTRY))
    assert set(streams) == set(ids.values()), "a message was lost or a stranger appeared"
    # Exactly one outcome each, after exactly one attempt (nothing was attempted again).
    for message_id, events in streams.items():
        types = [event.event_type for event in events]
        assert types[0] == "outbound.send_attempted", (message_id, types)
        assert len(types) == 2, (message_id, types)
        assert types[1] in (OutboundMessageSent.event_type, OutboundOutcomeUnknown.event_type)

    outcomes = [events[-1].payload for events in streams.values()]
    unknown = [o for o in outcomes if isinstance(o, OutboundOutcomeUnknown)]
    sent = [o for o in outcomes if isinstance(o, OutboundMessageSent)]
    # Only the message in flight at the kill (if the kill caught one in flight).
    assert len(unknown) <= 1, unknown
    assert all(u.reason.startswith("attempted before a crash") for u in unknown)
    assert len(sent) == TOTAL - len(unknown)
    if unknown:
        assert "sends left without a result by a crash" in dispatcher_log

    # Every Sent names the wamid Meta answered to that very message.
    wamid_of = {ids[r.text]: r.wamid for r in requests if r.text is not None}
    assert all(wamid_of[s.message_id] == s.wamid for s in sent)
    # Meta saw every sent message and at most the one whose outcome is unknown besides.
    assert len(requests) in (len(sent), len(sent) + 1)

    # Each conversation's messages reached Meta in the order they were queued.
    for to in {r.to for r in requests}:
        texts = [r.text for r in requests if r.to == to]
        assert texts == sorted(texts, key=lambda text: int(str(text).split(".")[1]))

    # The relay published each outcome, keyed by conversation.
    stored_outcomes = {events[-1].event_id: message for message, events in streams.items()}
    relayed_outcomes = {e.event_id: e for e in relayed if e.event_type in OUTCOMES}
    assert set(relayed_outcomes) == set(stored_outcomes)
    assert all(
        e.stream_id == conversations[stored_outcomes[event_id]]
        for event_id, e in relayed_outcomes.items()
    )
