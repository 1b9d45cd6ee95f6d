"""Real Meta webhook payloads, replayed against the running system (issue 8's acceptance).

The corpus (``tests/fixtures/meta``, sources in its README) holds Meta's documentation
examples and the test data of open-source WhatsApp libraries. Each payload is sent, signed,
as Meta sends it, to a business number of its own (``metadata.phone_number_id`` is the only
thing replaced: libraries reuse wamids like ``wamid.xyzxyz`` across their examples, which on
one number would rightly count as Meta's retries of one message). Then, read back through
the API and the read models:

* no delivery answers 5xx or 400, and none has an item parked as invalid;
* every message item is a line of its customer's history, with its type and content (the
  business app's echoes as lines of the business);
* every status is reflected: Meta's status of that wamid in the workspace's read model;
* every other change is one typed event on ``whatsapp.business``.

The expectations are computed here from the raw JSON, not by the gateway's parser.
"""

from __future__ import annotations

import copy
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from events.catalogue import DIRECTORY_COMMANDS_TOPIC, WHATSAPP_BUSINESS, WHATSAPP_REJECTED
from events.codec import encode
from events.directory import CreateWorkspace
from events.envelope import Actor, Envelope
from projections.queries import token_hash
from runtime.kafka import ensure_topics
from services.settings import Settings
from tests.conftest import TEST_APP_SECRET
from tests.harness import consumers, eventually, gateway_client, query, topic_records, topic_size
from tests.webhooks import signed_headers

pytestmark = pytest.mark.integration
CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "meta"
CUSTOMER_FIELDS = ("messages", "smb_message_echoes", "user_preferences")


@dataclass
class Expected:
    """What one payload must leave behind."""

    number: str
    lines: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (contact, wamid)
    statuses: dict[str, set[str]] = field(default_factory=dict)  # wamid -> statuses sent
    business_events: int = 0


@dataclass
class Fixture:
    name: str
    body: bytes
    expected: Expected
    token: str = field(default_factory=lambda: "sb_" + secrets.token_urlsafe(24))


def load_corpus() -> list[Fixture]:
    fixtures = []
    for index, path in enumerate(sorted(CORPUS.rglob("*.json"))):
        document = orjson.loads(path.read_bytes())
        number = f"77{index:06d}"
        document = copy.deepcopy(document)
        for entry in document["entry"]:
            for change in entry["changes"]:
                metadata = change["value"].get("metadata")
                if isinstance(metadata, dict):
                    metadata["phone_number_id"] = number
        fixtures.append(
            Fixture(
                name=str(path.relative_to(CORPUS)),
                body=orjson.dumps(document),
                expected=expectations(document, number),
            )
        )
    return fixtures


def expectations(document: dict[str, Any], number: str) -> Expected:
    expected = Expected(number)
    for entry in document["entry"]:
        for change in entry["changes"]:
            name, value = change["field"], change["value"]
            if name == "messages":
                contacts = value.get("contacts", [])
                for message in value.get("messages", []):
                    who = customer(message.get("from"), message.get("from_user_id"), contacts)
                    # A wamid seen again is Meta's retry of that message: the first one stands.
                    expected.lines.setdefault(
                        (who, message["id"]), {"author": "customer", **message}
                    )
                for status in value.get("statuses", []):
                    expected.statuses.setdefault(status["id"], set()).add(status["status"])
                if value.get("errors"):
                    expected.business_events += 1
            elif name == "smb_message_echoes":
                contacts = value.get("contacts", [])
                for echo in value["message_echoes"]:
                    who = customer(echo.get("to"), echo.get("to_user_id"), contacts)
                    expected.lines.setdefault((who, echo["id"]), {"author": "business", **echo})
            elif name == "user_preferences":
                expected.business_events += len(value["user_preferences"])
            else:
                expected.business_events += 1
    return expected


def customer(wa_id: str | None, user_id: str | None, contacts: list[dict[str, Any]]) -> str:
    """Meta's rule as documented: the wa_id when there is one, else the BSUID."""
    if wa_id or user_id:
        contact = next((c for c in contacts if (wa_id and c.get("wa_id") == wa_id)), None) or next(
            (c for c in contacts if user_id and c.get("user_id") == user_id), {}
        )
        found: str = wa_id or contact.get("wa_id") or user_id  # type: ignore[assignment]
        return found
    [only] = contacts
    return str(only.get("wa_id") or only["user_id"])


def expected_content(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get(message["type"])
    if isinstance(content, dict):
        return content
    return {} if content is None else {"value": content}


async def create_workspaces(settings: Settings, fixtures: list[Fixture]) -> dict[str, uuid.UUID]:
    """One workspace per payload, its number connected; the workspace id by number."""
    await ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    workspaces: dict[str, uuid.UUID] = {}
    try:
        for fixture in fixtures:
            command = CreateWorkspace(
                workspace_id=uuid.uuid4(),
                name=fixture.name,
                time_zone="UTC",
                phone_number_id=fixture.expected.number,
                agent_conversations=True,
                admin_member_id=uuid.uuid4(),
                admin_name="Admin",
                admin_token_hash=token_hash(fixture.token),
            )
            workspaces[fixture.expected.number] = command.workspace_id
            envelope = Envelope.wrap(
                command,
                event_id=uuid.uuid4(),
                stream_id=str(command.workspace_id),
                workspace_id=command.workspace_id,
                occurred_at=datetime.now(UTC),
                correlation_id=uuid.uuid4(),
                causation_id=None,
                actor=Actor(kind="system", id="corpus-test"),
            )
            await producer.send(
                DIRECTORY_COMMANDS_TOPIC.qualified(settings.topic_prefix),
                encode(envelope),
                key=envelope.stream_id.encode(),
            )
        await producer.flush()
    finally:
        await producer.stop()

    async def routed() -> int:
        rows = await query(settings, "inbound", "SELECT count(*) AS n FROM {s}.number_routes")
        return int(rows[0]["n"])

    async def members() -> int:
        rows = await query(settings, "projections", "SELECT count(*) AS n FROM {s}.members")
        return int(rows[0]["n"])

    await eventually(routed, lambda n: n == len(fixtures), within=90)
    await eventually(members, lambda n: n == len(fixtures), within=90)
    return workspaces


@pytest.fixture
async def running(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with consumers(settings), gateway_client(settings) as client:
        yield client


async def test_every_real_meta_delivery_is_kept_and_shown(
    settings: Settings, running: httpx.AsyncClient
) -> None:
    fixtures = load_corpus()
    assert len(fixtures) >= 150
    workspaces = await create_workspaces(settings, fixtures)

    accepted = 0
    for fixture in fixtures:
        response = await running.post(
            "/webhooks/whatsapp",
            content=fixture.body,
            headers=signed_headers(TEST_APP_SECRET, fixture.body),
        )
        assert response.status_code == 200, (fixture.name, response.text)
        assert response.json()["rejected"] == 0, fixture.name
        accepted += response.json()["accepted"]
    assert await topic_size(settings, WHATSAPP_REJECTED) == 0

    messages = sum(len(f.expected.lines) for f in fixtures)
    statuses = sum(len(f.expected.statuses) for f in fixtures)
    business = sum(f.expected.business_events for f in fixtures)
    # 150 deliveries: 69 messages and echoes, 53 statuses, 29 other changes today.
    assert messages >= 69, messages
    assert statuses >= 53, statuses
    assert business >= 29, business

    async def check(fixture: Fixture) -> None:
        auth = {"Authorization": f"Bearer {fixture.token}"}
        for (who, wamid), item in fixture.expected.lines.items():

            async def line(who: str = who, wamid: str = wamid) -> dict[str, Any] | None:
                found = await running.get(
                    "/api/conversations", params={"contact": who}, headers=auth
                )
                for conversation in found.json()["conversations"]:
                    history = await running.get(
                        f"/api/conversations/{conversation['conversation_id']}/history",
                        headers=auth,
                    )
                    for entry in history.json()["history"]:
                        if entry["kind"] == "message" and entry["wamid"] == wamid:
                            return dict(entry)
                return None

            shown = await eventually(line, lambda entry: entry is not None, within=60)
            assert shown is not None
            assert (shown["author_kind"], shown["message_type"], shown["content"]) == (
                item["author"],
                item["type"],
                expected_content(item),
            ), (fixture.name, wamid)
        workspace = workspaces[fixture.expected.number]
        for wamid, sent in fixture.expected.statuses.items():

            async def reflected(wamid: str = wamid) -> list[dict[str, Any]]:
                return await query(
                    settings,
                    "projections",
                    "SELECT status FROM {s}.wamid_statuses WHERE workspace_id = %s AND wamid = %s",
                    workspace,
                    wamid,
                )

            rows = await eventually(reflected, lambda found: len(found) == 1, within=60)
            assert rows[0]["status"] in sent, (fixture.name, wamid, rows, sent)

    for fixture in fixtures:
        await check(fixture)

    recorded = await eventually(
        lambda: topic_records(settings, WHATSAPP_BUSINESS), lambda found: len(found) >= business
    )
    assert len(recorded) == business
    print(
        f"\ncorpus: {len(fixtures)} deliveries, {accepted} records accepted, {messages} messages"
        f" shown, {statuses} message statuses reflected, {business} business events"
    )
