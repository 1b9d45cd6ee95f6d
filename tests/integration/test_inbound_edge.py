"""Every real Meta delivery kept and shown (issue 8), on the real Kafka broker and PostgreSQL.

The whole system in-process (directory, inbound, flows, assignment, projector, relay, the
dispatcher against a fake Graph API) and the gateway over ASGI: webhooks in, the history
API out.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from events.business import MarketingPreferenceChanged, WebhookErrorsReported
from events.catalogue import (
    CONVERSATION_EVENTS_TOPIC,
    DEAD_LETTERS,
    WHATSAPP_BUSINESS,
    WHATSAPP_INBOUND,
    WHATSAPP_REJECTED,
    WHATSAPP_UNROUTED,
)
from events.conversation import ConversationStarted, CustomerMessageReceived
from events.whatsapp import WebhookItemRejected
from services.dispatcher.app import create_app as create_dispatcher
from services.settings import Settings
from services.workspaces import create_workspace
from tests.conftest import TEST_APP_SECRET
from tests.fake_graph import FakeGraphApi
from tests.harness import consumers, eventually, gateway_client, query, topic_records, topic_size
from tests.webhooks import Text, messages_value, messages_webhook, signed_headers, webhook

pytestmark = pytest.mark.integration
NUMBER = "480112093385611"
OTHER_NUMBER = "480112093385622"


def contact() -> str:
    return "57" + str(uuid.uuid4().int)[:10]


def text(sender: str, wamid: str, body: str, at: int = 1764000000, **more: Any) -> dict[str, Any]:
    return {
        "from": sender,
        "id": wamid,
        "timestamp": str(at),
        "type": "text",
        "text": {"body": body},
        **more,
    }


class System:
    def __init__(self, settings: Settings, client: httpx.AsyncClient, graph: FakeGraphApi) -> None:
        self.settings = settings
        self.client = client
        self.graph = graph
        self.workspaces: dict[str, dict[str, Any]] = {}

    def auth(self, number: str = NUMBER) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.workspaces[number]['admin_token']}"}

    async def post(self, body: bytes) -> httpx.Response:
        response = await self.client.post(
            "/webhooks/whatsapp", content=body, headers=signed_headers(TEST_APP_SECRET, body)
        )
        assert response.status_code == 200, response.text
        return response

    async def conversations(self, who: str, number: str = NUMBER) -> list[dict[str, Any]]:
        response = await self.client.get(
            "/api/conversations", params={"contact": who}, headers=self.auth(number)
        )
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["conversations"]
        return found

    async def history(self, conversation_id: str, number: str = NUMBER) -> list[dict[str, Any]]:
        response = await self.client.get(
            f"/api/conversations/{conversation_id}/history", headers=self.auth(number)
        )
        assert response.status_code == 200, response.text
        lines: list[dict[str, Any]] = response.json()["history"]
        return lines

    async def only_conversation(self, who: str, number: str = NUMBER) -> dict[str, Any]:
        [found] = await eventually(lambda: self.conversations(who, number), lambda c: len(c) == 1)
        return found

    async def lines(
        self, who: str, accept: Any, number: str = NUMBER, *, within: float = 20.0
    ) -> list[dict[str, Any]]:
        """The history of the contact's latest conversation once ``accept`` holds for it."""

        async def probe() -> list[dict[str, Any]]:
            found = await self.conversations(who, number)
            return await self.history(found[-1]["conversation_id"], number) if found else []

        lines: list[dict[str, Any]] = await eventually(probe, accept, within=within)
        return lines


def messages_of(lines: list[dict[str, Any]], author: str = "customer") -> list[dict[str, Any]]:
    return [line for line in lines if line["kind"] == "message" and line["author_kind"] == author]


@pytest.fixture
def graph() -> Iterator[FakeGraphApi]:
    with FakeGraphApi() as fake:
        yield fake


@asynccontextmanager
async def dispatcher(settings: Settings) -> AsyncIterator[None]:
    app = create_dispatcher(settings)
    async with app.lifespan_context():
        await app.start()
        try:
            yield
        finally:
            await app.stop()


@pytest.fixture
async def system(settings: Settings, graph: FakeGraphApi) -> AsyncIterator[System]:
    settings = replace(
        settings,
        whatsapp_api_base_url=graph.base_url,
        whatsapp_access_token="test-graph-token",
        dispatch_backoff_seconds=0.01,
    )
    async with consumers(settings), dispatcher(settings), gateway_client(settings) as client:
        found = System(settings, client, graph)
        for number in (NUMBER, OTHER_NUMBER):
            found.workspaces[number] = await create_workspace(
                settings, name=f"Acme {number}", phone_number_id=number
            )
        yield found


async def test_the_same_wamid_in_two_workspaces_gives_two_visible_conversations(
    system: System,
) -> None:
    """Issue 8, item 1: the second workspace's conversation used to be invisible."""
    customer = contact()
    for number in (NUMBER, OTHER_NUMBER):
        body = messages_webhook(number, [Text(customer, "wamid.shared", "hola")])
        for _ in range(3):  # Meta's retries: still one message
            await system.post(body)
    for number in (NUMBER, OTHER_NUMBER):
        lines = await system.lines(customer, lambda found: messages_of(found) != [], number)
        assert [line["text"] for line in messages_of(lines)] == ["hola"]
        assert len(await system.conversations(customer, number)) == 1


async def test_a_retried_body_for_a_number_nobody_owns_is_recognised(system: System) -> None:
    """Issue 8, item 1: Meta's retry ended as a StreamConflict dead letter."""
    body = messages_webhook("999000111", [Text(contact(), "wamid.lost", "anyone?")])
    await system.post(body)
    await system.post(body)
    topic = WHATSAPP_INBOUND.qualified(system.settings.topic_prefix)

    async def handled() -> int:
        rows = await query(
            system.settings,
            "inbound",
            "SELECT COALESCE(max(notification_id), 0) AS n FROM {s}.tracking"
            " WHERE application_name LIKE %s",
            f"{topic}#%",
        )
        return int(rows[0]["n"])

    await eventually(handled, lambda position: position >= 2)
    assert len(await topic_records(system.settings, WHATSAPP_UNROUTED)) == 1
    parked = await query(
        system.settings,
        "inbound",
        "SELECT count(*) AS n FROM {s}.events WHERE topic = 'operations.record_dead_lettered'",
    )
    assert parked[0]["n"] == 0


async def test_nul_from_whatsapp_is_kept_in_the_events_and_shown_replaced(
    system: System,
) -> None:
    """Issue 8, item 2: a NUL hid the message, and with a NUL name the conversation."""
    customer = contact()
    body = messages_webhook(
        NUMBER, [Text(customer, "wamid.nul", "hola\x00mundo", name="Valen\x00tina")]
    )
    await system.post(body)
    conversation = await system.only_conversation(customer)
    assert conversation["contact_name"] == "Valen\ufffdtina"
    lines = await system.lines(customer, lambda found: messages_of(found) != [])
    assert messages_of(lines)[0]["text"] == "hola\ufffdmundo"
    assert messages_of(lines)[0]["content"] == {"body": "hola\ufffdmundo"}
    events = await topic_records(system.settings, CONVERSATION_EVENTS_TOPIC)
    kept = [
        e.payload
        for e in events
        if isinstance(e.payload, CustomerMessageReceived | ConversationStarted)
    ]
    assert any(getattr(p, "text", None) == "hola\x00mundo" for p in kept)
    assert any(getattr(p, "contact_name", None) == "Valen\x00tina" for p in kept)
    assert await topic_size(system.settings, DEAD_LETTERS) == 0


async def test_a_username_user_writes_is_queued_and_gets_the_agents_reply(
    system: System,
) -> None:
    """Issue 8, item 3: ``from`` empty with ``from_user_id`` answered 400 for the batch."""
    bsuid = f"US.{uuid.uuid4().int % 10**20}"
    neighbour = contact()
    body = webhook(
        (
            "messages",
            messages_value(
                NUMBER,
                contacts=[
                    {
                        "profile": {"name": "Sheena", "username": "@sheena"},
                        "user_id": bsuid,
                        "country_code": "US",
                    },
                    {"profile": {"name": "Valentina"}, "wa_id": neighbour},
                ],
                # Now: the agent's reply goes out within the 24-hour service window.
                messages=[
                    text("", "wamid.user.1", "hi, it's me", int(time.time()), from_user_id=bsuid),
                    text(neighbour, "wamid.phone.1", "and me"),
                ],
            ),
        )
    )
    assert (await system.post(body)).json() == {"accepted": 2, "rejected": 0}
    conversation = await system.only_conversation(bsuid)
    assert (
        conversation["contact_wa_id"],
        conversation["contact_user_id"],
        conversation["contact_username"],
        conversation["contact_country_code"],
        conversation["contact_name"],
    ) == (bsuid, bsuid, "@sheena", "US", "Sheena")
    await system.only_conversation(neighbour)

    # No flow on the number: the conversation waits in the workspace's queue.
    async def queued() -> list[str]:
        response = await system.client.get("/api/queue", headers=system.auth())
        return [str(row["conversation_id"]) for row in response.json()["queue"]]

    await eventually(queued, lambda ids: str(conversation["conversation_id"]) in ids)
    reply = await system.client.post(
        f"/api/conversations/{conversation['conversation_id']}/messages",
        json={"text": "Hola Sheena"},
        headers=system.auth(),
    )
    assert reply.status_code == 202, reply.text
    [sent] = await eventually(lambda: _received(system.graph, bsuid), lambda found: len(found) == 1)
    assert sent.body["recipient"] == bsuid
    assert "to" not in sent.body
    assert sent.body["biz_opaque_callback_data"] == str(conversation["conversation_id"])

    # Meta's statuses for a username user carry an empty recipient_id.
    status = {
        "id": sent.wamid,
        "status": "read",
        "timestamp": str(int(time.time())),
        "recipient_id": "",
        "recipient_user_id": bsuid,
        "biz_opaque_callback_data": sent.body["biz_opaque_callback_data"],
    }
    await system.post(webhook(("messages", messages_value(NUMBER, statuses=[status]))))
    lines = await system.lines(
        bsuid,
        lambda found: any(line["status"] == "read" for line in messages_of(found, "member")),
    )
    assert [line["text"] for line in messages_of(lines, "member")] == ["Hola Sheena"]


async def _received(graph: FakeGraphApi, recipient: str) -> list[Any]:
    return graph.received_to(recipient)


async def test_statuses_of_an_earlier_conversation_stay_in_it(system: System) -> None:
    """Issue 8, item 13: they were added to the contact's current conversation."""
    customer = contact()
    await system.post(messages_webhook(NUMBER, [Text(customer, "wamid.c1", "first")]))
    first = await system.only_conversation(customer)
    closed = await system.client.post(
        f"/api/conversations/{first['conversation_id']}/close", headers=system.auth()
    )
    assert closed.status_code == 202
    await eventually(
        lambda: system.conversations(customer), lambda found: found[0]["status"] == "closed"
    )
    later = messages_webhook(NUMBER, [Text(customer, "wamid.c2", "again", 1764000100)])
    await system.post(later)
    found = await eventually(lambda: system.conversations(customer), lambda c: len(c) == 2)
    second = found[1]
    status = {
        "id": "wamid.sent.in.first",
        "status": "read",
        "timestamp": "1764000200",
        "recipient_id": customer,
        "biz_opaque_callback_data": str(first["conversation_id"]),
    }
    await system.post(webhook(("messages", messages_value(NUMBER, statuses=[status]))))
    old = await eventually(
        lambda: system.history(first["conversation_id"]),
        lambda lines: any(line["kind"] == "status" for line in lines),
    )
    assert [line["wamid"] for line in old if line["kind"] == "status"] == ["wamid.sent.in.first"]
    marker = messages_webhook(NUMBER, [Text(customer, "wamid.c3", "marker", 1764000300)])
    await system.post(marker)
    current = await system.lines(
        customer, lambda lines: any(line["wamid"] == "wamid.c3" for line in lines)
    )
    assert second["conversation_id"] == found[1]["conversation_id"]
    assert [line for line in current if line["kind"] == "status"] == []


async def test_edits_and_deletions_change_the_original_line(system: System) -> None:
    """Issue 8, item 3: they were added as new lines."""
    customer = contact()
    await system.post(messages_webhook(NUMBER, [Text(customer, "wamid.e1", "first try")]))
    edit = {
        "from": customer,
        "id": "wamid.e1.edit",
        "timestamp": "1764000010",
        "type": "edit",
        "edit": {
            "original_message_id": "wamid.e1",
            "message": {"type": "text", "text": {"body": "second try"}},
        },
    }
    await system.post(webhook(("messages", messages_value(NUMBER, messages=[edit]))))
    lines = await system.lines(
        customer, lambda found: [m["text"] for m in messages_of(found)] == ["second try"]
    )
    [line] = messages_of(lines)
    assert (line["wamid"], line["edited_at"] is not None) == ("wamid.e1", True)
    assert [version["text"] for version in line["previous"]] == ["first try"]
    revoke = {
        "from": customer,
        "id": "wamid.e1.revoke",
        "timestamp": "1764000020",
        "type": "revoke",
        "revoke": {"original_message_id": "wamid.e1"},
    }
    await system.post(webhook(("messages", messages_value(NUMBER, messages=[revoke]))))
    lines = await system.lines(
        customer, lambda found: messages_of(found)[0]["revoked_at"] is not None
    )
    [line] = messages_of(lines)
    assert (line["text"], line["content"]) == (None, None)


async def test_what_meta_says_around_a_message_shows_in_the_history(system: System) -> None:
    """Issue 8, item 3: reply-to, forwarding, the ad, the group, errors, the echo, the clamp."""
    customer = contact()
    future = int(time.time()) + 365 * 86400
    errors = [{"code": 131051, "title": "Message type unknown"}]
    messages = [
        text(
            customer,
            "wamid.ctx",
            "replying",
            context={"from": "573001112233", "id": "wamid.before", "forwarded": True},
            referral={"source_type": "ad", "source_id": "ADID", "headline": "Promo"},
        ),
        text(customer, "wamid.group", "in a group", 1764000001, group_id="G.123"),
        {
            "from": customer,
            "id": "wamid.unsupported",
            "timestamp": "1764000002",
            "type": "unsupported",
            "errors": errors,
        },
        text(customer, "wamid.future", "from the future", future),
    ]
    echo = {
        "from": "573001112233",
        "to": customer,
        "id": "wamid.echo",
        "timestamp": "1764000003",
        "type": "text",
        "text": {"body": "written in the Business app"},
    }
    before = datetime.now(UTC)
    body = webhook(
        ("messages", messages_value(NUMBER, messages=messages)),
        ("smb_message_echoes", {**messages_value(NUMBER), "message_echoes": [echo]}),
    )
    assert (await system.post(body)).json() == {"accepted": 5, "rejected": 0}
    lines = await system.lines(
        customer,
        lambda found: len(messages_of(found)) == 4 and messages_of(found, "business") != [],
    )
    by_wamid = {line["wamid"]: line for line in lines if line["kind"] == "message"}
    replying = by_wamid["wamid.ctx"]
    assert (replying["reply_to"], replying["forwarded"], replying["referral"]["source_id"]) == (
        "wamid.before",
        True,
        "ADID",
    )
    assert by_wamid["wamid.group"]["group_id"] == "G.123"
    unsupported = by_wamid["wamid.unsupported"]
    assert (unsupported["message_type"], unsupported["errors"]) == ("unsupported", errors)
    assert by_wamid["wamid.echo"]["text"] == "written in the Business app"
    clamped = datetime.fromisoformat(by_wamid["wamid.future"]["occurred_at"])
    assert before <= clamped <= datetime.now(UTC)


async def test_played_statuses_errors_and_preferences_are_kept(system: System) -> None:
    """Issue 8, item 3: ``played`` and value-level errors were dropped; opt-outs were raw."""
    customer = contact()
    played = {"id": "wamid.voice", "status": "played", "timestamp": "1764000031"}
    body = webhook(
        (
            "messages",
            messages_value(
                NUMBER,
                messages=[text(customer, "wamid.p1", "hola")],
                statuses=[{**played, "recipient_id": customer}],
                errors=[{"code": 131000, "title": "Something went wrong"}],
            ),
        ),
        (
            "user_preferences",
            {
                **messages_value(NUMBER),
                "user_preferences": [
                    {
                        "wa_id": customer,
                        "detail": "User requested to stop marketing messages",
                        "category": "marketing_messages",
                        "value": "stop",
                        "timestamp": 1764000040,
                    }
                ],
            },
        ),
    )
    assert (await system.post(body)).json() == {"accepted": 4, "rejected": 0}
    workspace = system.workspaces[NUMBER]["workspace_id"]
    rows = await eventually(
        lambda: query(
            system.settings,
            "projections",
            "SELECT status FROM {s}.wamid_statuses WHERE workspace_id = %s AND wamid = %s",
            uuid.UUID(workspace),
            "wamid.voice",
        ),
        lambda found: len(found) == 1,
    )
    assert rows[0]["status"] == "played"
    business = await topic_records(system.settings, WHATSAPP_BUSINESS)
    kinds = {type(record.payload) for record in business}
    assert kinds == {WebhookErrorsReported, MarketingPreferenceChanged}


async def test_one_bad_item_is_parked_and_its_neighbours_are_shown(system: System) -> None:
    """Issue 8, items 4 and 5: 400 (or 500) for the whole batch before."""
    customer = contact()
    messages = [
        text(customer, "wamid.ok1", "one"),
        text(customer, "wamid.overflow", "bad time", timestamp="9" * 20),
        text(customer, "wamid.ok2", "two", 1764000001),
    ]
    body = webhook(
        ("messages", messages_value(NUMBER, messages=messages, contacts=[], statuses=[]))
    )
    assert (await system.post(body)).json() == {"accepted": 2, "rejected": 1}
    lines = await system.lines(customer, lambda found: len(messages_of(found)) == 2)
    assert [line["text"] for line in messages_of(lines)] == ["one", "two"]
    [parked] = await eventually(
        lambda: topic_records(system.settings, WHATSAPP_REJECTED), lambda found: len(found) == 1
    )
    assert isinstance(parked.payload, WebhookItemRejected)
    assert parked.payload.path == "entry[0].changes[0].value.messages[1]"
    assert "wamid.overflow" in parked.payload.item
    wrong_types = webhook(
        ("messages", {**messages_value(NUMBER), "messages": 5, "statuses": 7, "contacts": 3})
    )
    assert (await system.post(wrong_types)).json() == {"accepted": 0, "rejected": 3}
