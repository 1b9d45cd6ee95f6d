"""A replay of the flows service from the first event reproduces the same decisions."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

import orjson
import pytest

from services.flows.app import create_app as create_flows
from services.settings import Settings
from services.workspaces import create_workspace
from tests.conftest import TEST_APP_SECRET
from tests.flow_samples import support_flow
from tests.harness import consumers, eventually, gateway_client, query
from tests.integration.test_flows import NUMBER, create_group
from tests.webhooks import Text, messages_webhook, signed_headers

pytestmark = pytest.mark.integration
EVENTS = "SELECT originator_id, originator_version, topic, state FROM {s}.events ORDER BY 1, 2"


async def test_replaying_the_flows_service_from_offset_zero_decides_the_same(
    settings: Settings,
) -> None:
    async with consumers(settings), gateway_client(settings) as client:
        workspace = await create_workspace(
            settings,
            name="Replay",
            phone_number_id=NUMBER,
            time_zone="America/Bogota",
            agent_conversations=True,
        )
        auth = {"Authorization": f"Bearer {workspace['admin_token']}"}
        group = await create_group(client, auth, "Billing")
        flow = (await client.post("/api/flows", json=support_flow(group), headers=auth)).json()
        await client.put(
            f"/api/numbers/{NUMBER}/flow", json={"flow_id": flow["flow_id"]}, headers=auth
        )
        # Ten customers at different hours of a Tuesday: some in office hours, some not.
        for n in range(10):
            at = int(datetime(2026, 11, 24, (8 + n * 2) % 24, 0, tzinfo=UTC).timestamp())
            who = f"5730{n:06d}"
            for step, (text, wamid) in enumerate([("hola", "a"), ("Facturación", "b")]):
                body = messages_webhook(NUMBER, [Text(who, f"w.{n}.{wamid}", text, at + step)])
                response = await client.post(
                    "/webhooks/whatsapp",
                    content=body,
                    headers=signed_headers(TEST_APP_SECRET, body),
                )
                assert response.status_code == 200
        await eventually(
            lambda: query(
                settings,
                "flows",
                "SELECT count(*) AS n FROM {s}.events WHERE topic = 'flow.answer_captured'",
            ),
            lambda rows: rows[0]["n"] == 10,
        )
        original = await query(settings, "flows", EVENTS)

    # A fresh flows service (empty schema, same topics) reads everything from offset zero.
    tag = uuid.uuid4().hex[:8]
    # Its own consumer groups: the first run's members may still be leaving theirs.
    fresh = dataclasses.replace(settings, schema_prefix=f"r{tag}_", group_prefix=f"r{tag}.")
    app = create_flows(fresh)
    async with app.lifespan_context():
        await app.start()
        try:
            replayed = await eventually(
                lambda: query(fresh, "flows", EVENTS),
                lambda rows: len(rows) >= len(original),
                within=60,
            )
        finally:
            await app.stop()
    assert replayed == original
    branches = [
        orjson.loads(row["state"])["payload"]["next_block"]
        for row in original
        if row["topic"] == "flow.condition_evaluated"
    ]
    assert sorted(branches) == ["agent"] * 5 + ["closed"] * 5  # both ways, by the hour
