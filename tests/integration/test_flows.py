"""Flows end to end on the real broker and database: publish, choose, converse, hand off."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest
import yaml
from psycopg.sql import SQL, Identifier
from psycopg.types.json import Jsonb

from events.catalogue import FLOW_EVENTS_TOPIC, HAND_OFF_REQUESTS_TOPIC, OUTBOUND_MESSAGES_TOPIC
from events.flow_language.grammar import (
    ConditionBlock,
    ConnectToAgentBlock,
    VariableClause,
    parse_flow,
)
from events.flows import ConditionEvaluated, HandOffRequested
from events.outbound import OutboundMessageQueued
from runtime.postgres import open_recorder
from services.flows.views import FlowsRecorder
from services.settings import Settings
from services.workspaces import create_workspace
from tests.conftest import TEST_APP_SECRET
from tests.flow_samples import support_flow
from tests.harness import consumers, eventually, gateway_client, topic_records
from tests.webhooks import Text, messages_webhook, signed_headers

pytestmark = pytest.mark.integration
NUMBER = "480112093385611"
# A conversation runs the flow that was active when its first message *arrived*; its
# conditions read the time the message was *written*. These customers wrote on a Tuesday in
# 2026, before the flow was chosen (deliveries that come late), and still get it.
TUESDAY_10_BOGOTA = int(datetime(2026, 11, 24, 15, 0, tzinfo=UTC).timestamp())
TUESDAY_19_BOGOTA = int(datetime(2026, 11, 25, 0, 0, tzinfo=UTC).timestamp())


class Bot:
    def __init__(
        self,
        settings: Settings,
        client: httpx.AsyncClient,
        workspace: dict[str, Any],
        group: uuid.UUID,
    ) -> None:
        self.settings = settings
        self.client = client
        self.group = group
        self.auth = {"Authorization": f"Bearer {workspace['admin_token']}"}

    async def post(self, customer: str, wamid: str, text: str, at: int) -> None:
        body = messages_webhook(NUMBER, [Text(customer, wamid, text, at)])
        response = await self.client.post(
            "/webhooks/whatsapp", content=body, headers=signed_headers(TEST_APP_SECRET, body)
        )
        assert response.status_code == 200, response.text

    async def history(self, customer: str, lines: int) -> list[dict[str, Any]]:
        async def probe() -> list[dict[str, Any]]:
            found = await self.client.get(
                "/api/conversations", params={"contact": customer}, headers=self.auth
            )
            conversations = found.json()["conversations"]
            if not conversations:
                return []
            history = await self.client.get(
                f"/api/conversations/{conversations[-1]['conversation_id']}/history",
                headers=self.auth,
            )
            # The flow's own steps (kind "flow": answers captured, branches) are checked by
            # tests/integration/test_suite_api.py; these tests read what was said.
            result: list[dict[str, Any]] = [
                line for line in history.json()["history"] if line["kind"] != "flow"
            ]
            return result

        return await eventually(probe, lambda found: len(found) >= lines)


@pytest.fixture
async def bot(settings: Settings) -> AsyncIterator[Bot]:
    async with consumers(settings), gateway_client(settings) as client:
        workspace = await create_workspace(
            settings,
            name="Acme",
            phone_number_id=NUMBER,
            time_zone="America/Bogota",
            agent_conversations=True,
        )
        auth = {"Authorization": f"Bearer {workspace['admin_token']}"}
        group = await create_group(client, auth, "Billing")
        published = await client.post(
            "/api/flows", json=support_flow(group, time_zone=None), headers=auth
        )
        assert published.status_code == 201, published.text
        assert published.json()["version"] == 1
        chosen = await client.put(
            f"/api/numbers/{NUMBER}/flow",
            json={"flow_id": published.json()["flow_id"]},
            headers=auth,
        )
        assert chosen.status_code == 200, chosen.text
        yield Bot(settings, client, workspace, group)


async def create_group(client: httpx.AsyncClient, auth: dict[str, str], name: str) -> uuid.UUID:
    response = await client.post("/api/groups", json={"name": name}, headers=auth)
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["group_id"])


def customer() -> str:
    return "57" + str(uuid.uuid4().int)[:10]


async def test_billing_in_office_hours_is_handed_to_the_group(bot: Bot) -> None:
    who = customer()
    await bot.post(who, "w.1", "hola", TUESDAY_10_BOGOTA)
    asked = await bot.history(who, 3)
    assert [(line["author_kind"], line["text"]) for line in asked] == [
        ("customer", "hola"),
        ("bot", "Hola Valentina Ruiz"),
        ("bot", "¿En qué te ayudamos?"),
    ]
    assert asked[2]["content"]["options"][0]["id"] == "billing"
    await bot.post(who, "w.2", "Facturación", TUESDAY_10_BOGOTA + 30)
    lines = await bot.history(who, 6)
    assert [line["text"] for line in lines[3:5]] == ["Facturación", "Te comunico con un asesor"]
    assert lines[5]["kind"] == "system"
    assert lines[5]["text"] == (
        "handed to agents: group Billing, rotation available (flow block 'agent')"
    )

    [hand_off] = await eventually(
        lambda: topic_records(bot.settings, HAND_OFF_REQUESTS_TOPIC), lambda found: len(found) == 1
    )
    assert isinstance(hand_off.payload, HandOffRequested)
    assert (hand_off.payload.group_id, hand_off.payload.rotation) == (bot.group, "available")
    assert hand_off.stream_id == str(bot.group)
    branches = [
        e.payload
        for e in await topic_records(bot.settings, FLOW_EVENTS_TOPIC)
        if isinstance(e.payload, ConditionEvaluated)
    ]
    assert [(b.next_block, b.rule) for b in branches] == [("agent", 0)]
    assert "10:00" in branches[0].reason


async def test_billing_after_hours_ends_and_closes_the_conversation(bot: Bot) -> None:
    who = customer()
    await bot.post(who, "w.3", "hola", TUESDAY_19_BOGOTA)
    await bot.history(who, 3)
    await bot.post(who, "w.4", "facturación", TUESDAY_19_BOGOTA + 5)
    lines = await bot.history(who, 7)
    assert [line["text"] for line in lines[4:6]] == [
        "Escríbenos en horario de oficina",
        "¡Gracias, Valentina Ruiz!",
    ]
    assert lines[-1]["kind"] == "closed"
    assert lines[-1]["text"] == "flow_ended"
    queued = [
        e.payload
        for e in await topic_records(bot.settings, OUTBOUND_MESSAGES_TOPIC)
        if isinstance(e.payload, OutboundMessageQueued) and e.payload.to == who
    ]
    assert [q.sequence for q in queued] == [1, 2, 3, 4]


async def test_an_invalid_flow_is_refused_naming_the_block(bot: Bot) -> None:
    flow = support_flow(bot.group)
    flow["blocks"][0]["next"] = "nowhere"
    response = await bot.client.post("/api/flows", json=flow, headers=bot.auth)
    assert response.status_code == 400
    assert (
        response.json()["detail"]
        == "block 'greet': transition to a block that does not exist: 'nowhere'"
    )


async def test_a_new_version_of_a_flow_in_yaml_gets_the_next_number(bot: Bot) -> None:
    listed = (await bot.client.get("/api/flows", headers=bot.auth)).json()["flows"]
    [flow] = listed
    assert flow["active_on"] == [NUMBER]
    document = {"id": str(flow["flow_id"]), **support_flow(bot.group)}
    response = await bot.client.post(
        "/api/flows",
        content=yaml.safe_dump(document, allow_unicode=True),
        headers={**bot.auth, "Content-Type": "application/yaml"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["version"] == 2
    versions = await bot.client.get(f"/api/flows/{flow['flow_id']}/versions", headers=bot.auth)
    assert [v["version"] for v in versions.json()["versions"]] == [1, 2]


async def test_an_unknown_member_is_refused(bot: Bot) -> None:
    flow = support_flow(bot.group)
    flow["blocks"][3].update(rotation="specific", member=str(uuid.uuid4()))
    response = await bot.client.post("/api/flows", json=flow, headers=bot.auth)
    assert response.status_code == 400
    assert "block 'agent'" in response.json()["detail"]


async def test_another_workspace_cannot_choose_this_flow(bot: Bot) -> None:
    [flow] = (await bot.client.get("/api/flows", headers=bot.auth)).json()["flows"]
    other = await create_workspace(bot.settings, name="Other", phone_number_id="555000")
    response = await bot.client.put(
        "/api/numbers/555000/flow",
        json={"flow_id": str(flow["flow_id"])},
        headers={"Authorization": f"Bearer {other['admin_token']}"},
    )
    assert response.status_code == 422
    assert "does not exist here" in response.json()["detail"]


async def test_the_flow_runs_for_what_arrives_after_it_is_chosen_whenever_it_was_written(
    settings: Settings,
) -> None:
    """Which flow runs is decided by arrival: a message written in the very second the flow
    was chosen, or an hour before but delivered late, runs it; one that arrived before does
    not (and is handed to the workspace queue rather than left in silence)."""
    number = "480112093300077"
    async with consumers(settings), gateway_client(settings) as client:
        workspace = await create_workspace(
            settings,
            name="Late",
            phone_number_id=number,
            time_zone="America/Bogota",
            agent_conversations=True,
        )
        auth = {"Authorization": f"Bearer {workspace['admin_token']}"}
        bot = Bot(settings, client, workspace, await create_group(client, auth, "Billing"))

        async def post(who: str, wamid: str, at: int) -> None:
            body = messages_webhook(number, [Text(who, wamid, "hola", at)])
            response = await client.post(
                "/webhooks/whatsapp", content=body, headers=signed_headers(TEST_APP_SECRET, body)
            )
            assert response.status_code == 200, response.text

        early, same_second, late = customer(), customer(), customer()
        written = int(time.time())
        await post(early, "w.early", written)
        before = await bot.history(early, 2)
        assert before[1]["kind"] == "system"
        assert "no active flow" in before[1]["text"]

        published = await client.post(
            "/api/flows", json=support_flow(bot.group, time_zone=None), headers=auth
        )
        assert published.status_code == 201, published.text
        choosing = time.time()  # the choice is dated after this instant, to the microsecond
        chosen = await client.put(
            f"/api/numbers/{number}/flow",
            json={"flow_id": published.json()["flow_id"]},
            headers=auth,
        )
        assert chosen.status_code == 200, chosen.text
        # Meta's whole second of the choice: earlier than the choice itself.
        await post(same_second, "w.same", int(choosing))
        await post(late, "w.late", written - 3600)
        for who in (same_second, late):
            lines = await bot.history(who, 3)
            assert [(line["author_kind"], line["text"]) for line in lines] == [
                ("customer", "hola"),
                ("bot", "Hola Valentina Ruiz"),
                ("bot", "¿En qué te ayudamos?"),
            ]
        # The early conversation keeps what it started with: no flow, agents have it.
        await post(early, "w.early.2", written + 5)
        lines = await eventually(
            lambda: bot.history(early, 2),
            lambda found: sum(line["author_kind"] == "customer" for line in found) == 2,
        )
        assert [line for line in lines if line["author_kind"] == "bot"] == [before[1]]


async def test_a_flow_naming_a_group_that_does_not_exist_is_refused(bot: Bot) -> None:
    response = await bot.client.post(
        "/api/flows", json=support_flow(uuid.uuid4()), headers=bot.auth
    )
    assert response.status_code == 400
    assert "block 'agent': group" in response.json()["detail"]
    assert "does not exist" in response.json()["detail"]


async def test_groups_are_listed_and_names_are_unique(bot: Bot) -> None:
    listed = (await bot.client.get("/api/groups", headers=bot.auth)).json()["groups"]
    assert [(g["group_id"], g["name"]) for g in listed] == [(str(bot.group), "Billing")]
    again = await bot.client.post("/api/groups", json={"name": "billing"}, headers=bot.auth)
    assert again.status_code == 422
    assert "already exists" in again.json()["detail"]


def test_a_version_stored_by_an_older_release_runs_as_it_meant(settings: Settings) -> None:
    """The flows view of a release before grammar v2 holds definitions whose conditions
    compare titles: after the upgrade (a column added in place) they are read as v2."""
    schema = settings.schema("flows")
    flow_id = uuid.uuid4()
    v1 = support_flow(uuid.uuid4())
    v1["blocks"][2]["rules"][0]["if"][0] = {"variable": "topic", "equals": "Facturación"}
    v1["blocks"][3]["text"] = "Te paso con {{topic}}"
    with psycopg.connect(settings.database().conninfo(), autocommit=True) as connection:
        connection.execute(SQL("CREATE SCHEMA {}").format(Identifier(schema)))
        connection.execute(
            SQL(
                "CREATE TABLE {}.flow_versions (flow_id uuid NOT NULL, version integer NOT NULL,"
                " definition jsonb NOT NULL, published_at timestamptz NOT NULL,"
                " PRIMARY KEY (flow_id, version))"
            ).format(Identifier(schema))
        )
        connection.execute(
            SQL("INSERT INTO {}.flow_versions VALUES (%s, 1, %s, now())").format(
                Identifier(schema)
            ),
            (flow_id, Jsonb(v1)),
        )
    recorder = open_recorder(settings, "flows", FlowsRecorder)
    try:
        definition = recorder.definition(flow_id, 1)
    finally:
        recorder.datastore.close()
    assert definition is not None
    flow = parse_flow(definition)
    route, agent = flow.block("route"), flow.block("agent")
    assert isinstance(route, ConditionBlock)
    assert isinstance(agent, ConnectToAgentBlock)
    assert route.rules[0].conditions[0] == VariableClause(variable="topic", equals="billing")
    assert agent.text == "Te paso con {{topic.title}}"
