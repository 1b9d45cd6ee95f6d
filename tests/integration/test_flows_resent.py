"""Issue 10, part 4, on the real broker and database: a customer's button answer, produced
again on ``conversation.events`` exactly as the relay re-sends it after a crash (same bytes,
key and headers, a new offset), makes the flow send nothing more.

Before the flows service deduplicated by event id, the answer was decided again as a wrong
answer to the next question: the customer got "Elige Z o W" and the second question again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from events.catalogue import CONVERSATION_EVENTS_TOPIC, FLOW_EVENTS_TOPIC, OUTBOUND_MESSAGES_TOPIC
from events.codec import decode, read_header
from events.conversation import CustomerMessageReceived
from events.flows import FlowEnded
from events.outbound import OutboundMessageQueued
from services.settings import Settings
from services.workspaces import create_workspace
from tests.conftest import TEST_APP_SECRET
from tests.flow_samples import two_questions
from tests.harness import REGISTRY, consumers, eventually, gateway_client, topic_entries
from tests.webhooks import messages_value, signed_headers, webhook

pytestmark = pytest.mark.integration
NUMBER = "480112093385612"


class Customer:
    """One customer writing to the number, as Meta delivers what they send."""

    def __init__(self, settings: Settings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client
        self.wa_id = "57" + str(uuid.uuid4().int)[:10]
        self.sent = 0

    async def send(self, message: dict[str, Any]) -> str:
        self.sent += 1
        wamid = f"wamid.{self.wa_id}.{self.sent}"
        value = messages_value(
            NUMBER,
            contacts=[{"profile": {"name": "Valentina Ruiz"}, "wa_id": self.wa_id}],
            messages=[
                {"from": self.wa_id, "id": wamid, "timestamp": str(int(time.time())), **message}
            ],
        )
        body = webhook(("messages", value))
        response = await self.client.post(
            "/webhooks/whatsapp", content=body, headers=signed_headers(TEST_APP_SECRET, body)
        )
        assert response.status_code == 200, response.text
        return wamid

    async def says(self, text: str) -> str:
        return await self.send({"type": "text", "text": {"body": text}})

    async def taps(self, button_id: str, title: str) -> str:
        """Meta's ``button_reply``: the customer tapped a reply button."""
        return await self.send(
            {
                "type": "interactive",
                "interactive": {
                    "type": "button_reply",
                    "button_reply": {"id": button_id, "title": title},
                },
            }
        )

    async def told(self, count: int) -> list[str]:
        """What the flow queued for this customer, once it is at least ``count`` messages."""

        async def queued() -> list[str]:
            return [
                payload.text or ""
                for _, _, value in await topic_entries(self.settings, OUTBOUND_MESSAGES_TOPIC)
                if isinstance(payload := decode(value, REGISTRY).payload, OutboundMessageQueued)
                and payload.to == self.wa_id
            ]

        return await eventually(queued, lambda texts: len(texts) >= count)


@pytest.fixture
async def customer(settings: Settings) -> AsyncIterator[Customer]:
    async with consumers(settings), gateway_client(settings) as client:
        workspace = await create_workspace(
            settings,
            name="Acme",
            phone_number_id=NUMBER,
            time_zone="America/Bogota",
            agent_conversations=True,
        )
        auth = {"Authorization": f"Bearer {workspace['admin_token']}"}
        published = await client.post("/api/flows", json=two_questions(), headers=auth)
        assert published.status_code == 201, published.text
        chosen = await client.put(
            f"/api/numbers/{NUMBER}/flow",
            json={"flow_id": published.json()["flow_id"]},
            headers=auth,
        )
        assert chosen.status_code == 200, chosen.text
        yield Customer(settings, client)


async def produce_again(settings: Settings, value: bytes) -> None:
    """Write a stored event's record once more, as the relay does: key and headers from the
    envelope, through an idempotent producer (a new producer id, as after a crash)."""
    header = read_header(value)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True, acks="all"
    )
    await producer.start()
    try:
        await producer.send_and_wait(
            CONVERSATION_EVENTS_TOPIC.qualified(settings.topic_prefix),
            value=value,
            key=header.stream_id.encode(),
            headers=list(header.kafka_headers()),
        )
    finally:
        await producer.stop()


async def test_a_button_answer_produced_again_makes_the_flow_send_nothing_more(
    customer: Customer,
) -> None:
    await customer.says("hola")
    assert await customer.told(1) == ["¿X o Y?"]
    tapped = await customer.taps("x", "X")
    assert await customer.told(2) == ["¿X o Y?", "¿Z o W?"]

    async def answer_record() -> list[tuple[int, int, bytes]]:
        return [
            entry
            for entry in await topic_entries(customer.settings, CONVERSATION_EVENTS_TOPIC)
            if isinstance(payload := decode(entry[2], REGISTRY).payload, CustomerMessageReceived)
            and payload.wamid == tapped
        ]

    [(partition, offset, value)] = await eventually(answer_record, lambda found: len(found) == 1)
    conversation = decode(value, REGISTRY).payload
    assert isinstance(conversation, CustomerMessageReceived)
    await produce_again(customer.settings, value)
    copies = await eventually(answer_record, lambda found: len(found) == 2)
    [(_, first, _), (again_partition, again, again_value)] = sorted(copies, key=lambda e: e[1])
    assert (first, again_partition, again_value) == (offset, partition, value)
    assert again > offset

    # The customer answers the second question: its record comes after the copy on the
    # conversation's partition, so once the flow has answered it, the copy was handled.
    await customer.taps("z", "Z")

    async def ended() -> list[FlowEnded]:
        return [
            payload
            for _, _, record in await topic_entries(customer.settings, FLOW_EVENTS_TOPIC)
            if isinstance(payload := decode(record, REGISTRY).payload, FlowEnded)
            and payload.conversation_id == conversation.conversation_id
        ]

    await eventually(ended, lambda found: len(found) == 1)
    assert await customer.told(3) == ["¿X o Y?", "¿Z o W?", "Gracias"]
