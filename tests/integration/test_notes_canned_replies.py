"""Private notes, canned responses and idempotent replies on the real broker and database,
with every consumer, the dispatcher and a fake Graph API over HTTP, and two gateway
replicas: through HTTP only, as a client meets them."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from events.catalogue import (
    CONVERSATION_COMMANDS_TOPIC,
    CONVERSATION_EVENTS_TOPIC,
    CONVERSATION_NOTES_TOPIC,
    OUTBOUND_MESSAGES_TOPIC,
)
from events.codec import encode
from events.envelope import Actor, Envelope
from events.notes import AddNote, NoteAdded
from events.outbound import OutboundMessageQueued
from services.dispatcher.app import create_app as create_dispatcher
from services.settings import Settings
from services.workspaces import create_workspace
from tests.conftest import TEST_APP_SECRET
from tests.fake_graph import FakeGraphApi
from tests.harness import consumers, eventually, gateway_client, query, topic_records
from tests.webhooks import Text, messages_webhook, signed_headers

pytestmark = pytest.mark.integration
NUMBER = "480112093377001"
CUSTOMER = "573001234567"


class System:
    def __init__(
        self, settings: Settings, graph: FakeGraphApi, a: httpx.AsyncClient, b: httpx.AsyncClient
    ) -> None:
        self.settings = settings
        self.graph = graph
        self.a = a  # two gateway replicas on the same broker and database
        self.b = b
        self.admin: dict[str, str] = {}
        self.workspace_id = ""

    async def history(self, conversation: str) -> list[dict[str, Any]]:
        found = await self.a.get(f"/api/conversations/{conversation}/history", headers=self.admin)
        assert found.status_code == 200, found.text
        lines: list[dict[str, Any]] = found.json()["history"]
        return lines


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[System]:
    with FakeGraphApi() as graph:
        settings = replace(
            settings,
            whatsapp_api_base_url=graph.base_url,
            whatsapp_access_token="test-graph-token",
            dispatch_backoff_seconds=0.01,
        )
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(consumers(settings))
            dispatcher = create_dispatcher(settings)
            await stack.enter_async_context(dispatcher.lifespan_context())
            await dispatcher.start()
            stack.push_async_callback(dispatcher.stop)
            a = await stack.enter_async_context(gateway_client(settings))
            b = await stack.enter_async_context(gateway_client(settings))
            found = System(settings, graph, a, b)
            workspace = await create_workspace(settings, name="Acme", phone_number_id=NUMBER)
            found.admin = {"Authorization": f"Bearer {workspace['admin_token']}"}
            found.workspace_id = str(workspace["workspace_id"])
            yield found


async def a_conversation(system: System) -> str:
    """The customer writes (now, so the service window is open); the conversation's id."""
    body = messages_webhook(
        NUMBER, [Text(CUSTOMER, f"w.{uuid.uuid4().hex}", "hola", int(time.time()))]
    )
    sent = await system.a.post(
        "/webhooks/whatsapp", content=body, headers=signed_headers(TEST_APP_SECRET, body)
    )
    assert sent.status_code == 200, sent.text

    async def found() -> list[dict[str, Any]]:
        rows = await system.a.get(
            "/api/conversations", params={"contact": CUSTOMER}, headers=system.admin
        )
        assert rows.status_code == 200, rows.text
        conversations: list[dict[str, Any]] = rows.json()["conversations"]
        return conversations

    [row] = await eventually(found, lambda rows: len(rows) == 1)
    return str(row["conversation_id"])


async def test_notes_stay_with_members_and_replies_go_once(system: System) -> None:
    conversation = await a_conversation(system)
    admin = system.admin

    # A private note: the inbound service's verdict, then a line of its own kind.
    added = await system.a.post(
        f"/api/conversations/{conversation}/notes",
        json={"text": "Pidió factura; no mencionar el descuento"},
        headers=admin,
    )
    assert added.status_code == 201, added.text
    note_id = added.json()["note_id"]
    lines = await system.history(conversation)
    [note] = [line for line in lines if line["kind"] == "note"]
    assert note["text"] == "Pidió factura; no mencionar el descuento"
    assert note["content"] == {"note_id": note_id}
    assert note["author_kind"] == "member"
    blank = await system.a.post(
        f"/api/conversations/{conversation}/notes", json={"text": "  "}, headers=admin
    )
    assert blank.status_code == 422, blank.text
    elsewhere = await system.a.post(
        f"/api/conversations/{uuid.uuid4()}/notes", json={"text": "x"}, headers=admin
    )
    assert elsewhere.status_code == 404, elsewhere.text

    # The same reply sent at once to two replicas with one key, as a client retrying a
    # request that timed out would: one message, one answer.
    key = str(uuid.uuid4())
    reply = {"text": "Hola, ya te ayudo"}
    url = f"/api/conversations/{conversation}/messages"
    first, second = await asyncio.gather(
        system.a.post(url, json=reply, headers={**admin, "Idempotency-Key": key}),
        system.b.post(url, json=reply, headers={**admin, "Idempotency-Key": key}),
    )
    assert first.status_code == second.status_code == 202, (first.text, second.text)
    assert first.json() == second.json()
    message_id = first.json()["message_id"]
    again = await system.b.post(url, json=reply, headers={**admin, "Idempotency-Key": key})
    assert again.status_code == 202, again.text
    assert again.json() == first.json()
    other = await system.a.post(
        url, json={"text": "otra cosa"}, headers={**admin, "Idempotency-Key": key}
    )
    assert other.status_code == 422, other.text
    assert "already used for another request" in other.json()["detail"]
    malformed = await system.a.post(url, json=reply, headers={**admin, "Idempotency-Key": "a b"})
    assert malformed.status_code == 422, malformed.text

    async def reply_lines() -> list[dict[str, Any]]:
        return [
            line
            for line in await system.history(conversation)
            if line["kind"] == "message" and line["author_kind"] == "member"
        ]

    [line] = await eventually(
        reply_lines, lambda found: len(found) == 1 and found[0]["status"] == "sent"
    )
    assert line["message_id"] == message_id
    # A reply without a key is another message, as before.
    plain = await system.a.post(url, json={"text": "¿Algo más?"}, headers=admin)
    assert plain.status_code == 202, plain.text
    await eventually(reply_lines, lambda found: len(found) == 2)

    # What Meta received: the two replies, once each, and never the note.
    sent = await eventually(
        lambda: asyncio.sleep(0, system.graph.received_to(CUSTOMER)), lambda got: len(got) >= 2
    )
    assert sorted(request.text or "" for request in sent) == ["Hola, ya te ayudo", "¿Algo más?"]
    queued = [
        record.payload
        for record in await topic_records(system.settings, OUTBOUND_MESSAGES_TOPIC)
        if isinstance(record.payload, OutboundMessageQueued)
    ]
    assert sorted(q.text or "" for q in queued if str(q.conversation_id) == conversation) == [
        "Hola, ya te ayudo",
        "Hola, ya te ayudo",  # both replicas published the kept record: one event id
        "¿Algo más?",
    ]
    assert len({q.message_id for q in queued}) == 2
    # The note is on its own topic, which no customer-facing process reads.
    notes = [r.payload for r in await topic_records(system.settings, CONVERSATION_NOTES_TOPIC)]
    assert [n.note_id for n in notes if isinstance(n, NoteAdded)] == [uuid.UUID(note_id)]
    carried = await topic_records(system.settings, CONVERSATION_EVENTS_TOPIC)
    assert not [r for r in carried if r.event_type.startswith("conversation.note")]
    assert len(system.graph.received_to(CUSTOMER)) == 2


async def test_canned_responses_by_admins_filled_for_the_conversation(system: System) -> None:
    conversation = await a_conversation(system)
    admin = system.admin
    made = await system.a.post(
        "/api/members", json={"name": "Beto", "role": "agent", "capacity": 3}, headers=admin
    )
    assert made.status_code == 201, made.text
    agent = {"Authorization": f"Bearer {made.json()['token']}"}

    text = "Hola {{contact.name}}, soy {{agent.name}}. Te escribo al {{contact.phone}}."
    created = await system.a.post(
        "/api/canned-responses", json={"shortcut": "hola", "text": text}, headers=admin
    )
    assert created.status_code == 201, created.text
    canned_id = created.json()["canned_response_id"]
    refused = {
        "an agent": (agent, {"shortcut": "chao", "text": "Chao"}, 403, "admin"),
        "a taken shortcut": (admin, {"shortcut": "HOLA", "text": "x"}, 422, "taken"),
        "an unknown variable": (admin, {"shortcut": "x", "text": "{{cliente}}"}, 422, "unknown"),
        "a malformed shortcut": (admin, {"shortcut": "con espacio", "text": "x"}, 422, "shortcut"),
    }
    for why, (who, body, status, words) in refused.items():
        answer = await system.a.post("/api/canned-responses", json=body, headers=who)
        assert answer.status_code == status, (why, answer.text)
        assert words in answer.text, (why, answer.text)

    offered = await system.b.get(
        f"/api/conversations/{conversation}/canned-responses", headers=admin
    )
    assert offered.status_code == 200, offered.text
    [hola] = offered.json()["canned_responses"]
    assert hola["text"] == text
    # The admin (named "Admin") and the customer's WhatsApp profile name (the webhook's).
    assert hola["filled"] == f"Hola Valentina Ruiz, soy Admin. Te escribo al {CUSTOMER}."

    edited = await system.a.put(
        f"/api/canned-responses/{canned_id}",
        json={"shortcut": "saludo", "text": "Buenos días"},
        headers=admin,
    )
    assert edited.status_code == 200, edited.text
    listed = await system.a.get("/api/canned-responses", headers=agent)
    assert [(c["shortcut"], c["text"]) for c in listed.json()["canned_responses"]] == [
        ("saludo", "Buenos días")
    ]
    deleted = await system.a.delete(f"/api/canned-responses/{canned_id}", headers=admin)
    assert deleted.status_code == 200, deleted.text
    gone = await system.a.delete(f"/api/canned-responses/{canned_id}", headers=admin)
    assert gone.status_code == 422, gone.text
    assert "is deleted" in gone.json()["detail"]
    listed = await system.a.get("/api/canned-responses", headers=agent)
    assert listed.json()["canned_responses"] == []


async def test_a_note_the_gateway_would_never_send_is_refused_by_inbound(system: System) -> None:
    """Another writer of ``conversation.commands`` (not the gateway, which checks first): the
    inbound service refuses the note with the reason, which the read models record as the
    command's verdict, and nothing shows in the history."""
    conversation = await a_conversation(system)
    command_id = uuid.uuid4()
    command = AddNote(
        conversation_id=uuid.UUID(conversation),
        workspace_id=uuid.UUID(str(system.workspace_id)),
        phone_number_id=NUMBER,
        contact_wa_id=CUSTOMER,
        note_id=uuid.uuid4(),
        author_id=uuid.uuid4(),
        text="a\x07b",
    )
    key = f"{NUMBER}:{CUSTOMER}"
    envelope = Envelope.wrap(
        command,
        event_id=command_id,
        stream_id=key,
        workspace_id=command.workspace_id,
        occurred_at=datetime.now(UTC),
        correlation_id=command_id,
        causation_id=None,
        actor=Actor(kind="system", id="a-script"),
    )
    producer = AIOKafkaProducer(bootstrap_servers=system.settings.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            CONVERSATION_COMMANDS_TOPIC.qualified(system.settings.topic_prefix),
            encode(envelope),
            key=key.encode(),
        )
    finally:
        await producer.stop()
    [verdict] = await eventually(
        lambda: query(
            system.settings,
            "projections",
            "SELECT outcome, reason FROM {s}.command_outcomes WHERE command_id = %s",
            command_id,
        ),
        lambda rows: len(rows) == 1,
    )
    assert verdict["outcome"] == "rejected"
    assert verdict["reason"] == (
        "the note contains a control character (U+0007) at position 1"
        " (only line breaks and tabs are allowed)"
    )
    assert not [line for line in await system.history(conversation) if line["kind"] == "note"]
