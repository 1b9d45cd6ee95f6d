"""Expiry on the real broker and database: flows' expirations, Meta's 24 hours, restarts.

The inbound, directory, flows and projector apps and the relay run in-process
(``tests.harness.consumers``); the expiry app runs beside them, started and stopped by each
test, with its own clock and maximum age. Conversations run the flow active when they start
(event time), so customers write in the present, after the flow was chosen.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from events.catalogue import CONVERSATION_EVENTS_TOPIC, EXPIRY_EVENTS_TOPIC
from events.codec import decode
from events.conversation import ConversationClosed, ConversationStarted
from events.expiry import ConversationExpired, DeadlineCancelled, DeadlineSet
from services.expiry.app import create_app as create_expiry
from services.expiry.timer import Clock
from services.settings import Settings
from services.workspaces import create_workspace
from tests.conftest import TEST_APP_SECRET
from tests.harness import REGISTRY, consumers, eventually, gateway_client, topic_records
from tests.webhooks import Text, messages_webhook, signed_headers

pytestmark = pytest.mark.integration
FLOW_NUMBER = "480112093385611"  # runs EXPIRING_FLOW
PLAIN_NUMBER = "480112093385622"  # no flow: handed to the default group, stays open
EXPIRING_FLOW: dict[str, Any] = {
    "name": "Expiring",
    "start": "greet",
    "blocks": [
        {"id": "greet", "type": "message", "text": "Hola", "next": "limit"},
        {"id": "limit", "type": "set_expiration", "after": "3s", "next": "ask"},
        {"id": "ask", "type": "question", "text": "¿Algo más?", "variable": "more", "next": "bye"},
        {"id": "bye", "type": "end", "text": "Gracias"},
    ],
}


class ShiftedClock:
    """The wall clock moved by ``shift``: a day passes in no time."""

    def __init__(self, shift: timedelta) -> None:
        self.shift = shift

    def now(self) -> datetime:
        return datetime.now(UTC) + self.shift


@contextlib.asynccontextmanager
async def expiry_running(settings: Settings, clock: Clock | None = None) -> AsyncIterator[None]:
    app = create_expiry(settings, clock=clock)
    async with app.lifespan_context():
        await app.start()
        try:
            yield
        finally:
            await app.stop()


class Closes:
    """Every record of ``conversation.events`` with Kafka's timestamp (when the relay sent it)."""

    def __init__(self, settings: Settings) -> None:
        name = CONVERSATION_EVENTS_TOPIC.qualified(settings.topic_prefix)
        self.partitions = [
            TopicPartition(name, p) for p in range(CONVERSATION_EVENTS_TOPIC.partitions)
        ]
        self.consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None)
        self.closed: dict[uuid.UUID, list[tuple[str, float]]] = {}
        self.started: dict[str, ConversationStarted] = {}

    async def __aenter__(self) -> Closes:
        await self.consumer.start()
        self.consumer.assign(self.partitions)
        await self.consumer.seek_to_beginning(*self.partitions)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def read(self) -> None:
        batch = await self.consumer.getmany(timeout_ms=50)
        for records in batch.values():
            for record in records:
                assert record.value is not None
                envelope = decode(record.value, REGISTRY)
                match envelope.payload:
                    case ConversationStarted(contact_wa_id=contact) as started:
                        self.started[contact] = started
                    case ConversationClosed(conversation_id=conversation, reason=reason):
                        self.closed.setdefault(conversation, []).append(
                            (reason, record.timestamp / 1000)
                        )

    async def start_of(self, contact: str) -> ConversationStarted:
        async def probe() -> ConversationStarted | None:
            await self.read()
            return self.started.get(contact)

        found = await eventually(probe, lambda started: started is not None)
        assert found is not None
        return found

    async def closes_of(self, conversation: uuid.UUID, *, within: float) -> list[tuple[str, float]]:
        async def probe() -> list[tuple[str, float]]:
            await self.read()
            return self.closed.get(conversation, [])

        return await eventually(probe, bool, within=within)


@dataclass
class World:
    settings: Settings
    client: httpx.AsyncClient
    closes: Closes

    async def write(self, number: str, customer: str, wamid: str, at: int) -> None:
        body = messages_webhook(number, [Text(customer, wamid, "hola", at)])
        response = await self.client.post(
            "/webhooks/whatsapp", content=body, headers=signed_headers(TEST_APP_SECRET, body)
        )
        assert response.status_code == 200, response.text

    async def expiries(self, conversation: uuid.UUID) -> list[ConversationExpired]:
        return [
            e.payload
            for e in await topic_records(self.settings, EXPIRY_EVENTS_TOPIC)
            if isinstance(e.payload, ConversationExpired)
            and e.payload.conversation_id == conversation
        ]


@pytest.fixture
async def world(settings: Settings) -> AsyncIterator[World]:
    async with consumers(settings), gateway_client(settings) as client:
        workspace = await create_workspace(settings, name="Acme", phone_number_id=FLOW_NUMBER)
        await create_workspace(settings, name="Plain", phone_number_id=PLAIN_NUMBER)
        auth = {"Authorization": f"Bearer {workspace['admin_token']}"}
        published = await client.post("/api/flows", json=EXPIRING_FLOW, headers=auth)
        assert published.status_code == 201, published.text
        chosen = await client.put(
            f"/api/numbers/{FLOW_NUMBER}/flow",
            json={"flow_id": published.json()["flow_id"]},
            headers=auth,
        )
        assert chosen.status_code == 200, chosen.text
        # Meta's timestamps are whole seconds: start the next one, so a customer's message
        # stamped "now" is after the choice of the flow.
        await asyncio.sleep(1.0 - time.time() % 1.0 + 0.01)
        async with Closes(settings) as closes:
            yield World(settings, client, closes)


def customer() -> str:
    return "57" + str(uuid.uuid4().int)[:10]


async def test_a_flow_expiration_of_3s_closes_the_conversation_within_4s(world: World) -> None:
    who, at = customer(), int(time.time())
    async with expiry_running(world.settings):
        await world.write(FLOW_NUMBER, who, "w.exp.1", at)
        started = await world.closes.start_of(who)
        [(reason, closed_at)] = await world.closes.closes_of(started.conversation_id, within=10)
    assert reason == "expired"
    assert closed_at - at <= 4.0, f"closed {closed_at - at:.2f}s after the customer wrote"
    [expired] = await world.expiries(started.conversation_id)
    assert expired.deadline == started.started_at + timedelta(seconds=3)
    assert expired.fired_at >= expired.deadline


async def test_a_conversation_without_expiration_closes_at_the_maximum_age(world: World) -> None:
    who, at = customer(), int(time.time())
    async with expiry_running(replace(world.settings, expiry_max_age_seconds=5)):
        await world.write(PLAIN_NUMBER, who, "w.plain.1", at)
        started = await world.closes.start_of(who)
        [(reason, closed_at)] = await world.closes.closes_of(started.conversation_id, within=15)
    assert reason == "expired"
    assert at + 5 <= closed_at <= at + 6.5
    [expired] = await world.expiries(started.conversation_id)
    assert expired.deadline == started.started_at + timedelta(seconds=5)


async def test_a_closed_conversation_does_not_expire(world: World) -> None:
    who, at = customer(), int(time.time())
    async with expiry_running(world.settings):
        await world.write(FLOW_NUMBER, who, "w.closed.1", at)
        started = await world.closes.start_of(who)
        await world.write(FLOW_NUMBER, who, "w.closed.2", at + 1)  # answers: the flow ends
        [(reason, _)] = await world.closes.closes_of(started.conversation_id, within=10)
        assert reason == "flow_ended"
        await asyncio.sleep(max(0.0, at + 5 - time.time()))  # well past the 3 s deadline
        await world.closes.read()
    assert [r for r, _ in world.closes.closed[started.conversation_id]] == ["flow_ended"]
    assert await world.expiries(started.conversation_id) == []
    cancelled = [
        e.payload
        for e in await topic_records(world.settings, EXPIRY_EVENTS_TOPIC)
        if isinstance(e.payload, DeadlineCancelled)
    ]
    assert [c.conversation_id for c in cancelled] == [started.conversation_id]


async def test_a_deadline_passed_while_stopped_fires_once_at_restart(world: World) -> None:
    """Meta's 24 hours, with the default maximum age: the restarted timer's clock is a day on."""
    who, at = customer(), int(time.time())
    async with expiry_running(world.settings):
        await world.write(PLAIN_NUMBER, who, "w.day.1", at)
        started = await world.closes.start_of(who)

        async def deadlines() -> list[DeadlineSet]:
            return [
                e.payload
                for e in await topic_records(world.settings, EXPIRY_EVENTS_TOPIC)
                if isinstance(e.payload, DeadlineSet)
            ]

        [deadline] = await eventually(deadlines, bool)
    assert deadline.deadline == started.started_at + timedelta(hours=24)
    assert deadline.cause == "meta_24h"
    assert world.closes.closed == {}

    a_day_later = ShiftedClock(timedelta(hours=24, seconds=1))
    async with expiry_running(world.settings, a_day_later):
        closes = await world.closes.closes_of(started.conversation_id, within=10)
    async with expiry_running(world.settings, ShiftedClock(timedelta(hours=48))):
        await asyncio.sleep(2.0)  # a second restart finds nothing left to fire
        await world.closes.read()
    assert [reason for reason, _ in closes] == ["expired"]
    assert [r for r, _ in world.closes.closed[started.conversation_id]] == ["expired"]
    [expired] = await world.expiries(started.conversation_id)
    assert expired.deadline == started.started_at + timedelta(hours=24)
