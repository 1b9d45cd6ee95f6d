"""Control characters in API input, against the running system: every kind of input (body,
query, path; names, ids, free text; JSON and YAML flows) is refused with a 4xx naming the
field or the block, nothing reaches Kafka, and no ghost member or group is left behind even
when a bad command reaches the directory another way."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from events.catalogue import DIRECTORY_COMMANDS_TOPIC, DIRECTORY_EVENTS_TOPIC
from events.codec import encode
from events.directory import AddMember, CreateGroup, GroupCreated, MemberAdded
from events.envelope import Actor, Envelope
from services.settings import Settings
from services.workspaces import create_workspace
from tests.conftest import TEST_APP_SECRET, new_isolated_env
from tests.harness import consumers, eventually, gateway_client, query, topic_records
from tests.webhooks import Text, messages_webhook, signed_headers

pytestmark = pytest.mark.integration
NUMBER = "480177770001"
CUSTOMER = "573001234567"


@dataclass(frozen=True)
class System:
    settings: Settings
    client: httpx.AsyncClient
    auth: dict[str, str]
    workspace_id: str
    member_id: str
    group_id: str
    conversation_id: str


@pytest.fixture(scope="module")
async def system(
    infrastructure: dict[str, str], used_topic_prefixes: list[str]
) -> AsyncIterator[System]:
    """One workspace shared by the module's tests: an agent, a group and an open
    conversation (no flow: it waits in the workspace queue; its admin may reply)."""
    settings = Settings.from_env(new_isolated_env(infrastructure, used_topic_prefixes))
    async with consumers(settings), gateway_client(settings) as client:
        workspace = await create_workspace(settings, name="Acme", phone_number_id=NUMBER)
        auth = {"Authorization": f"Bearer {workspace['admin_token']}"}
        member = await client.post("/api/members", json={"name": "Ana"}, headers=auth)
        group = await client.post("/api/groups", json={"name": "Ventas"}, headers=auth)
        assert (member.status_code, group.status_code) == (201, 201), (member.text, group.text)
        body = messages_webhook(NUMBER, [Text(CUSTOMER, "wamid.input.1", "hola")])
        posted = await client.post(
            "/webhooks/whatsapp", content=body, headers=signed_headers(TEST_APP_SECRET, body)
        )
        assert posted.status_code == 200, posted.text

        async def conversation() -> list[dict[str, Any]]:
            found = await client.get(
                "/api/conversations", params={"contact": CUSTOMER}, headers=auth
            )
            rows: list[dict[str, Any]] = found.json()["conversations"]
            return rows

        [row] = await eventually(conversation, lambda rows: len(rows) == 1)
        yield System(
            settings,
            client,
            auth,
            workspace["workspace_id"],
            member.json()["member_id"],
            group.json()["group_id"],
            row["conversation_id"],
        )


# (method, path with {member}/{group}/{conversation}, JSON body or None, the field named)
REFUSED: list[tuple[str, str, dict[str, Any] | None, str]] = [
    ("POST", "/api/members", {"name": "A\x00na"}, "body.name"),
    ("POST", "/api/members", {"name": "Ana\n"}, "body.name"),
    ("POST", "/api/members", {"name": "\ud800"}, "body.name"),
    ("PATCH", "/api/members/{member}", {"name": "Ana\x1b[31m"}, "body.name"),
    ("POST", "/api/groups", {"name": "Ven\x00tas"}, "body.name"),
    ("PATCH", "/api/groups/{group}", {"name": "So\x7fporte"}, "body.name"),
    ("POST", "/api/conversations/{conversation}/messages", {"text": "hola\x00"}, "body.text"),
    ("POST", "/api/conversations/{conversation}/messages", {"text": "hola\r\n"}, "body.text"),
    (
        "POST",
        "/api/conversations/{conversation}/transfer",
        {"group_id": "{group}", "note": "urgente\x00"},
        "body.note",
    ),
    ("GET", "/api/conversations?contact=57%00x", None, "query.contact"),
    ("GET", "/api/conversations?contact=57%1Bx", None, "query.contact"),
    ("GET", "/api/conversations?contact=%C2%85", None, "query.contact"),
    ("PUT", "/api/numbers/4801%00/flow", {"flow_id": str(uuid4())}, "path.phone_number_id"),
]


def _fill(value: Any, system: System) -> Any:
    ids = {
        "{member}": system.member_id,
        "{group}": system.group_id,
        "{conversation}": system.conversation_id,
    }
    if isinstance(value, str):
        for marker, found in ids.items():
            value = value.replace(marker, found)
        return value
    if isinstance(value, dict):
        return {key: _fill(item, system) for key, item in value.items()}
    return value


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    REFUSED,
    ids=[f"{method} {path} {field}" for method, path, _, field in REFUSED],
)
async def test_control_characters_are_refused_with_422_naming_the_field(
    system: System, method: str, path: str, body: dict[str, Any] | None, field: str
) -> None:
    # The body as raw JSON: a lone surrogate is valid JSON (\\ud800) but not valid UTF-8.
    content = None if body is None else _json(_fill(body, system))
    response = await system.client.request(
        method,
        _fill(path, system),
        content=content,
        headers={**system.auth, "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert isinstance(problem["detail"], str)
    assert problem["detail"].startswith(f"{field}: contains a")
    assert [(error["field"], error["type"]) for error in problem["errors"]] == [
        (field, "control_character")
    ]


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode()  # ensure_ascii: a lone surrogate travels as \\ud800


async def test_a_reply_keeps_line_breaks_and_a_refused_one_never_reaches_the_history(
    system: System,
) -> None:
    path = f"/api/conversations/{system.conversation_id}/messages"
    refused = await system.client.post(path, json={"text": "adiós\x00"}, headers=system.auth)
    assert refused.status_code == 422, refused.text
    kept = {"text": "Hola,\n\tya te ayudo"}
    sent = await system.client.post(path, json=kept, headers=system.auth)
    assert sent.status_code == 202, sent.text

    async def replies() -> list[str]:
        found = await system.client.get(
            f"/api/conversations/{system.conversation_id}/history", headers=system.auth
        )
        return [line["text"] for line in found.json()["history"] if line["author_kind"] == "member"]

    assert await eventually(replies, lambda texts: len(texts) >= 1) == ["Hola,\n\tya te ayudo"]


@pytest.mark.parametrize(
    ("content_type", "body", "named"),
    [
        (
            "application/json",
            b'{"name": "F", "start": "bye", "blocks": [{"id": "bye", "type": "end",'
            b' "text": "chao\\u0000"}]}',
            "block 'bye': text: contains a control character (U+0000)",
        ),
        (
            "application/yaml",
            b'name: "F\\x07"\nstart: bye\nblocks:\n  - {id: bye, type: end}\n',
            "name: contains a control character (U+0007)",
        ),
        (
            "application/yaml",
            b"name: F\nstart: bye\nblocks:\n  - {id: bye, type: end}\n"
            b'  - {id: "x\\0", type: end}\n',
            "block 'x\\x00': id: contains a control character (U+0000)",
        ),
    ],
)
async def test_a_flow_with_control_characters_is_refused_naming_the_block(
    system: System, content_type: str, body: bytes, named: str
) -> None:
    response = await system.client.post(
        "/api/flows", content=body, headers={**system.auth, "Content-Type": content_type}
    )
    assert response.status_code == 400, response.text
    assert named in response.json()["detail"]


async def test_no_ghost_member_or_group_whatever_sends_the_command(system: System) -> None:
    """The API refuses; a command sent around it (straight to Kafka) is refused by the
    directory with its reason: no member_added or group_created with the name, ever."""
    for path in ("/api/members", "/api/groups"):
        refused = await system.client.post(path, json={"name": "Gh\x00ost"}, headers=system.auth)
        assert refused.status_code == 422, refused.text

    workspace = UUID(system.workspace_id)
    admin = UUID((await system.client.get("/api/me", headers=system.auth)).json()["member_id"])
    commands: list[AddMember | CreateGroup] = [
        AddMember(
            workspace_id=workspace,
            member_id=uuid4(),
            name="Gh\x00ost",
            role="agent",
            capacity=2,
            token_hash="0" * 64,
        ),
        CreateGroup(workspace_id=workspace, group_id=uuid4(), name="Gh\x00ost", created_by=admin),
    ]
    ids = [await _send_around_the_api(system.settings, workspace, command) for command in commands]
    for command_id in ids:
        [outcome] = await eventually(
            lambda command_id=command_id: query(  # type: ignore[misc]
                system.settings,
                "projections",
                "SELECT outcome, reason FROM {s}.command_outcomes WHERE command_id = %s",
                command_id,
            ),
            lambda rows: len(rows) == 1,
        )
        assert outcome["outcome"] == "rejected"
        assert "control character (U+0000)" in outcome["reason"]

    events = await topic_records(system.settings, DIRECTORY_EVENTS_TOPIC)
    names = [
        event.payload.name
        for event in events
        if isinstance(event.payload, MemberAdded | GroupCreated)
    ]
    assert "Ana" in names
    assert not [name for name in names if "\x00" in name]
    members = await system.client.get("/api/members", headers=system.auth)
    groups = await system.client.get("/api/groups", headers=system.auth)
    assert "Gh" not in members.text + groups.text


async def _send_around_the_api(
    settings: Settings, workspace: UUID, command: AddMember | CreateGroup
) -> UUID:
    command_id = uuid4()
    envelope = Envelope.wrap(
        command,
        event_id=command_id,
        stream_id=str(workspace),
        workspace_id=workspace,
        occurred_at=datetime.now(UTC),
        correlation_id=command_id,
        causation_id=None,
        actor=Actor(kind="system", id="test"),
    )
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            DIRECTORY_COMMANDS_TOPIC.qualified(settings.topic_prefix),
            value=encode(envelope),
            key=str(workspace).encode(),
        )
    finally:
        await producer.stop()
    return command_id


@pytest.mark.parametrize(
    ("method", "path", "content", "field", "kind"),
    [
        (
            "GET",
            "/api/conversations?contact=57&contacts=58",
            None,
            "query.contacts",
            "extra_forbidden",
        ),
        ("GET", "/api/members?limit=5", None, "query.limit", "extra_forbidden"),
        ("POST", "/api/groups", b'{"name": "Ventas"', "body", "json_invalid"),
        ("POST", "/api/groups", b"\xff\xfe\x00{", "body", "json_invalid"),
        (
            "POST",
            "/api/groups",
            b'{"name": "Ventas", "colour": "red"}',
            "body.colour",
            "extra_forbidden",
        ),
    ],
)
async def test_unknown_parameters_and_unreadable_bodies_are_refused_naming_them(
    system: System, method: str, path: str, content: bytes | None, field: str, kind: str
) -> None:
    response = await system.client.request(
        method, path, content=content, headers={**system.auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["detail"].startswith(f"{field}: ")
    assert [(error["field"], error["type"]) for error in problem["errors"]] == [(field, kind)]
