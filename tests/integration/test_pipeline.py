"""The first slice end to end, in-process, on the real Kafka broker and PostgreSQL.

Webhook -> gateway -> whatsapp.inbound -> inbound store -> relay -> conversation.events ->
projector -> history API.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from events.catalogue import (
    CONVERSATION_COMMANDS_TOPIC,
    CONVERSATION_EVENTS_TOPIC,
    DEAD_LETTERS,
    WHATSAPP_INBOUND,
    WHATSAPP_REJECTED,
    WHATSAPP_UNROUTED,
)
from events.codec import encode
from events.conversation import CloseConversation
from events.envelope import Actor, Envelope
from events.operations import InboundRecordUnrouted, RecordDeadLettered
from events.whatsapp import WebhookItemRejected
from services.settings import Settings
from services.workspaces import WorkspaceRejected, create_workspace
from tests.conftest import TEST_APP_SECRET
from tests.harness import consumers, eventually, gateway_client, query, topic_records, topic_size
from tests.webhooks import Text, messages_webhook, signed_headers

pytestmark = pytest.mark.integration
NUMBER = "480112093385611"


class Slice:
    def __init__(self, settings: Settings, client: httpx.AsyncClient, workspace: dict[str, Any]):
        self.settings = settings
        self.client = client
        self.workspace = workspace
        self.auth = {"Authorization": f"Bearer {workspace['admin_token']}"}

    async def post(self, body: bytes, secret: str = TEST_APP_SECRET) -> httpx.Response:
        return await self.client.post(
            "/webhooks/whatsapp", content=body, headers=signed_headers(secret, body)
        )

    async def conversations(self, contact: str) -> list[dict[str, Any]]:
        response = await self.client.get(
            "/api/conversations", params={"contact": contact}, headers=self.auth
        )
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["conversations"]
        return found

    async def history(self, contact: str, messages: int) -> list[dict[str, Any]]:
        """The customer's messages in the conversation's history, once there are ``messages``.

        No flow is active in these tests, so the history also holds the hand-off line.
        """

        async def probe() -> list[dict[str, Any]]:
            found = await self.conversations(contact)
            if not found:
                return []
            response = await self.client.get(
                f"/api/conversations/{found[-1]['conversation_id']}/history", headers=self.auth
            )
            lines: list[dict[str, Any]] = response.json()["history"]
            return [line for line in lines if line["author_kind"] == "customer"]

        return await eventually(probe, lambda lines: len(lines) >= messages)


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[Slice]:
    async with consumers(settings), gateway_client(settings) as client:
        workspace = await create_workspace(
            settings, name="Acme", phone_number_id=NUMBER, time_zone="America/Bogota"
        )
        yield Slice(settings, client, workspace)


def contact() -> str:
    return "57" + str(uuid.uuid4().int)[:10]


async def test_a_signed_webhook_shows_in_the_history(system: Slice) -> None:
    customer = contact()
    body = messages_webhook(NUMBER, [Text(customer, "wamid.a1", "Hola, necesito ayuda")])
    response = await system.post(body)
    assert response.status_code == 200
    assert response.json() == {"accepted": 1, "rejected": 0}
    [line] = await system.history(customer, 1)
    assert line["text"] == "Hola, necesito ayuda"
    assert line["author_kind"] == "customer"
    assert line["author_name"] == "Valentina Ruiz"


async def test_a_wrong_signature_is_refused_and_records_nothing(system: Slice) -> None:
    before = await topic_size(system.settings, WHATSAPP_INBOUND)
    body = messages_webhook(NUMBER, [Text(contact(), "wamid.bad", "x")])
    assert (await system.post(body, secret="not-the-secret")).status_code == 401
    unsigned = await system.client.post("/webhooks/whatsapp", content=body)
    assert unsigned.status_code == 401
    assert await topic_size(system.settings, WHATSAPP_INBOUND) == before


async def test_ten_deliveries_of_one_webhook_give_one_message(system: Slice) -> None:
    customer = contact()
    body = messages_webhook(NUMBER, [Text(customer, "wamid.once", "only once")])
    for _ in range(10):
        assert (await system.post(body)).status_code == 200
    marker = messages_webhook(NUMBER, [Text(customer, "wamid.after", "after", 1764000001)])
    assert (await system.post(marker)).status_code == 200
    lines = await system.history(customer, 2)
    assert [line["wamid"] for line in lines] == ["wamid.once", "wamid.after"]


async def test_three_messages_in_one_body_keep_their_order(system: Slice) -> None:
    customer = contact()
    body = messages_webhook(
        NUMBER, [Text(customer, f"wamid.m{n}", f"message {n}", 1764000000 + n) for n in range(3)]
    )
    assert (await system.post(body)).json() == {"accepted": 3, "rejected": 0}
    lines = await system.history(customer, 3)
    # Customer lines only: the flows service's hand-off line (no flow is active here) may
    # sit between them, so positions increase but need not be consecutive.
    assert [line["text"] for line in lines] == ["message 0", "message 1", "message 2"]
    positions = [line["position"] for line in lines]
    assert positions == sorted(positions)
    assert positions[0] == 1


async def test_bad_bodies_get_a_precise_400(system: Slice) -> None:
    response = await system.post(b'{"object": "whatsapp_business_account", "entry": {}}')
    assert response.status_code == 400
    assert "entry must be a non-empty list" in response.json()["detail"]
    response = await system.post(b'{"object": "page", "entry": [{}]}')
    assert response.status_code == 400
    assert "whatsapp_business_account" in response.json()["detail"]


async def test_a_broken_entry_is_parked_with_the_reason_not_refused(system: Slice) -> None:
    """Issue 8, item 4: 400 only for a body that is not a webhook at all."""
    response = await system.post(b'{"object": "whatsapp_business_account", "entry": [{}]}')
    assert (response.status_code, response.json()) == (200, {"accepted": 0, "rejected": 1})
    [parked] = await eventually(
        lambda: topic_records(system.settings, WHATSAPP_REJECTED), lambda found: len(found) == 1
    )
    assert isinstance(parked.payload, WebhookItemRejected)
    assert (parked.payload.path, parked.payload.item) == ("entry[0]", "{}")
    assert "'id'" in parked.payload.reason


async def test_the_verification_handshake(system: Slice) -> None:
    params = {
        "hub.mode": "subscribe",
        "hub.verify_token": "test-verify-token",
        "hub.challenge": "1158201444",
    }
    ok = await system.client.get("/webhooks/whatsapp", params=params)
    assert (ok.status_code, ok.text) == (200, "1158201444")
    wrong = await system.client.get(
        "/webhooks/whatsapp", params={**params, "hub.verify_token": "guess"}
    )
    assert wrong.status_code == 403


async def test_a_number_nobody_owns_is_kept_on_the_unrouted_topic(system: Slice) -> None:
    stranger = contact()
    body = messages_webhook("999000111", [Text(stranger, "wamid.lost", "anyone?")])
    assert (await system.post(body)).status_code == 200
    records = await eventually(
        lambda: topic_records(system.settings, WHATSAPP_UNROUTED), lambda found: len(found) == 1
    )
    unrouted = records[0].payload
    assert isinstance(unrouted, InboundRecordUnrouted)
    assert unrouted.phone_number_id == "999000111"
    assert "wamid.lost" in unrouted.record
    assert await system.conversations(stranger) == []


async def test_an_undecodable_record_is_dead_lettered_and_the_consumer_moves_on(
    system: Slice,
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=system.settings.kafka_bootstrap)
    await producer.start()
    customer = contact()
    try:
        key = f"{NUMBER}:{customer}".encode()
        topic = WHATSAPP_INBOUND.qualified(system.settings.topic_prefix)
        await producer.send_and_wait(topic, b"{not json", key=key)
    finally:
        await producer.stop()
    assert (
        await system.post(messages_webhook(NUMBER, [Text(customer, "w.next", "next")]))
    ).is_success
    await system.history(customer, 1)
    [parked] = await eventually(
        lambda: topic_records(system.settings, DEAD_LETTERS), lambda found: len(found) == 1
    )
    assert isinstance(parked.payload, RecordDeadLettered)
    assert parked.payload.consumer == "inbound"
    assert "not JSON" in parked.payload.reason


async def test_a_message_after_a_close_starts_a_new_conversation(system: Slice) -> None:
    customer = contact()
    assert (
        await system.post(messages_webhook(NUMBER, [Text(customer, "w.c1", "first")]))
    ).is_success
    [conversation] = await eventually(lambda: system.conversations(customer), lambda c: len(c) == 1)
    command = CloseConversation(
        conversation_id=conversation["conversation_id"],
        workspace_id=system.workspace["workspace_id"],
        phone_number_id=NUMBER,
        contact_wa_id=customer,
        reason="agent",
    )
    envelope = Envelope.wrap(
        command,
        event_id=uuid.uuid4(),
        stream_id=f"{NUMBER}:{customer}",
        workspace_id=uuid.UUID(system.workspace["workspace_id"]),
        occurred_at=datetime.now(UTC),
        correlation_id=uuid.uuid4(),
        causation_id=None,
        actor=Actor(kind="member", id=system.workspace["admin_member_id"]),
    )
    producer = AIOKafkaProducer(bootstrap_servers=system.settings.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            CONVERSATION_COMMANDS_TOPIC.qualified(system.settings.topic_prefix),
            encode(envelope),
            key=envelope.stream_id.encode(),
        )
    finally:
        await producer.stop()
    await eventually(lambda: system.conversations(customer), lambda c: c[0]["status"] == "closed")
    later = messages_webhook(NUMBER, [Text(customer, "w.c2", "again", 1764000100)])
    assert (await system.post(later)).is_success
    found = await eventually(lambda: system.conversations(customer), lambda c: len(c) == 2)
    assert [c["status"] for c in found] == ["closed", "open"]
    assert found[0]["close_reason"] == "agent"


async def test_the_api_needs_a_token_and_stays_in_its_workspace(system: Slice) -> None:
    customer = contact()
    assert (
        await system.post(messages_webhook(NUMBER, [Text(customer, "w.s1", "mine")]))
    ).is_success
    [conversation] = await eventually(lambda: system.conversations(customer), lambda c: len(c) == 1)
    path = f"/api/conversations/{conversation['conversation_id']}"
    other = await create_workspace(system.settings, name="Other", phone_number_id="777000")
    foreign = {"Authorization": f"Bearer {other['admin_token']}"}
    for route in (path, f"{path}/history"):
        assert (await system.client.get(route)).status_code == 401
        assert (
            await system.client.get(route, headers={"Authorization": "Bearer nope"})
        ).status_code == 401
        assert (await system.client.get(route, headers=foreign)).status_code == 404
        assert (await system.client.get(route, headers=system.auth)).status_code == 200
    listed = await system.client.get(
        "/api/conversations", params={"contact": customer}, headers=foreign
    )
    assert listed.json() == {"conversations": []}


async def test_a_number_cannot_belong_to_two_workspaces(system: Slice) -> None:
    with pytest.raises(WorkspaceRejected, match=NUMBER):
        await create_workspace(system.settings, name="Copycat", phone_number_id=NUMBER)


async def test_stored_events_carry_the_envelope(system: Slice) -> None:
    customer = contact()
    assert (await system.post(messages_webhook(NUMBER, [Text(customer, "w.e1", "hi")]))).is_success
    await system.history(customer, 1)
    rows = await query(
        system.settings, "inbound", "SELECT topic, state FROM {s}.events ORDER BY notification_id"
    )
    types = [row["topic"] for row in rows]
    assert "conversation.started" in types
    assert "conversation.customer_message_received" in types
    await asyncio.sleep(0)


async def test_a_relay_that_publishes_everything_again_changes_no_read_model(
    system: Slice,
) -> None:
    """A relay crash between Kafka's ack and recording its position re-sends events."""
    customer = contact()
    body = messages_webhook(NUMBER, [Text(customer, "w.r1", "one"), Text(customer, "w.r2", "two")])
    assert (await system.post(body)).is_success
    before = await system.history(customer, 2)
    published = await topic_size(system.settings, CONVERSATION_EVENTS_TOPIC)

    # Forget how far the relay got: it publishes the whole store once more.
    await query(
        system.settings, "inbound", "DELETE FROM {s}.tracking WHERE application_name = '__relay__'"
    )
    await eventually(
        lambda: topic_size(system.settings, CONVERSATION_EVENTS_TOPIC),
        lambda size: size >= 2 * published,
    )
    marker = messages_webhook(NUMBER, [Text(customer, "w.r3", "three", 1764000009)])
    assert (await system.post(marker)).is_success
    after = await system.history(customer, 3)
    assert after[:2] == before
    assert [line["text"] for line in after] == ["one", "two", "three"]
    [conversation] = await system.conversations(customer)
    assert conversation["message_count"] == 3
