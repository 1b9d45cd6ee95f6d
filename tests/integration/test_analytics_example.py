"""The analytics contract answers real questions: docs/analytics_example.py, run as an analyst
runs it against the real broker after a scripted day, reports what the day was.

Customers write (signed webhooks, Meta's timestamps from the script), a flow hands each
conversation to the agent the customer names, the assignment service assigns it, and agents
reply through the API at the script's times (the gateway's clock is the script's). The
expected figures are computed here from the script alone. Every record the day left on every
topic must also match its published schema (docs/schemas/).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from jsonschema import Draft202012Validator, FormatChecker

from events.catalogue import TOPICS
from services.settings import Settings
from services.workspaces import create_workspace
from tests.conftest import TEST_APP_SECRET
from tests.harness import consumers, eventually, topic_values
from tests.webhooks import Text, messages_webhook, signed_headers

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "analytics_example.py"
SCHEMAS = ROOT / "docs" / "schemas"
NUMBER = "480112093300077"
AGENTS = ("Ana", "Bruno", "Carla")
MONDAY = datetime(2026, 11, 23, tzinfo=UTC)
TUESDAY = MONDAY + timedelta(days=1)


def at(day: datetime, clock: str) -> datetime:
    hours, minutes, seconds = (int(part) for part in clock.split(":"))
    return day + timedelta(hours=hours, minutes=minutes, seconds=seconds)


@dataclass(frozen=True)
class Conversation:
    """One customer's conversation as the script has it happen."""

    customer: str
    first_message_at: datetime
    agent: str  # the customer's answer: the flow hands the conversation to this agent
    answer_at: datetime  # the answer's time: the hand-off, and so the assignment
    replies_at: tuple[datetime, ...]  # the agent's replies (none: never answered)


SCRIPT = (
    Conversation(
        "573100000001",
        at(MONDAY, "09:00:00"),
        "Ana",
        at(MONDAY, "09:00:20"),
        (at(MONDAY, "09:02:20"), at(MONDAY, "09:04:00")),
    ),
    Conversation(
        "573100000002",
        at(MONDAY, "09:10:00"),
        "Bruno",
        at(MONDAY, "09:10:15"),
        (at(MONDAY, "09:10:45"),),
    ),
    Conversation(
        "573100000003",
        at(MONDAY, "11:00:00"),
        "Ana",
        at(MONDAY, "11:00:30"),
        (at(MONDAY, "11:07:30"), at(MONDAY, "11:08:00")),
    ),
    Conversation("573100000004", at(MONDAY, "16:00:00"), "Carla", at(MONDAY, "16:00:10"), ()),
    Conversation(
        "573100000005",
        at(TUESDAY, "08:30:00"),
        "Bruno",
        at(TUESDAY, "08:30:40"),
        (at(TUESDAY, "08:31:40"),),
    ),
    Conversation(
        "573100000006",
        at(TUESDAY, "23:59:50"),
        "Ana",
        at(TUESDAY, "23:59:59"),
        (at(TUESDAY, "23:59:59") + timedelta(minutes=3),),
    ),
)


def expected_report(script: tuple[Conversation, ...], ids: dict[str, str]) -> dict[str, Any]:
    """What the example must say, from the script alone (the definitions in its docstring)."""
    per_day = Counter(item.first_message_at.date().isoformat() for item in script)
    waits: dict[str, list[float]] = {name: [] for name in AGENTS}
    unanswered: Counter[str] = Counter()
    for item in script:
        if item.replies_at:
            waits[item.agent].append((min(item.replies_at) - item.answer_at).total_seconds())
        else:
            unanswered[item.agent] += 1
    return {
        "conversations_per_day": dict(sorted(per_day.items())),
        "first_response_seconds": {
            ids[name]: {
                "name": name,
                "answered": len(waits[name]),
                "unanswered": unanswered[name],
                "mean": statistics.fmean(waits[name]) if waits[name] else None,
                "median": statistics.median(waits[name]) if waits[name] else None,
                "max": max(waits[name]) if waits[name] else None,
            }
            for name in AGENTS
            if waits[name] or unanswered[name]
        },
        "problems": [],
    }


def naming_flow(group: str, ids: dict[str, str]) -> dict[str, Any]:
    """Ask whom the customer wants, and hand off to that agent (the script's lever)."""
    return {
        "name": "Who",
        "start": "ask",
        "blocks": [
            {"id": "ask", "type": "question", "text": "who?", "variable": "who", "next": "route"},
            {
                "id": "route",
                "type": "condition",
                "rules": [
                    {"if": [{"variable": "who", "equals": name}], "next": f"to_{name}"}
                    for name in AGENTS
                ],
                "default": f"to_{AGENTS[0]}",
            },
            *(
                {
                    "id": f"to_{name}",
                    "type": "connect_to_agent",
                    "group": group,
                    "rotation": "specific",
                    "member": ids[name],
                }
                for name in AGENTS
            ),
        ],
    }


class ScriptClock:
    """The gateway's clock during the day: whatever the script says it is."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@asynccontextmanager
async def gateway(settings: Settings, clock: ScriptClock) -> AsyncIterator[httpx.AsyncClient]:
    from services.gateway.app import create_app
    from services.gateway.dependencies import current_time

    app = create_app(settings)
    app.dependency_overrides[current_time] = clock
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


@dataclass
class Day:
    client: httpx.AsyncClient
    clock: ScriptClock
    admin: dict[str, str]
    agents: dict[str, dict[str, str]]
    ids: dict[str, str]

    async def write(self, customer: str, text: str, written_at: datetime) -> None:
        wamid = f"wamid.{uuid.uuid4().hex}"
        body = messages_webhook(NUMBER, [Text(customer, wamid, text, int(written_at.timestamp()))])
        response = await self.client.post(
            "/webhooks/whatsapp", content=body, headers=signed_headers(TEST_APP_SECRET, body)
        )
        assert response.status_code == 200, response.text

    async def conversation_of(self, customer: str) -> dict[str, Any]:
        async def found() -> list[dict[str, Any]]:
            response = await self.client.get(
                "/api/conversations", params={"contact": customer}, headers=self.admin
            )
            assert response.status_code == 200, response.text
            rows: list[dict[str, Any]] = response.json()["conversations"]
            return rows

        [row] = await eventually(found, lambda rows: len(rows) == 1)
        return row

    async def assignee(self, conversation: str) -> str | None:
        response = await self.client.get(f"/api/conversations/{conversation}", headers=self.admin)
        assert response.status_code == 200, response.text
        assignee: str | None = response.json()["assignee_id"]
        return assignee

    async def play(self, item: Conversation) -> None:
        await self.write(item.customer, "hola", item.first_message_at)
        conversation = str((await self.conversation_of(item.customer))["conversation_id"])

        async def history() -> list[dict[str, Any]]:
            response = await self.client.get(
                f"/api/conversations/{conversation}/history", headers=self.admin
            )
            lines: list[dict[str, Any]] = response.json()["history"]
            return lines

        await eventually(history, lambda lines: any(line["kind"] == "flow" for line in lines))
        await self.write(item.customer, item.agent, item.answer_at)
        await eventually(
            lambda: self.assignee(conversation), lambda found: found == self.ids[item.agent]
        )
        for reply_at in item.replies_at:
            self.clock.now = reply_at
            sent = await self.client.post(
                f"/api/conversations/{conversation}/messages",
                json={"text": f"Hola, soy {item.agent}"},
                headers=self.agents[item.agent],
            )
            assert sent.status_code == 202, sent.text


async def set_up(settings: Settings, client: httpx.AsyncClient, clock: ScriptClock) -> Day:
    workspace = await create_workspace(
        settings,
        name="Analytics",
        phone_number_id=NUMBER,
        time_zone="UTC",
        agent_conversations=True,
    )
    admin = {"Authorization": f"Bearer {workspace['admin_token']}"}
    group = await client.post("/api/groups", json={"name": "Support"}, headers=admin)
    assert group.status_code == 201, group.text
    group_id = group.json()["group_id"]
    day = Day(client, clock, admin, {}, {})
    for name in AGENTS:
        created = await client.post(
            "/api/members", json={"name": name, "role": "agent", "capacity": 10}, headers=admin
        )
        assert created.status_code == 201, created.text
        day.agents[name] = {"Authorization": f"Bearer {created.json()['token']}"}
        day.ids[name] = created.json()["member_id"]
        joined = await client.put(f"/api/groups/{group_id}/members/{day.ids[name]}", headers=admin)
        assert joined.status_code == 200, joined.text
        available = await client.put(
            "/api/me/status", json={"status": "available"}, headers=day.agents[name]
        )
        assert available.status_code == 200, available.text
    published = await client.post("/api/flows", json=naming_flow(group_id, day.ids), headers=admin)
    assert published.status_code == 201, published.text
    chosen = await client.put(
        f"/api/numbers/{NUMBER}/flow", json={"flow_id": published.json()["flow_id"]}, headers=admin
    )
    assert chosen.status_code == 200, chosen.text
    return day


async def run_example(settings: Settings) -> tuple[int, dict[str, Any], str]:
    """``python docs/analytics_example.py`` as an analyst runs it: its status, report, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        "--bootstrap",
        settings.kafka_bootstrap,
        "--topic-prefix",
        settings.topic_prefix,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd="/",  # it needs nothing of the repository but the schemas beside it
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    assert out, f"no report (status {process.returncode}): {err.decode()}"
    return process.returncode, orjson.loads(out), err.decode()


def schema_validators() -> dict[tuple[str, int], Draft202012Validator]:
    index = orjson.loads((SCHEMAS / "index.json").read_bytes())
    return {
        (event["event_type"], version["version"]): Draft202012Validator(
            orjson.loads((SCHEMAS / version["schema"]).read_bytes()),
            format_checker=FormatChecker(),
        )
        for topic in index["topics"]
        for event in topic["event_types"]
        for version in event["versions"]
    }


async def test_the_example_reports_the_scripted_day(settings: Settings) -> None:
    clock = ScriptClock()
    async with consumers(settings), gateway(settings, clock) as client:
        day = await set_up(settings, client, clock)
        for item in SCRIPT:
            await day.play(item)

        status, report, errors = await run_example(settings)

        assert (status, errors) == (0, ""), errors
        expected = expected_report(SCRIPT, day.ids)
        assert {key: report[key] for key in expected} == expected
        assert report["records"] > 0

        # Every record of the day, on every topic (the restricted ones included), is what its
        # published schema says.
        validators = schema_validators()
        checked: Counter[str] = Counter()
        for topic in TOPICS:
            for value in await topic_values(settings, topic):
                record = orjson.loads(value)
                validator = validators[(record["event_type"], record["schema_version"])]
                problems = [error.message for error in validator.iter_errors(record)]
                assert problems == [], (topic.name, record["event_type"], problems)
                checked[topic.name] += 1
        for busy in ("conversation.events", "assignment.events", "flow.events", "directory.events"):
            assert checked[busy] > 0, checked


def started_record(version: int, payload: dict[str, Any]) -> dict[str, Any]:
    """A conversation.started record as it is on the wire (the JSON an analyst reads)."""
    conversation = str(uuid.uuid4())
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "conversation.started",
        "schema_version": version,
        "stream_id": conversation,
        "workspace_id": str(uuid.uuid4()),
        "occurred_at": "2026-11-23T09:00:01Z",
        "correlation_id": str(uuid.uuid4()),
        "causation_id": None,
        "actor": {"kind": "customer", "id": "573100000009"},
        "payload": {"conversation_id": conversation, **payload},
    }


async def test_the_example_reads_old_versions_and_reports_what_it_cannot_understand(
    settings: Settings,
) -> None:
    from aiokafka import AIOKafkaProducer

    from runtime.kafka import ensure_topics

    await ensure_topics(settings)
    first = {
        "phone_number_id": NUMBER,
        "display_phone_number": "573001112233",
        "contact_wa_id": "573100000009",
        "contact_name": None,
        "started_at": "2026-11-23T09:00:00Z",
    }
    old = started_record(1, first)  # written before received_at existed: still counted
    newer = started_record(4, {**first, "started_at": "2026-11-24T09:00:00Z"})
    broken = started_record(3, {key: value for key, value in first.items() if key != "started_at"})
    undated = started_record(2, {**first, "started_at": "Monday morning"})
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    topic = f"{settings.topic_prefix}conversation.events"
    try:
        values = [orjson.dumps(record) for record in (old, newer, broken, undated)]
        for value in [*values, b"{oops"]:
            await producer.send_and_wait(topic, value, key=b"k", partition=0)
    finally:
        await producer.stop()

    status, report, errors = await run_example(settings)

    assert status == 1
    assert report["conversations_per_day"] == {"2026-11-23": 1}
    assert report["records"] == 5
    problems = report["problems"]
    assert [problem.split(": ", 1)[0] for problem in problems] == [
        f"{topic}[0]@{offset}" for offset in (1, 2, 3, 4)
    ]
    assert "no published schema for 'conversation.started' version 4" in problems[0]
    assert "'started_at' is a required property" in problems[1]
    assert "payload/started_at: 'Monday morning' is not a 'date-time'" in problems[2]
    assert "not JSON" in problems[3]
    assert all(problem in errors for problem in problems)
