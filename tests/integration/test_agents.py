"""Agents, groups and assignment as a new user meets them: through HTTP only.

A workspace's admin creates three agents and a group, the agents set their status, and
customers write to a flow whose answer picks the rotation type. Everything runs on the
real broker and database with every consumer (the assignment service included).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import httpx
import orjson
import pytest

from events.catalogue import DIRECTORY_EVENTS_TOPIC, OUTBOUND_MESSAGES_TOPIC
from events.codec import decode
from events.directory import AgentStatusChanged
from events.outbound import OutboundMessageQueued
from services.settings import Settings
from services.workspaces import create_workspace
from tests.conftest import TEST_APP_SECRET
from tests.harness import (
    REGISTRY,
    consumers,
    eventually,
    gateway_client,
    query,
    topic_entries,
    topic_records,
)
from tests.webhooks import Text, messages_webhook, signed_headers

pytestmark = pytest.mark.integration
NUMBER = "480112093300001"
# Conversations run the flow active when they arrive, whenever Meta says they were written.
MONDAY_10_UTC = int(datetime(2026, 11, 23, 10, 0, tzinfo=UTC).timestamp())


def routing_flow(group: str, specific: str) -> dict[str, Any]:
    """Ask which rotation to use and hand off with it (the test's lever on hand-offs)."""
    rotations = ("available", "all", "specific", "no_owner")
    return {
        "name": "Routing",
        "start": "ask",
        "blocks": [
            {
                "id": "ask",
                "type": "question",
                "text": "rotation?",
                "variable": "route",
                "next": "route",
            },
            {
                "id": "route",
                "type": "condition",
                "rules": [
                    {"if": [{"variable": "route", "equals": name}], "next": f"to_{name}"}
                    for name in rotations
                ],
                "default": "to_available",
            },
            *(
                {
                    "id": f"to_{name}",
                    "type": "connect_to_agent",
                    "group": group,
                    "rotation": name,
                    **({"member": specific} if name == "specific" else {}),
                }
                for name in rotations
            ),
        ],
    }


@dataclass
class Team:
    settings: Settings
    client: httpx.AsyncClient
    admin: dict[str, str]
    agents: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> auth header
    ids: dict[str, str] = field(default_factory=dict)  # name -> member id
    group: str = ""
    clock: int = MONDAY_10_UTC
    customers: int = 0

    def auth(self, name: str) -> dict[str, str]:
        return self.admin if name == "admin" else self.agents[name]

    async def add_agent(self, name: str, capacity: int) -> None:
        created = await self.client.post(
            "/api/members",
            json={"name": name, "role": "agent", "capacity": capacity},
            headers=self.admin,
        )
        assert created.status_code == 201, created.text
        body = created.json()
        self.agents[name] = {"Authorization": f"Bearer {body['token']}"}
        self.ids[name] = body["member_id"]
        joined = await self.client.put(
            f"/api/groups/{self.group}/members/{body['member_id']}", headers=self.admin
        )
        assert joined.status_code == 200, joined.text

    async def set_status(self, name: str, status: str) -> None:
        changed = await self.client.put(
            "/api/me/status", json={"status": status}, headers=self.agents[name]
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["status"] == status

    async def write(self, customer: str, text: str) -> None:
        self.clock += 7
        body = messages_webhook(NUMBER, [Text(customer, f"w.{uuid.uuid4().hex}", text, self.clock)])
        response = await self.client.post(
            "/webhooks/whatsapp", content=body, headers=signed_headers(TEST_APP_SECRET, body)
        )
        assert response.status_code == 200, response.text

    async def hand_off(self, rotation: str) -> str:
        """A new customer who answers ``rotation``; the conversation's id once it is handed off."""
        self.customers += 1
        customer = f"5730000{self.customers:05d}"
        await self.write(customer, "hola")
        found = await eventually(lambda: self._conversations(customer), lambda rows: len(rows) == 1)
        conversation = found[0]["conversation_id"]
        await eventually(lambda: self.history(conversation), lambda lines: len(lines) >= 2)
        await self.write(customer, rotation)
        await eventually(
            lambda: self.conversation(conversation),
            lambda row: row["assignment_state"] in ("queued", "assigned"),
        )
        return str(conversation)

    async def _conversations(self, customer: str) -> list[dict[str, Any]]:
        found = await self.client.get(
            "/api/conversations", params={"contact": customer}, headers=self.admin
        )
        assert found.status_code == 200, found.text
        rows: list[dict[str, Any]] = found.json()["conversations"]
        return rows

    async def conversation(self, conversation: str, who: str = "admin") -> dict[str, Any]:
        found = await self.client.get(f"/api/conversations/{conversation}", headers=self.auth(who))
        assert found.status_code == 200, found.text
        row: dict[str, Any] = found.json()
        return row

    async def history(self, conversation: str, who: str = "admin") -> list[dict[str, Any]]:
        found = await self.client.get(
            f"/api/conversations/{conversation}/history", headers=self.auth(who)
        )
        assert found.status_code == 200, found.text
        lines: list[dict[str, Any]] = found.json()["history"]
        return lines

    def name_of(self, member_id: str | None) -> str | None:
        return next((name for name, known in self.ids.items() if known == member_id), None)

    async def assignee(self, conversation: str) -> str | None:
        row = await self.conversation(conversation)
        return self.name_of(row["assignee_id"])


async def build_team(settings: Settings, client: httpx.AsyncClient, *, capacity: int) -> Team:
    workspace = await create_workspace(
        settings, name="Acme", phone_number_id=NUMBER, time_zone="UTC", agent_conversations=True
    )
    team = Team(settings, client, {"Authorization": f"Bearer {workspace['admin_token']}"})
    group = await client.post("/api/groups", json={"name": "Support"}, headers=team.admin)
    assert group.status_code == 201, group.text
    team.group = group.json()["group_id"]
    for name in ("A", "B", "C"):
        await team.add_agent(name, capacity)
    published = await client.post(
        "/api/flows", json=routing_flow(team.group, team.ids["C"]), headers=team.admin
    )
    assert published.status_code == 201, published.text
    chosen = await client.put(
        f"/api/numbers/{NUMBER}/flow",
        json={"flow_id": published.json()["flow_id"]},
        headers=team.admin,
    )
    assert chosen.status_code == 200, chosen.text
    return team


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with consumers(settings), gateway_client(settings) as client:
        yield client


async def test_rotations_claims_and_explanations(
    settings: Settings, system: httpx.AsyncClient
) -> None:
    team = await build_team(settings, system, capacity=5)
    await team.set_status("A", "available")
    await team.set_status("C", "available")
    await team.set_status("B", "unavailable")

    roster = await system.get(f"/api/groups/{team.group}/roster", headers=team.agents["A"])
    assert roster.status_code == 200, roster.text
    assert {(m["name"], m["status"]) for m in roster.json()["members"]} == {
        ("A", "available"),
        ("B", "unavailable"),
        ("C", "available"),
    }

    available = [await team.hand_off("available") for _ in range(3)]
    assert [await team.assignee(c) for c in available] == ["A", "C", "A"]
    rotation = [await team.hand_off("all") for _ in range(3)]
    assert [await team.assignee(c) for c in rotation] == ["A", "B", "C"]
    specific = await team.hand_off("specific")
    assert await team.assignee(specific) == "C"

    # A and C were never given one: C is not told it had one more recently.
    lines = await team.history(available[0])
    [decision] = [line for line in lines if line["kind"] == "assignment"]
    skipped = {c["name"]: c["skipped"] for c in decision["content"]["candidates"]}
    assert skipped["C"] == (
        "not their turn: neither they nor A were given a conversation of this group yet,"
        " and A comes first in the group"
    )

    # Every decision explains itself: the rule, each candidate's status and load, why skipped.
    lines = await team.history(available[1])
    [decision] = [line for line in lines if line["kind"] == "assignment"]
    explained = decision["content"]
    assert explained["rule"]
    candidates = {c["name"]: c for c in explained["candidates"]}
    assert set(candidates) == {"A", "B", "C"}
    assert candidates["B"]["status"] == "unavailable"
    assert candidates["B"]["skipped"]
    assert candidates["C"]["chosen"]
    assert candidates["C"]["skipped"] is None
    assert candidates["A"]["load"] == 1
    assert candidates["A"]["skipped"]

    waiting = await team.hand_off("no_owner")
    assert (await team.conversation(waiting))["assignment_state"] == "queued"
    queue = await system.get(f"/api/groups/{team.group}/queue", headers=team.agents["B"])
    assert [row["conversation_id"] for row in queue.json()["queue"]] == [waiting]
    inbox = await system.get("/api/me/inbox", headers=team.agents["B"])
    assert [row["conversation_id"] for row in inbox.json()["queued"]] == [waiting]

    claimed = await system.post(f"/api/conversations/{waiting}/claim", headers=team.agents["B"])
    assert claimed.status_code == 200, claimed.text
    assert await team.assignee(waiting) == "B"
    again = await system.post(f"/api/conversations/{waiting}/claim", headers=team.agents["A"])
    assert again.status_code == 409, again.text
    assert "assigned" in again.json()["detail"]

    inbox = await system.get("/api/me/inbox", headers=team.agents["B"])
    assert {row["conversation_id"] for row in inbox.json()["assigned"]} == {rotation[1], waiting}
    assert inbox.json()["queued"] == []


async def test_a_waiting_hand_off_is_assigned_when_an_agent_closes_one(
    settings: Settings, system: httpx.AsyncClient
) -> None:
    team = await build_team(settings, system, capacity=1)
    for name in ("A", "B", "C"):
        await team.set_status(name, "available")
    held = {await team.assignee(c): c for c in [await team.hand_off("available") for _ in "ABC"]}
    assert set(held) == {"A", "B", "C"}

    fourth = await team.hand_off("available")
    row = await team.conversation(fourth)
    assert (row["assignment_state"], row["assignee_id"]) == ("queued", None)

    closed = await system.post(f"/api/conversations/{held['B']}/close", headers=team.agents["B"])
    assert closed.status_code == 202, closed.text
    await eventually(lambda: team.assignee(fourth), lambda name: name == "B", within=10)
    closed_row = await team.conversation(held["B"])
    assert (closed_row["status"], closed_row["close_reason"]) == ("closed", "agent")


async def test_agents_reply_transfer_and_see_only_their_groups(
    settings: Settings, system: httpx.AsyncClient
) -> None:
    team = await build_team(settings, system, capacity=5)
    await team.set_status("A", "available")
    conversation = await team.hand_off("available")
    assert await team.assignee(conversation) == "A"

    replied = await system.post(
        f"/api/conversations/{conversation}/messages",
        json={"text": "Hola, soy A"},
        headers=team.agents["A"],
    )
    assert replied.status_code == 202, replied.text
    queued = await eventually(
        lambda: topic_records(settings, OUTBOUND_MESSAGES_TOPIC),
        lambda found: any(
            isinstance(e.payload, OutboundMessageQueued) and e.payload.author == "member"
            for e in found
        ),
    )
    [reply] = [
        e.payload
        for e in queued
        if isinstance(e.payload, OutboundMessageQueued) and e.payload.author == "member"
    ]
    assert (reply.text, reply.author_id) == ("Hola, soy A", team.ids["A"])
    lines = await eventually(
        lambda: team.history(conversation, "A"),
        lambda found: any(line["author_kind"] == "member" for line in found),
    )
    assert [line["text"] for line in lines if line["author_kind"] == "member"] == ["Hola, soy A"]

    # B is not the assignee: no reply, no close; an agent outside the group sees nothing.
    refused = await system.post(
        f"/api/conversations/{conversation}/messages", json={"text": "x"}, headers=team.agents["B"]
    )
    assert refused.status_code == 403
    outsider = await system.post(
        "/api/members", json={"name": "D", "role": "agent"}, headers=team.admin
    )
    d_auth = {"Authorization": f"Bearer {outsider.json()['token']}"}
    assert (
        await system.get(f"/api/conversations/{conversation}", headers=d_auth)
    ).status_code == 404
    assert (
        await system.get(f"/api/conversations/{conversation}/history", headers=d_auth)
    ).status_code == 404
    assert (await system.get(f"/api/groups/{team.group}/queue", headers=d_auth)).status_code == 403

    moved = await system.post(
        f"/api/conversations/{conversation}/transfer",
        json={"member_id": team.ids["C"], "note": "C knows billing"},
        headers=team.agents["A"],
    )
    assert moved.status_code == 200, moved.text
    assert await team.assignee(conversation) == "C"
    inbox = await system.get("/api/me/inbox", headers=team.agents["C"])
    assert [row["conversation_id"] for row in inbox.json()["assigned"]] == [conversation]


async def test_queues_list_in_serving_order_and_history_lines_name_and_date_truly(
    settings: Settings, system: httpx.AsyncClient
) -> None:
    """Hand-offs written in one second wait in one queue: the queue lists them in the order
    the assignment service then serves them. Decisions say which directory view they read,
    history lines name the group, and a deleted group's queue moves at the deletion."""
    team = await build_team(settings, system, capacity=5)  # A, B and C are offline
    customers = [f"57311{n:05d}" for n in range(5)]
    conversations: dict[str, str] = {}
    for customer in customers:
        await team.write(customer, "hola")
        [found] = await eventually(
            partial(team._conversations, customer),
            lambda rows: len(rows) == 1,
        )
        conversations[customer] = str(found["conversation_id"])
    for conversation in conversations.values():
        await eventually(partial(team.history, conversation), lambda lines: len(lines) >= 2)
    # Their answers come in one delivery, written in the same second.
    team.clock += 7
    body = messages_webhook(
        NUMBER, [Text(c, f"w.{uuid.uuid4().hex}", "available", team.clock) for c in customers]
    )
    sent = await system.post(
        "/webhooks/whatsapp", content=body, headers=signed_headers(TEST_APP_SECRET, body)
    )
    assert sent.status_code == 200, sent.text
    listed = await eventually(
        lambda: _queue(system, team),
        lambda queue: len(queue) == len(customers),
    )
    assert len({row["queued_at"] for row in listed}) == 1  # one second for all

    # A becomes available and takes the whole queue, in the order it is served.
    await team.set_status("A", "available")
    served = await eventually(
        lambda: query(
            settings,
            "assignment",
            "SELECT state FROM {s}.events WHERE topic = 'assignment.conversation_assigned'"
            " ORDER BY notification_id",
        ),
        lambda rows: len(rows) == len(customers),
    )
    served_ids = [orjson.loads(row["state"])["payload"]["conversation_id"] for row in served]
    assert [row["conversation_id"] for row in listed] == served_ids

    lines = await team.history(served_ids[0])
    handed = [line for line in lines if line["author_kind"] == "bot" and line["kind"] == "system"]
    assert [line["text"] for line in handed] == [
        "handed to agents: group Support, rotation available (flow block 'to_available')"
    ]
    decisions = [line["content"] for line in lines if line["kind"] == "assignment"]
    views = [decision["directory_view"] for decision in decisions]
    assert all(view is not None for view in views)
    assert all(view["topic"] == f"{settings.topic_prefix}directory.events" for view in views)
    # The view that assigned it had just applied A's status change (the record that woke the
    # queue); the one that queued it had not. Records are keyed by stream, so the change may
    # sit in any partition: compare whole positions, never offsets across partitions.
    [became_available] = [
        {"topic": views[0]["topic"], "partition": partition, "offset": offset}
        for partition, offset, value in await topic_entries(settings, DIRECTORY_EVENTS_TOPIC)
        if isinstance(changed := decode(value, REGISTRY).payload, AgentStatusChanged)
        and str(changed.member_id) == team.ids["A"]
        and changed.status == "available"
    ]
    assert views[-1] == became_available
    assert views[0] != became_available

    # One more waits (A is at capacity); then the group is deleted.
    team.customers = 100
    waiting = await team.hand_off("available")
    deleted = await system.delete(f"/api/groups/{team.group}", headers=team.admin)
    assert deleted.status_code == 200, deleted.text
    await eventually(
        lambda: team.conversation(waiting),
        lambda row: row["assignment_state"] == "queued" and row["group_id"] is None,
    )
    lines = await eventually(
        lambda: team.history(waiting),
        lambda found: sum(line["kind"] == "assignment" for line in found) == 3,
    )
    first, released, moved = [line for line in lines if line["kind"] == "assignment"]
    assert released["text"] == "Released from the queue of group Support: the group was deleted."
    assert moved["text"].startswith("queued in the workspace queue: group Support was deleted")
    # The move is dated by the deletion, after the release; the wait began long before.
    assert moved["occurred_at"] == released["occurred_at"] > first["occurred_at"]
    [queued] = (await system.get("/api/queue", headers=team.admin)).json()["queue"]
    assert queued["queued_at"] == first["occurred_at"]


async def _queue(system: httpx.AsyncClient, team: Team) -> list[dict[str, Any]]:
    found = await system.get(f"/api/groups/{team.group}/queue", headers=team.admin)
    assert found.status_code == 200, found.text
    rows: list[dict[str, Any]] = found.json()["queue"]
    return rows
